// Fuzz target for token verification and JWKS parsing (auth/jwt.h).
//
// Both parsers see untrusted bytes: tokens come from any local client, and
// the JWKS comes over the network (or from the store after a restart).
// Checks, for any bytes:
//   - Verify, PeekKid and Jwks::Parse return (no crash, no exception, no
//     sanitizer report);
//   - a failure always carries a detail;
//   - a token Verify accepts really satisfies the policy (sub set, exp
//     present unless the lax policy is in force, not expired, not older than
//     the maximum age, issuer and audience allowed), and round-trips through
//     TokenCache until its valid_until;
//   - an accepted JWKS parses again from its own text() to the same key set.
// Input layout: the whole input is tried as a token (against the fixed key
// set below) and as a JWKS; if it contains a newline, the part before it is
// also parsed as a JWKS and the part after is verified against that.
// Random bytes never carry a valid signature, so without help nothing after
// the signature check (the claims) would be reached. So an input that starts
// with '{' is also signed as JWT JSON: "header\npayload", or the payload
// alone under a fixed RS256 header, with a key made at startup.
// Seeds: fuzz/corpus/auth_jwt/ (valid_token is signed by the key below and
// expires in 2100; the *.claims seeds are payloads for the signing mode).
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "auth/jwt.h"
#include "auth/token_cache.h"
#include "fuzz/targets.h"

