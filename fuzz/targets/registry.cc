#include <cstdio>
#include <cstdlib>

#include "fuzz/targets.h"

namespace usersd::fuzz {

std::span<const FuzzTarget> AllTargets() {
  static constexpr FuzzTarget kTargets[] = {
      {"ipc_protocol", &FuzzProtocolLine},
      {"ipc_framing", &FuzzLineFraming},
      {"auth_jwt", &FuzzAuthJwt},
      {"config", &FuzzConfig},
      {"domain_validate", &FuzzDomainValidate},
      {"store_record", &FuzzStoreRecord},
      {"workos_pages", &FuzzWorkosPages},
      {"shared_fields", &FuzzSharedFields},
  };
  return kTargets;
}

namespace internal {

void CheckFailed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "fuzz check failed: %s at %s:%d\n", cond, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace internal
}  // namespace usersd::fuzz
