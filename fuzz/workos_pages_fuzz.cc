// libFuzzer entry point for the workos_pages target; the body and what it checks
// are in fuzz/targets.h and fuzz/targets/. Seeds: fuzz/corpus/workos_pages/.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return usersd::fuzz::FuzzWorkosPages(data, size);
}
