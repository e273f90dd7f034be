// libFuzzer entry point for the domain_validate target; the body and what it checks
// are in fuzz/targets.h and fuzz/targets/. Seeds: fuzz/corpus/domain_validate/.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return usersd::fuzz::FuzzDomainValidate(data, size);
}
