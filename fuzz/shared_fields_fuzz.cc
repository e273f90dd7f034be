// libFuzzer entry point for the shared_fields target; the body and what it checks
// are in fuzz/targets.h and fuzz/targets/. Seeds: fuzz/corpus/shared_fields/.
#include <cstddef>
#include <cstdint>

#include "common/log.h"
#include "fuzz/targets.h"

// An unreadable document is logged as a warning (once per input here); at
// millions of inputs that is gigabytes of log and most of the run's time.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  usersd::SetLogLevel(usersd::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return usersd::fuzz::FuzzSharedFields(data, size);
}
