// Config's derived values (the JWKS URL and issuers a configuration implies)
// and the URL helpers that both they and the rules between keys use.
#include "config/config.h"

#include <algorithm>
#include <string_view>

#include "common/text.h"
#include "config/schema.h"

namespace usersd::config {
namespace {

constexpr const char* kWorkosIssuer = "https://api.workos.com";

}  // namespace

namespace internal {

std::string StripTrailingSlashes(std::string url) {
  // Keep "https://" intact even though validation rejects a URL without host.
  while (url.size() > 1 && url.back() == '/' && url.compare(url.size() - 3, 3, "://") != 0) url.pop_back();
  return url;
}

}  // namespace internal

using internal::StripTrailingSlashes;

std::optional<std::string> Config::EffectiveJwksUrl() const {
  if (auth.jwks_url) return *auth.jwks_url;
  if (!auth.client_id) return std::nullopt;
  return StripTrailingSlashes(workos.base_url) + "/sso/jwks/" + *auth.client_id;
}

std::vector<std::string> Config::EffectiveIssuers() const {
  if (auth.issuers) return *auth.issuers;
  // WorkOS signs AuthKit tokens with these issuers, also behind a proxy; a
  // WorkOS-compatible server elsewhere signs with its own URL.
  std::vector<std::string> out = {kWorkosIssuer};
  if (auth.client_id) out.push_back(std::string(kWorkosIssuer) + "/user_management/" + *auth.client_id);
  std::string base = StripTrailingSlashes(workos.base_url);
  if (base != kWorkosIssuer) {
    out.push_back(base);
    if (auth.client_id) out.push_back(base + "/user_management/" + *auth.client_id);
  }
  return out;
}

bool IsLoopbackUrl(const std::string& url) {
  size_t at = url.find("://");
  if (at == std::string::npos) return false;
  std::string_view rest = std::string_view(url).substr(at + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t user = rest.rfind('@'); user != std::string_view::npos) rest.remove_prefix(user + 1);
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    host = std::string(rest.substr(1, close - 1));
    return host == "::1" || host == "0:0:0:0:0:0:0:1";
  }
  host = ToLowerAscii(rest.substr(0, rest.find(':')));
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host == "localhost" || (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0)) return true;
  // 127.0.0.0/8 as a dotted quad of decimal numbers.
  int parts = 0;
  size_t i = 0;
  while (i <= host.size()) {
    size_t end = host.find('.', i);
    if (end == std::string::npos) end = host.size();
    std::string_view part(host.data() + i, end - i);
    if (part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    if (parts == 0 && part != "127") return false;
    if (std::stoi(std::string(part)) > 255) return false;
    ++parts;
    i = end + 1;
  }
  return parts == 4;
}

}  // namespace usersd::config
