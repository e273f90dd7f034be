// libFuzzer entry point for the auth_jwt target; the body and what it checks
// are in fuzz/targets.h and fuzz/targets/. Seeds: fuzz/corpus/auth_jwt/.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return usersd::fuzz::FuzzAuthJwt(data, size);
}