namespace usersd::fuzz {
namespace {

using namespace usersd::auth;

constexpr int64_t kNow = 1'790'000'000;

// Public half of the key that signed fuzz/corpus/auth_jwt/valid_token. The
// private key is not kept anywhere: the fuzzer only needs to verify.
constexpr std::string_view kJwks =
    R"({"keys":[{"kty":"RSA","kid":"fuzz-1","use":"sig","alg":"RS256","n":"70gKFdygW9gc-5jktV58cTLmSAdciT2U19wZEkUcuxuS8J7LOz5fFz5XERin5A2wgJNgB6q_LLW0WZtdKm260XOn8gnLNXvZrR8axeBhEQG0-_pW3bTTCmOslQxkPObA1JqDqMxfwAMWGmZUT6POuj2ObYoNJOeeBm_SDG4yua2aNq5BOap-PexYPQd9O1B2jcOwzw9xxDXA9KhR9b_M6EJNxW8yZ0KiATKpJ316ezMJ7i2nxZBhFatpmY9ea2glZtYE_5sKPeuCFDs9huIiKbTDSP1RchaIaB6f83AxCIhdQFGg7gmNRRS2IUSQJX_uhjtk1BO3a4PiyKis9cCu6w","e":"AQAB"}]})";

// Two policies, chosen by the token's length so that one input always meets
// the same one: the default (exp required) with a maximum age from iat, and
// the lax one (exp optional, no maximum age).
const VerifyOptions& Options(std::string_view token) {
  static const VerifyOptions strict = [] {
    VerifyOptions o;
    o.issuers = {"https://api.workos.com", "https://api.workos.com/user_management/client_123"};
    o.audience = "client_123";
    o.algorithms = {"RS256", "RS384", "PS256", "HS256", "none"};  // the last two must still never pass
    o.max_age_seconds = 86400;
    return o;
  }();
  static const VerifyOptions lax = [] {
    VerifyOptions o = strict;
    o.require_exp = false;
    o.max_age_seconds = 0;
    return o;
  }();
  return token.size() % 2 ? strict : lax;
}

const Jwks& FixedJwks() {
  static const std::shared_ptr<const Jwks> jwks = [] {
    auto r = Jwks::Parse(kJwks);
    USERSD_FUZZ_CHECK(r.ok() && (*r)->size() == 1);
    return *r;
  }();
  return *jwks;
}

// "aud" names the audience: equal to it, or an array holding it.
bool AudienceOk(const nlohmann::json& payload, const std::string& audience) {
  auto it = payload.find("aud");
  if (it == payload.end()) return false;
  if (it->is_string()) return *it == audience;
  if (!it->is_array()) return false;
  for (const auto& a : *it)
    if (a.is_string() && a == audience) return true;
  return false;
}

void CheckVerify(std::string_view token, const Jwks& jwks) {
  const VerifyOptions& o = Options(token);
  auto result = Verify(token, jwks, o, kNow);
  if (auto* f = std::get_if<VerifyFailure>(&result)) {
    USERSD_FUZZ_CHECK(!f->detail.empty());
    (void)TokenErrorName(f->error);
    return;
  }
  const Claims& c = std::get<Claims>(result);
  bool issuer_ok = false;
  for (const auto& iss : o.issuers) issuer_ok = issuer_ok || iss == c.iss;
  USERSD_FUZZ_CHECK(!c.sub.empty());
  // exp is required unless require_exp is off (SPEC 3); absent, Claims::exp
  // is 0 and the cache skips it.
  const bool has_exp = c.raw.contains("exp") && !c.raw.at("exp").is_null();
  USERSD_FUZZ_CHECK(has_exp || !o.require_exp);
  USERSD_FUZZ_CHECK(has_exp ? c.exp + o.leeway_seconds > kNow : c.exp == 0);
  // A maximum age needs iat and ends the token's validity no later than it.
  const bool has_iat = c.raw.contains("iat") && !c.raw.at("iat").is_null();
  if (o.max_age_seconds > 0) {
    USERSD_FUZZ_CHECK(has_iat && c.iat + o.max_age_seconds + o.leeway_seconds > kNow);
    USERSD_FUZZ_CHECK(c.valid_until != 0 && c.valid_until <= c.iat + o.max_age_seconds);
    if (has_exp) USERSD_FUZZ_CHECK(c.valid_until <= c.exp);
  } else {
    USERSD_FUZZ_CHECK(c.valid_until == c.exp);
  }
  USERSD_FUZZ_CHECK(issuer_ok);
  USERSD_FUZZ_CHECK(c.raw.is_object());
  USERSD_FUZZ_CHECK(AudienceOk(c.raw, *o.audience));
  TokenCache cache(2);
  cache.Put(token, c);
  auto hit = cache.Get(token, kNow);
  if (c.valid_until > kNow) USERSD_FUZZ_CHECK(hit && hit->sub == c.sub);
  if (c.valid_until == 0) USERSD_FUZZ_CHECK(!hit);
}

void CheckJwks(std::string_view text) {
  auto r = Jwks::Parse(text);
  if (!r.ok()) {
    USERSD_FUZZ_CHECK(!r.status().message().empty());
    return;
  }
  const Jwks& jwks = **r;
  USERSD_FUZZ_CHECK(jwks.text() == text);
  auto again = Jwks::Parse(jwks.text());
  USERSD_FUZZ_CHECK(again.ok() && (*again)->size() == jwks.size() && (*again)->skipped() == jwks.skipped());
}

std::string B64Url(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

// A signing key made once per process, and a JWKS holding its public half.
struct Signer {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<const Jwks> jwks;
};

std::string BnParam(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  USERSD_FUZZ_CHECK(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

const Signer& GetSigner() {
  static const Signer signer = [] {
    Signer s;
    EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
    USERSD_FUZZ_CHECK(k != nullptr);
    s.key.reset(k, EVP_PKEY_free);
    const nlohmann::json doc = {{"keys",
                                 {{{"kty", "RSA"},
                                   {"kid", "fuzz-sign"},
                                   {"alg", "RS256"},
                                   {"n", B64Url(BnParam(k, OSSL_PKEY_PARAM_RSA_N))},
                                   {"e", B64Url(BnParam(k, OSSL_PKEY_PARAM_RSA_E))}}}}};
    auto r = Jwks::Parse(doc.dump());
    USERSD_FUZZ_CHECK(r.ok() && (*r)->size() == 1);
    s.jwks = *r;
    return s;
  }();
  return signer;
}

std::string SignRs256(std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  USERSD_FUZZ_CHECK(ctx != nullptr);
  USERSD_FUZZ_CHECK(EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, GetSigner().key.get(), nullptr) ==
                    1);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  USERSD_FUZZ_CHECK(EVP_DigestSign(ctx, nullptr, &len, in, data.size()) == 1);
  std::string sig(len, '\0');
  USERSD_FUZZ_CHECK(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size()) == 1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

// Signs `header` and `payload` (raw JSON texts, so duplicate members and odd
// numbers get through) and verifies the token. A token accepted here must
// also carry the claims it was made from.
void CheckSigned(std::string_view header, std::string_view payload) {
  const std::string input = B64Url(header) + "." + B64Url(payload);
  const std::string token = input + "." + B64Url(SignRs256(input));
  CheckVerify(token, *GetSigner().jwks);
  auto result = Verify(token, *GetSigner().jwks, Options(token), kNow);
  if (const auto* c = std::get_if<Claims>(&result)) {
    const nlohmann::json parsed = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
    USERSD_FUZZ_CHECK(parsed.is_object() && parsed == c->raw);
    USERSD_FUZZ_CHECK(parsed.value("sub", "") == c->sub);
    USERSD_FUZZ_CHECK(parsed.value("iss", "") == c->iss);
  }
}

}  // namespace

int FuzzAuthJwt(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  CheckVerify(input, FixedJwks());
  (void)PeekKid(input);
  CheckJwks(input);

  if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
    auto jwks = Jwks::Parse(input.substr(0, nl));
    if (jwks.ok()) CheckVerify(input.substr(nl + 1), **jwks);
  }

  if (!input.empty() && input.front() == '{') {
    if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
      CheckSigned(input.substr(0, nl), input.substr(nl + 1));
    } else {
      CheckSigned(R"({"alg":"RS256","typ":"JWT","kid":"fuzz-sign"})", input);
    }
  }
  return 0;
}

}  // namespace usersd::fuzz
