// libFuzzer entry point for the store_record target; the body and what it checks
// are in fuzz/targets.h and fuzz/targets/. Seeds: fuzz/corpus/store_record/.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return usersd::fuzz::FuzzStoreRecord(data, size);
}
