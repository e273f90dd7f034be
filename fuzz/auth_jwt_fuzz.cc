// libFuzzer target for token verification and JWKS parsing (auth/jwt.h).
//
// Both parsers see untrusted bytes: tokens come from any local client, and
// the JWKS comes over the network (or from the store after a restart).
// Checks, for any bytes:
//   - Verify, PeekKid and Jwks::Parse return (no crash, no exception, no
//     sanitizer report);
//   - a failure always carries a detail;
//   - a token Verify accepts really satisfies the policy (sub set, not
//     expired, issuer and audience allowed), and round-trips through TokenCache;
//   - an accepted JWKS parses again from its own text() to the same key set.
// Input layout: the whole input is tried as a token (against the fixed key
// set below) and as a JWKS; if it contains a newline, the part before it is
// also parsed as a JWKS and the part after is verified against that.
// Seeds: fuzz/corpus/auth_jwt/ (valid_token is signed by the key below and
// expires in 2100).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "auth/jwt.h"
#include "auth/token_cache.h"

namespace {

using namespace usersd::auth;

constexpr int64_t kNow = 1'790'000'000;

// Public half of the key that signed fuzz/corpus/auth_jwt/valid_token. The
// private key is not kept anywhere: the fuzzer only needs to verify.
constexpr std::string_view kJwks =
    R"({"keys":[{"kty":"RSA","kid":"fuzz-1","use":"sig","alg":"RS256","n":"70gKFdygW9gc-5jktV58cTLmSAdciT2U19wZEkUcuxuS8J7LOz5fFz5XERin5A2wgJNgB6q_LLW0WZtdKm260XOn8gnLNXvZrR8axeBhEQG0-_pW3bTTCmOslQxkPObA1JqDqMxfwAMWGmZUT6POuj2ObYoNJOeeBm_SDG4yua2aNq5BOap-PexYPQd9O1B2jcOwzw9xxDXA9KhR9b_M6EJNxW8yZ0KiATKpJ316ezMJ7i2nxZBhFatpmY9ea2glZtYE_5sKPeuCFDs9huIiKbTDSP1RchaIaB6f83AxCIhdQFGg7gmNRRS2IUSQJX_uhjtk1BO3a4PiyKis9cCu6w","e":"AQAB"}]})";

const VerifyOptions& Options() {
  static const VerifyOptions opts = [] {
    VerifyOptions o;
    o.issuers = {"https://api.workos.com", "https://api.workos.com/user_management/client_123"};
    o.audience = "client_123";
    o.algorithms = {"RS256", "RS384", "PS256", "HS256", "none"};  // the last two must still never pass
    return o;
  }();
  return opts;
}

const Jwks& FixedJwks() {
  static const std::shared_ptr<const Jwks> jwks = [] {
    auto r = Jwks::Parse(kJwks);
    if (!r.ok() || (*r)->size() != 1) std::abort();
    return *r;
  }();
  return *jwks;
}

void CheckVerify(std::string_view token, const Jwks& jwks) {
  auto result = Verify(token, jwks, Options(), kNow);
  if (auto* f = std::get_if<VerifyFailure>(&result)) {
    if (f->detail.empty()) std::abort();
    (void)TokenErrorName(f->error);
    return;
  }
  const Claims& c = std::get<Claims>(result);
  const VerifyOptions& o = Options();
  bool issuer_ok = false;
  for (const auto& iss : o.issuers) issuer_ok = issuer_ok || iss == c.iss;
  if (c.sub.empty() || c.exp + o.leeway_seconds <= kNow || !issuer_ok || !c.raw.is_object()) {
    std::fprintf(stderr, "accepted a token that breaks the policy\n");
    std::abort();
  }
  TokenCache cache(2);
  cache.Put(token, c);
  auto hit = cache.Get(token, kNow);
  if (c.exp > kNow && (!hit || hit->sub != c.sub)) std::abort();
}

void CheckJwks(std::string_view text) {
  auto r = Jwks::Parse(text);
  if (!r.ok()) {
    if (r.status().message().empty()) std::abort();
    return;
  }
  const Jwks& jwks = **r;
  if (jwks.text() != text) std::abort();
  auto again = Jwks::Parse(jwks.text());
  if (!again.ok() || (*again)->size() != jwks.size() || (*again)->skipped() != jwks.skipped()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  CheckVerify(input, FixedJwks());
  (void)PeekKid(input);
  CheckJwks(input);

  if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
    auto jwks = Jwks::Parse(input.substr(0, nl));
    if (jwks.ok()) CheckVerify(input.substr(nl + 1), **jwks);
  }
  return 0;
}
