// libFuzzer entry point for the shared_fields target; the body and what it checks
// are in fuzz/targets.h and fuzz/targets/. Seeds: fuzz/corpus/shared_fields/.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return usersd::fuzz::FuzzSharedFields(data, size);
}
