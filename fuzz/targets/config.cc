// Fuzz target for the configuration parser (config/config.h).
//
// The config file is trusted more than socket input, but it is still parsed
// by yaml-cpp and our schema walker, and `--check-config` may be pointed at
// anything. Checks, for any bytes:
//   - ParseConfig returns (no crash, no exception, no sanitizer report);
//   - an error always carries a message;
//   - an accepted config survives ToYaml -> ParseConfig with every key equal
//     (workos.api_key aside, which ToYaml never writes).
// Seeds: fuzz/corpus/config/.
#include "config/config.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "fuzz/targets.h"

namespace usersd::fuzz {

int FuzzConfig(const uint8_t* data, size_t size) {
  using config::Config;
  const std::string text(reinterpret_cast<const char*>(data), size);

  Result<Config> first = config::ParseConfig(text, "fuzz");
  if (!first.ok()) {
    USERSD_FUZZ_CHECK(!first.status().message().empty());
    return 0;
  }
  (void)first->EffectiveJwksUrl();
  (void)first->EffectiveIssuers();

  const std::string yaml = config::ToYaml(*first);
  Result<Config> second = config::ParseConfig(yaml, "roundtrip");
  if (!second.ok()) {
    std::fprintf(stderr, "round trip rejected:\n%s\n%s\n", yaml.c_str(), second.status().ToString().c_str());
    USERSD_FUZZ_CHECK(second.ok());
  }
  Config expected = *first;
  expected.workos.api_key.reset();
  std::vector<std::string> restart;
  std::vector<std::string> changed = config::DiffReloadable(expected, *second, &restart);
  changed.insert(changed.end(), restart.begin(), restart.end());
  if (!changed.empty()) {
    std::fprintf(stderr, "round trip changed %s (and %zu more):\n%s\n", changed[0].c_str(), changed.size() - 1,
                 yaml.c_str());
    USERSD_FUZZ_CHECK(changed.empty());
  }
  return 0;
}

}  // namespace usersd::fuzz
