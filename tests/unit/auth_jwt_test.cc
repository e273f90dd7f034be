// Tests for auth/jwt.h. Keys are generated here with OpenSSL and tokens are
// signed here, so every attack is built from first principles rather than
// from canned strings that might stop meaning what they claim.
#include "auth/jwt.h"
#include "auth/authenticator.h"
#include "common/clock.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace usersd::auth {
namespace {

using json = nlohmann::json;

constexpr int64_t kNow = 1'790'000'000;  // 2026-09-21
constexpr const char* kIssuer = "https://api.workos.com";

// ---------------------------------------------------------------------------
// Test-side JOSE helpers.

std::string B64Url(std::string_view in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(a[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(a[(acc << (6 - bits)) & 63]);
  return out;
}

using PkeyPtr = std::shared_ptr<EVP_PKEY>;

PkeyPtr GenerateRsa(size_t bits) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits);
  REQUIRE(k != nullptr);
  return PkeyPtr(k, EVP_PKEY_free);
}

std::string BnParam(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

json Jwk(const PkeyPtr& k, std::optional<std::string> kid, json extra = json::object()) {
  json j = {{"kty", "RSA"},
            {"n", B64Url(BnParam(k.get(), OSSL_PKEY_PARAM_RSA_N))},
            {"e", B64Url(BnParam(k.get(), OSSL_PKEY_PARAM_RSA_E))}};
  if (kid) j["kid"] = *kid;
  for (auto& [name, v] : extra.items()) j[name] = v;
  return j;
}

std::shared_ptr<const Jwks> MakeJwks(const std::vector<json>& keys) {
  json doc = {{"keys", keys}};
  auto r = Jwks::Parse(doc.dump());
  REQUIRE(r.ok());
  return *r;
}

std::string RsaSign(const PkeyPtr& k, std::string_view alg, std::string_view data) {
  const char* md = alg.substr(2) == "256" ? "SHA256" : alg.substr(2) == "384" ? "SHA384" : "SHA512";
  bool pss = alg.substr(0, 2) == "PS";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  REQUIRE(EVP_DigestSignInit_ex(ctx, &pctx, md, nullptr, nullptr, k.get(), nullptr) == 1);
  if (pss) {
    REQUIRE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
    REQUIRE(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1);
  }
  size_t len = 0;
  REQUIRE(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
  std::string sig(len, '\0');
  REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

// Builds "header.payload.signature" from raw JSON texts, so tests can write
// duplicate keys and other things nlohmann would never serialise.
std::string TokenFromText(const std::string& header, const std::string& payload, const PkeyPtr& k,
                          std::string_view alg = "RS256") {
  std::string input = B64Url(header) + "." + B64Url(payload);
  return input + "." + B64Url(RsaSign(k, alg, input));
}

std::string Token(const json& header, const json& payload, const PkeyPtr& k, std::string_view alg = "RS256") {
  return TokenFromText(header.dump(), payload.dump(), k, alg);
}

json Header(const std::string& kid = "k1", const std::string& alg = "RS256") {
  return {{"alg", alg}, {"typ", "JWT"}, {"kid", kid}};
}

json Payload() {
  return {{"sub", "user_01H"},      {"iss", kIssuer},   {"exp", kNow + 300},
          {"iat", kNow - 10},       {"nbf", kNow - 10}, {"org_id", "org_01"},
          {"role", "admin"},        {"sid", "session_01"},
          {"permissions", {"users:read", "users:write"}}};
}

// Keys are expensive to generate, especially under sanitizers: make them once.
struct Keys {
  PkeyPtr main = GenerateRsa(2048);
  PkeyPtr other = GenerateRsa(2048);    // a second legitimate key, for rotation
  PkeyPtr foreign = GenerateRsa(2048);  // an attacker's key, never in the JWKS
  PkeyPtr small = GenerateRsa(1024);
};
const Keys& K() {
  static const Keys keys;
  return keys;
}

std::shared_ptr<const Jwks> DefaultJwks() { return MakeJwks({Jwk(K().main, "k1"), Jwk(K().other, "k2")}); }

VerifyOptions Opts() {
  VerifyOptions o;
  o.issuers = {kIssuer, "https://api.workos.com/user_management/client_123"};
  return o;
}

// Returns the failure, failing the test if the token was accepted.
VerifyFailure Refused(std::string_view token, const Jwks& jwks, const VerifyOptions& opts = Opts(),
                      int64_t now = kNow) {
  auto r = Verify(token, jwks, opts, now);
  REQUIRE(std::holds_alternative<VerifyFailure>(r));
  VerifyFailure f = std::get<VerifyFailure>(r);
  // Whatever the failure, its detail never echoes the token or its pieces.
  if (token.size() > 8) CHECK(f.detail.find(token.substr(0, 8)) == std::string::npos);
  return f;
}

Claims Accepted(std::string_view token, const Jwks& jwks, const VerifyOptions& opts = Opts(),
                int64_t now = kNow) {
  auto r = Verify(token, jwks, opts, now);
  if (auto* f = std::get_if<VerifyFailure>(&r)) FAIL("refused: " << TokenErrorName(f->error) << ": " << f->detail);
  return std::get<Claims>(r);
}

struct Parts {
  std::string h, p, s;
};
Parts Split(const std::string& t) {
  size_t a = t.find('.'), b = t.find('.', a + 1);
  return {t.substr(0, a), t.substr(a + 1, b - a - 1), t.substr(b + 1)};
}

// ---------------------------------------------------------------------------

TEST_CASE("jwt: accepts a valid RS256 token and returns its claims", "[auth]") {
  auto jwks = DefaultJwks();
  Claims c = Accepted(Token(Header(), Payload(), K().main), *jwks);
  CHECK(c.sub == "user_01H");
  CHECK(c.org_id == "org_01");
  CHECK(c.role == "admin");
  CHECK(c.sid == "session_01");
  CHECK(c.permissions == std::vector<std::string>{"users:read", "users:write"});
  CHECK(c.iss == kIssuer);
  CHECK(c.exp == kNow + 300);
  CHECK(c.iat == kNow - 10);
  CHECK(c.nbf == kNow - 10);
  CHECK(c.raw == Payload());

  // The second key of a rotating pair verifies its own tokens.
  CHECK(Accepted(Token(Header("k2"), Payload(), K().other), *jwks).sub == "user_01H");
}

TEST_CASE("jwt: optional claims default when absent or null", "[auth]") {
  auto jwks = DefaultJwks();
  json p = {{"sub", "u"}, {"iss", kIssuer}, {"exp", kNow + 60}, {"org_id", nullptr}};
  Claims c = Accepted(Token(Header(), p, K().main), *jwks);
  CHECK(c.role == "member");
  CHECK_FALSE(c.org_id.has_value());
  CHECK_FALSE(c.sid.has_value());
  CHECK(c.permissions.empty());
  CHECK(c.iat == 0);
  CHECK(c.nbf == 0);

  SECTION("a claim of the wrong type is malformed") {
    for (const char* name : {"org_id", "role", "sid", "permissions", "iat", "nbf"}) {
      json bad = p;
      bad[name] = json::object();
      CHECK(Refused(Token(Header(), bad, K().main), *jwks).error == TokenError::kMalformed);
    }
    json bad = p;
    bad["permissions"] = {"a", 1};
    CHECK(Refused(Token(Header(), bad, K().main), *jwks).error == TokenError::kMalformed);
  }
}

TEST_CASE("jwt: RS384, RS512 and PS256 verify when the allow-list has them", "[auth]") {
  auto jwks = DefaultJwks();
  VerifyOptions o = Opts();
  o.algorithms = {"RS256", "RS384", "RS512", "PS256", "PS512"};
  for (std::string alg : {"RS384", "RS512", "PS256", "PS512"}) {
    INFO(alg);
    Accepted(Token(Header("k1", alg), Payload(), K().main, alg), *jwks, o);
  }
  // The header names the algorithm the signature was not made with.
  CHECK(Refused(Token(Header("k1", "PS256"), Payload(), K().main, "RS256"), *jwks, o).error ==
        TokenError::kBadSignature);
}

TEST_CASE("jwt: refuses RS384 when only RS256 is allowed", "[auth]") {
  auto jwks = DefaultJwks();
  VerifyFailure f = Refused(Token(Header("k1", "RS384"), Payload(), K().main, "RS384"), *jwks);
  CHECK(f.error == TokenError::kBadAlgorithm);
  CHECK(f.detail == "algorithm RS384 not allowed");
}

TEST_CASE("jwt: refuses alg none, even when configuration lists it", "[auth]") {
  auto jwks = DefaultJwks();
  std::string unsigned_token =
      B64Url(json{{"alg", "none"}, {"kid", "k1"}}.dump()) + "." + B64Url(Payload().dump()) + ".";
  VerifyFailure f = Refused(unsigned_token, *jwks);
  CHECK(f.error == TokenError::kBadAlgorithm);
  CHECK(f.detail == "algorithm none not allowed");

  VerifyOptions o = Opts();
  o.algorithms = {"none", "RS256"};
  CHECK(Refused(unsigned_token, *jwks, o).error == TokenError::kBadAlgorithm);

  // "none" carrying a real RS256 signature is no better.
  Parts good = Split(Token(Header(), Payload(), K().main));
  std::string relabelled = B64Url(json{{"alg", "none"}, {"kid", "k1"}}.dump()) + "." + good.p + "." + good.s;
  CHECK(Refused(relabelled, *jwks, o).error == TokenError::kBadAlgorithm);
}

TEST_CASE("jwt: refuses HS256 signed with the RSA public key as HMAC secret", "[auth]") {
  auto jwks = DefaultJwks();
  // The classic confusion attack: the attacker knows the public key, so uses
  // its bytes (here both the raw modulus and the JWK text) as an HMAC secret.
  for (const std::string& secret : {BnParam(K().main.get(), OSSL_PKEY_PARAM_RSA_N), Jwk(K().main, "k1").dump()}) {
    std::string input = B64Url(Header("k1", "HS256").dump()) + "." + B64Url(Payload().dump());
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    REQUIRE(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                 reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len) != nullptr);
    std::string token = input + "." + B64Url(std::string(reinterpret_cast<char*>(mac), mac_len));

    VerifyFailure f = Refused(token, *jwks);
    CHECK(f.error == TokenError::kBadAlgorithm);
    CHECK(f.detail == "algorithm HS256 not allowed");

    // A misconfigured allow-list still cannot make an RSA key do HMAC.
    VerifyOptions o = Opts();
    o.algorithms = {"RS256", "HS256"};
    CHECK(Refused(token, *jwks, o).error == TokenError::kBadAlgorithm);
  }
}

TEST_CASE("jwt: refuses a token signed by a foreign key", "[auth]") {
  auto jwks = DefaultJwks();
  VerifyFailure f = Refused(Token(Header("k1"), Payload(), K().foreign), *jwks);
  CHECK(f.error == TokenError::kBadSignature);
  CHECK(f.detail == "signature does not verify");
  // Signed by the other legitimate key but naming k1: the kid decides the key.
  CHECK(Refused(Token(Header("k1"), Payload(), K().other), *jwks).error == TokenError::kBadSignature);
}

TEST_CASE("jwt: checks the signature before trusting any claim", "[auth]") {
  auto jwks = DefaultJwks();
  json expired = Payload();
  expired["exp"] = kNow - 3600;
  expired["iss"] = "https://evil.example";
  CHECK(Refused(Token(Header(), expired, K().foreign), *jwks).error == TokenError::kBadSignature);
  // A payload that is not even JSON is only judged after the signature.
  CHECK(Refused(TokenFromText(Header().dump(), "not json", K().foreign), *jwks).error == TokenError::kBadSignature);
  CHECK(Refused(TokenFromText(Header().dump(), "not json", K().main), *jwks).error == TokenError::kMalformed);
}

TEST_CASE("jwt: refuses a tampered payload carrying the original signature", "[auth]") {
  auto jwks = DefaultJwks();
  Parts good = Split(Token(Header(), Payload(), K().main));
  json evil = Payload();
  evil["role"] = "owner";
  std::string tampered = good.h + "." + B64Url(evil.dump()) + "." + good.s;
  CHECK(Refused(tampered, *jwks).error == TokenError::kBadSignature);

  // So is a tampered header (here a kid swap to the other real key).
  std::string swapped = B64Url(Header("k2").dump()) + "." + good.p + "." + good.s;
  CHECK(Refused(swapped, *jwks).error == TokenError::kBadSignature);
}

TEST_CASE("jwt: every single-character change to a valid token is refused", "[auth]") {
  auto jwks = DefaultJwks();
  std::string good = Token(Header(), Payload(), K().main);
  Accepted(good, *jwks);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string t = good;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    if (t[i] == good[i]) continue;
    auto r = Verify(t, *jwks, Opts(), kNow);
    INFO("position " << i);
    CHECK(std::holds_alternative<VerifyFailure>(r));
  }
}

TEST_CASE("jwt: unknown kid, including path tricks, is just unknown", "[auth]") {
  auto jwks = DefaultJwks();
  std::vector<std::string> kids = {"k3", "../../etc/passwd", "/dev/zero", std::string("k1\0", 3), "K1", "k1 ", ""};
  for (const std::string& kid : kids) {
    INFO(kid);
    VerifyFailure f = Refused(Token(Header(kid), Payload(), K().main), *jwks);
    CHECK(f.error == TokenError::kUnknownKid);
    CHECK(f.detail == "unknown signing key id");
  }
  json h = Header();
  h["kid"] = 1;
  CHECK(Refused(Token(h, Payload(), K().main), *jwks).error == TokenError::kMalformed);
}

TEST_CASE("jwt: a token without kid matches only a single-key set", "[auth]") {
  json h = {{"alg", "RS256"}};
  std::string token = Token(h, Payload(), K().main);
  Accepted(token, *MakeJwks({Jwk(K().main, std::nullopt)}));
  Accepted(token, *MakeJwks({Jwk(K().main, "k1")}));
  // With two keys we would have to guess; refuse instead.
  CHECK(Refused(token, *MakeJwks({Jwk(K().main, std::nullopt), Jwk(K().other, std::nullopt)})).error ==
        TokenError::kUnknownKid);
  // A kid-less key never matches a token that names a kid.
  CHECK(Refused(Token(Header("k1"), Payload(), K().main), *MakeJwks({Jwk(K().main, std::nullopt)})).error ==
        TokenError::kUnknownKid);
}

TEST_CASE("jwt: the key's own alg must match the token's", "[auth]") {
  auto jwks = MakeJwks({Jwk(K().main, "k1", {{"alg", "RS256"}, {"use", "sig"}})});
  VerifyOptions o = Opts();
  o.algorithms = {"RS256", "RS512"};
  Accepted(Token(Header(), Payload(), K().main), *jwks, o);
  VerifyFailure f = Refused(Token(Header("k1", "RS512"), Payload(), K().main, "RS512"), *jwks, o);
  CHECK(f.error == TokenError::kBadAlgorithm);
  CHECK(f.detail == "algorithm RS512 does not match the key's RS256");
}

TEST_CASE("jwt: refuses an expired token, with leeway", "[auth]") {
  auto jwks = DefaultJwks();
  json p = Payload();
  p["exp"] = 1795687200;  // 2026-11-26T10:00:00Z
  std::string token = Token(Header(), p, K().main);
  VerifyFailure f = Refused(token, *jwks, Opts(), 1795687200 + 30);
  CHECK(f.error == TokenError::kExpired);
  CHECK(f.detail == "token expired at 2026-11-26T10:00:00Z");
  // Inside the 30 s leeway it is still good.
  Accepted(token, *jwks, Opts(), 1795687200 + 29);
  VerifyOptions strict = Opts();
  strict.leeway_seconds = 0;
  Accepted(token, *jwks, strict, 1795687200 - 1);
  CHECK(Refused(token, *jwks, strict, 1795687200).error == TokenError::kExpired);

  SECTION("absurd values do not overflow") {
    VerifyOptions huge = Opts();
    huge.leeway_seconds = std::numeric_limits<int64_t>::max();  // clamped to a day
    CHECK(Refused(token, *jwks, huge, 1795687200 + 86400).error == TokenError::kExpired);
    json far = Payload();
    far["exp"] = std::numeric_limits<int64_t>::max();
    CHECK(Refused(Token(Header(), far, K().main), *jwks).error == TokenError::kMalformed);
    far["exp"] = 1e300;
    CHECK(Refused(Token(Header(), far, K().main), *jwks).error == TokenError::kMalformed);
    far["exp"] = static_cast<double>(kNow) + 60.5;  // fractional NumericDate is legal
    CHECK(Accepted(Token(Header(), far, K().main), *jwks).exp == kNow + 60);
  }
}

TEST_CASE("jwt: a token without exp (absent or null) is refused by default (SPEC 3, auth.require_exp)", "[auth]") {
  auto jwks = DefaultJwks();
  json p = Payload();
  p.erase("exp");
  VerifyFailure f = Refused(Token(Header(), p, K().main), *jwks);
  CHECK(f.error == TokenError::kExpired);
  CHECK(f.detail.find("auth.require_exp") != std::string::npos);
  p["exp"] = nullptr;
  CHECK(Refused(Token(Header(), p, K().main), *jwks).error == TokenError::kExpired);
}

TEST_CASE("jwt: with require_exp off, a token without exp is accepted with exp 0 and never cacheable", "[auth]") {
  auto jwks = DefaultJwks();
  VerifyOptions o = Opts();
  o.require_exp = false;
  json p = Payload();
  p.erase("exp");
  Claims c = Accepted(Token(Header(), p, K().main), *jwks, o);
  CHECK(c.exp == 0);
  CHECK(c.valid_until == 0);
  CHECK(c.sub == p["sub"]);
  p["exp"] = nullptr;
  CHECK(Accepted(Token(Header(), p, K().main), *jwks, o).exp == 0);
  // Present, it is still checked: wrong type, or in the past (0 is 1970).
  p["exp"] = "tomorrow";
  CHECK(Refused(Token(Header(), p, K().main), *jwks, o).error == TokenError::kMalformed);
  p["exp"] = 0;
  CHECK(Refused(Token(Header(), p, K().main), *jwks, o).error == TokenError::kExpired);
}

TEST_CASE("jwt: max_age_seconds refuses tokens issued too long ago, or without iat, and bounds valid_until", "[auth]") {
  auto jwks = DefaultJwks();
  VerifyOptions o = Opts();
  json p = Payload();  // iat kNow - 10, exp kNow + 300
  CHECK(Accepted(Token(Header(), p, K().main), *jwks, o).valid_until == kNow + 300);
  o.max_age_seconds = 60;
  Claims c = Accepted(Token(Header(), p, K().main), *jwks, o);
  CHECK(c.valid_until == kNow - 10 + 60);  // the age ends before exp
  p["iat"] = kNow - 60 - 30 + 1;           // within the leeway (30 s)
  CHECK(Accepted(Token(Header(), p, K().main), *jwks, o).exp == kNow + 300);
  p["iat"] = kNow - 60 - 30;
  VerifyFailure f = Refused(Token(Header(), p, K().main), *jwks, o);
  CHECK(f.error == TokenError::kExpired);
  CHECK(f.detail.find("older than 60 seconds") != std::string::npos);
  p.erase("iat");
  f = Refused(Token(Header(), p, K().main), *jwks, o);
  CHECK(f.error == TokenError::kExpired);
  CHECK(f.detail.find("no iat") != std::string::npos);
  // A long max age leaves exp in charge.
  p["iat"] = kNow - 10;
  o.max_age_seconds = 86400;
  CHECK(Accepted(Token(Header(), p, K().main), *jwks, o).valid_until == kNow + 300);
}

TEST_CASE("jwt: refuses a token whose nbf is in the future", "[auth]") {
  auto jwks = DefaultJwks();
  json p = Payload();
  p["nbf"] = kNow + 31;
  VerifyFailure f = Refused(Token(Header(), p, K().main), *jwks);
  CHECK(f.error == TokenError::kNotYetValid);
  CHECK(f.detail.rfind("token not valid before 20", 0) == 0);
  p["nbf"] = kNow + 30;  // within leeway
  Accepted(Token(Header(), p, K().main), *jwks);
}

TEST_CASE("jwt: refuses an issuer that is not in the allow-list", "[auth]") {
  auto jwks = DefaultJwks();
  json p = Payload();
  p["iss"] = "https://api.workos.com.evil.example";
  VerifyFailure f = Refused(Token(Header(), p, K().main), *jwks);
  CHECK(f.error == TokenError::kBadIssuer);
  CHECK(f.detail == "issuer \"https://api.workos.com.evil.example\" is not accepted (not in auth.issuers)");
  p["iss"] = "https://api.workos.com/";  // exact match only
  CHECK(Refused(Token(Header(), p, K().main), *jwks).error == TokenError::kBadIssuer);
  p.erase("iss");
  CHECK(Refused(Token(Header(), p, K().main), *jwks).error == TokenError::kBadIssuer);

  // The second default issuer is accepted; an empty allow-list accepts nothing.
  p["iss"] = "https://api.workos.com/user_management/client_123";
  Accepted(Token(Header(), p, K().main), *jwks);
  VerifyOptions none = Opts();
  none.issuers.clear();
  CHECK(Refused(Token(Header(), Payload(), K().main), *jwks, none).error == TokenError::kBadIssuer);
}

TEST_CASE("jwt: audience is checked only when configured", "[auth]") {
  auto jwks = DefaultJwks();
  json p = Payload();
  Accepted(Token(Header(), p, K().main), *jwks);  // no aud, none configured

  VerifyOptions o = Opts();
  o.audience = "client_123";
  VerifyFailure f = Refused(Token(Header(), p, K().main), *jwks, o);
  CHECK(f.error == TokenError::kBadAudience);
  CHECK(f.detail == "token has no aud; auth.audience requires one");

  p["aud"] = "client_123";
  Accepted(Token(Header(), p, K().main), *jwks, o);
  p["aud"] = {"other", "client_123"};
  Accepted(Token(Header(), p, K().main), *jwks, o);
  p["aud"] = "client_999";
  f = Refused(Token(Header(), p, K().main), *jwks, o);
  CHECK(f.error == TokenError::kBadAudience);
  // The token's aud and the key to set are named (issue 22), the configured
  // value is not.
  CHECK(f.detail == "token aud \"client_999\" does not match auth.audience");
  p["aud"] = {"other", 5};
  f = Refused(Token(Header(), p, K().main), *jwks, o);
  CHECK(f.error == TokenError::kBadAudience);
  CHECK(f.detail == "token aud [\"other\",5] does not match auth.audience");
  p["aud"] = std::string(400, 'a');
  CHECK(Refused(Token(Header(), p, K().main), *jwks, o).detail.size() < 330);
  Accepted(Token(Header(), p, K().main), *jwks);  // ignored when not configured
}

TEST_CASE("jwt: refuses a token without sub", "[auth]") {
  auto jwks = DefaultJwks();
  json p = Payload();
  p.erase("sub");
  VerifyFailure f = Refused(Token(Header(), p, K().main), *jwks);
  CHECK(f.error == TokenError::kMissingSub);
  p["sub"] = "";
  CHECK(Refused(Token(Header(), p, K().main), *jwks).error == TokenError::kMissingSub);
  p["sub"] = 42;
  CHECK(Refused(Token(Header(), p, K().main), *jwks).error == TokenError::kMissingSub);
}

TEST_CASE("jwt: refuses truncated and mis-segmented tokens", "[auth]") {
  auto jwks = DefaultJwks();
  std::string good = Token(Header(), Payload(), K().main);
  Parts p = Split(good);
  CHECK(Refused(p.h + "." + p.p, *jwks).error == TokenError::kMalformed);
  CHECK(Refused(p.h, *jwks).error == TokenError::kMalformed);
  CHECK(Refused(good + ".", *jwks).error == TokenError::kMalformed);
  CHECK(Refused(good + "." + p.s, *jwks).error == TokenError::kMalformed);
  CHECK(Refused("." + p.p + "." + p.s, *jwks).error == TokenError::kMalformed);
  CHECK(Refused(p.h + ".." + p.s, *jwks).error == TokenError::kMalformed);
  CHECK(Refused(p.h + "." + p.p + ".", *jwks).error == TokenError::kBadSignature);
  // Cutting the signature short: either not base64url any more or too short.
  for (size_t cut : {1, 2, 4, 100}) {
    TokenError e = Refused(good.substr(0, good.size() - cut), *jwks).error;
    CHECK((e == TokenError::kMalformed || e == TokenError::kBadSignature));
  }
  // Cutting the header or payload short breaks the JSON or the signature.
  std::string short_header = p.h.substr(0, p.h.size() - 4) + "." + p.p + "." + p.s;
  CHECK(Refused(short_header, *jwks).error == TokenError::kMalformed);
  std::string short_payload = p.h + "." + p.p.substr(0, p.p.size() - 4) + "." + p.s;
  TokenError e = Refused(short_payload, *jwks).error;
  CHECK((e == TokenError::kMalformed || e == TokenError::kBadSignature));
}

TEST_CASE("jwt: base64url is strict", "[auth]") {
  auto jwks = DefaultJwks();
  std::string good = Token(Header(), Payload(), K().main);
  Parts p = Split(good);

  auto check = [&](const std::string& token) {
    VerifyFailure f = Refused(token, *jwks);
    CHECK(f.error == TokenError::kMalformed);
    CHECK(f.detail.find("base64url") != std::string::npos);
  };
  SECTION("padding") {
    check(p.h + "=." + p.p + "." + p.s);
    check(p.h + "." + p.p + "==." + p.s);
    check(p.h + "." + p.p + "." + p.s + "=");
  }
  SECTION("the standard alphabet's + and /") {
    std::string s = p.s;
    size_t i = s.find_first_of("-_");
    REQUIRE(i != std::string::npos);  // 342 random characters have one
    s[i] = s[i] == '-' ? '+' : '/';
    check(p.h + "." + p.p + "." + s);
  }
  SECTION("whitespace and other characters") {
    check(p.h + "." + p.p.substr(0, 10) + " " + p.p.substr(10) + "." + p.s);
    check(p.h + "." + p.p + "." + p.s.substr(0, 20) + "\n" + p.s.substr(20));
    check(p.h + "." + p.p + "\t." + p.s);
    check(p.h + "." + p.p + "." + p.s.substr(0, 5) + "\xc3\xa9" + p.s.substr(5));
    check(p.h + "." + p.p + "." + p.s.substr(0, 5) + std::string(1, '\0') + p.s.substr(5));
  }
  SECTION("a length no encoder produces") {
    std::string payload = p.p;
    while (payload.size() % 4 != 1) payload += 'A';
    check(p.h + "." + payload + "." + p.s);
  }
  SECTION("non-zero unused bits in the last character") {
    // Pad the header JSON until its encoding has unused bits, then set one.
    json h = Header();
    std::string pad;
    while (B64Url(h.dump()).size() % 4 == 0) h["x"] = pad += "x";
    std::string hb = B64Url(h.dump());
    std::string input = hb + "." + p.p;
    std::string token = input + "." + B64Url(RsaSign(K().main, "RS256", input));
    Accepted(token, *jwks);
    static const std::string a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t v = a.find(hb.back());
    hb.back() = a[v | 1];
    check(hb + "." + p.p + "." + p.s);
  }
}

TEST_CASE("jwt: header and payload must be JSON objects", "[auth]") {
  auto jwks = DefaultJwks();
  Parts p = Split(Token(Header(), Payload(), K().main));
  for (const char* h : {"[\"RS256\"]", "\"RS256\"", "null", "{", "{\"alg\":\"RS256\"} x", "\xff\xfe"}) {
    INFO(h);
    CHECK(Refused(B64Url(h) + "." + p.p + "." + p.s, *jwks).error == TokenError::kMalformed);
  }
  for (const char* payload : {"[1,2]", "\"user\"", "42", "{\"sub\":\"\xff\"}"}) {
    INFO(payload);
    CHECK(Refused(TokenFromText(Header().dump(), payload, K().main), *jwks).error == TokenError::kMalformed);
  }
  CHECK(Refused(Token({{"kid", "k1"}}, Payload(), K().main), *jwks).error == TokenError::kMalformed);  // no alg
  json crit = Header();
  crit["crit"] = {"exp"};
  CHECK(Refused(Token(crit, Payload(), K().main), *jwks).error == TokenError::kMalformed);
}

TEST_CASE("jwt: duplicate member names are refused", "[auth]") {
  auto jwks = DefaultJwks();
  std::string payload = Payload().dump();
  SECTION("in the header") {
    std::string h = R"({"alg":"none","kid":"k1","alg":"RS256"})";
    VerifyFailure f = Refused(TokenFromText(h, payload, K().main), *jwks);
    CHECK(f.error == TokenError::kMalformed);
    CHECK(f.detail == "header has a duplicate member name");
    // Escapes do not hide a duplicate.
    h = R"({"alg":"RS256","kid":"k1","\u006bid":"k2"})";
    CHECK(Refused(TokenFromText(h, payload, K().main), *jwks).error == TokenError::kMalformed);
  }
  SECTION("in the signed payload") {
    std::string dup = payload.substr(0, payload.size() - 1) + R"(,"sub":"user_admin"})";
    VerifyFailure f = Refused(TokenFromText(Header().dump(), dup, K().main), *jwks);
    CHECK(f.error == TokenError::kMalformed);
    CHECK(f.detail == "payload has a duplicate member name");
    std::string nested = payload.substr(0, payload.size() - 1) + R"(,"ext":{"a":1,"a":2}})";
    CHECK(Refused(TokenFromText(Header().dump(), nested, K().main), *jwks).error == TokenError::kMalformed);
    // The same name in sibling objects is fine.
    std::string siblings = payload.substr(0, payload.size() - 1) + R"(,"x":{"a":1},"y":{"a":2}})";
    Accepted(TokenFromText(Header().dump(), siblings, K().main), *jwks);
  }
}

TEST_CASE("jwt: size limits come before any parsing", "[auth]") {
  auto jwks = DefaultJwks();
  CHECK(Refused("", *jwks).error == TokenError::kMissing);

  json h = Header();
  h["pad"] = std::string(9000, 'x');
  std::string huge = Token(h, Payload(), K().main);
  VerifyFailure f = Refused(huge, *jwks);
  CHECK(f.error == TokenError::kTooLarge);
  CHECK(f.detail == "token is " + std::to_string(huge.size()) + " bytes, over the 8192 byte limit");
  // Junk of the same size is refused the same way: nothing was parsed.
  CHECK(Refused(std::string(8193, '!'), *jwks).error == TokenError::kTooLarge);

  // The limit is inclusive.
  std::string good = Token(Header(), Payload(), K().main);
  VerifyOptions o = Opts();
  o.max_token_bytes = good.size();
  Accepted(good, *jwks, o);
  o.max_token_bytes = good.size() - 1;
  CHECK(Refused(good, *jwks, o).error == TokenError::kTooLarge);

  // A deeply nested header is refused even when the size limit allows it.
  o.max_token_bytes = 1 << 20;
  std::string deep = std::string(1000, '[') + std::string(1000, ']');
  std::string dh = R"({"alg":"RS256","kid":"k1","x":)" + deep + "}";
  f = Refused(TokenFromText(dh, Payload().dump(), K().main), *jwks, o);
  CHECK(f.error == TokenError::kMalformed);
  CHECK(f.detail == "header is nested too deeply");
}

TEST_CASE("jwt: details sanitise what comes from the token", "[auth]") {
  auto jwks = DefaultJwks();
  std::string h = R"({"alg":"<script>\n","kid":"k1"})";
  VerifyFailure f = Refused(TokenFromText(h, Payload().dump(), K().main), *jwks);
  CHECK(f.error == TokenError::kBadAlgorithm);
  CHECK(f.detail == "algorithm ?script?? not allowed");
}

TEST_CASE("jwt: Jwks::Parse refuses documents that are not a key set", "[auth]") {
  for (const char* doc : {"", "not json", "[]", "{}", R"({"keys":{}})", R"({"keys":"k"})", "{\"keys\":[]"}) {
    INFO(doc);
    auto r = Jwks::Parse(doc);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  auto empty = Jwks::Parse(R"({"keys":[]})");
  REQUIRE(empty.ok());
  CHECK((*empty)->size() == 0);
  // An empty set verifies nothing.
  CHECK(Refused(Token(Header(), Payload(), K().main), **empty).error == TokenError::kUnknownKid);
}

TEST_CASE("jwt: Jwks::Parse skips unusable keys and keeps the rest", "[auth]") {
  json good = Jwk(K().main, "k1");
  json no_n = good;
  no_n.erase("n");
  json padded_n = good;
  padded_n["n"] = good["n"].get<std::string>() + "=";
  json numeric_kid = Jwk(K().other, std::nullopt);
  numeric_kid["kid"] = 7;
  json even_e = Jwk(K().other, "even");
  even_e["e"] = B64Url(std::string("\x01\x00\x00", 3));
  std::vector<json> keys = {
      Jwk(K().small, "small"),                           // 1024 bits: too small
      {{"kty", "EC"}, {"kid", "ec"}, {"crv", "P-256"}},  // not RSA
      Jwk(K().other, "enc", {{"use", "enc"}}),           // encryption key
      Jwk(K().other, "ops", {{"key_ops", {"encrypt"}}}),
      Jwk(K().other, "hs", {{"alg", "HS256"}}),
      no_n,
      padded_n,
      numeric_kid,
      even_e,
      "not an object",
      good,
      Jwk(K().other, "k1"),  // duplicate kid: the first one wins
      Jwk(K().other, "k2", {{"use", "sig"}, {"alg", "RS256"}, {"key_ops", {"verify"}}}),
  };
  json doc = {{"keys", keys}, {"extra", "ignored"}};
  std::string text = doc.dump();
  auto r = Jwks::Parse(text);
  REQUIRE(r.ok());
  const Jwks& jwks = **r;
  CHECK(jwks.size() == 2);
  CHECK(jwks.HasKid("k1"));
  CHECK(jwks.HasKid("k2"));
  CHECK_FALSE(jwks.HasKid("small"));
  CHECK_FALSE(jwks.HasKid("enc"));
  CHECK(jwks.text() == text);
  CHECK(jwks.skipped().size() == keys.size() - 2);
  // Each entry is skipped for the reason it was built to exercise.
  std::vector<std::string> expected = {
      "key 0: RSA key of 1024 bits is under the 2048 bit minimum",
      "key 1: kty is not RSA",
      "key 2: use is not sig",
      "key 3: key_ops does not include verify",
      "key 4: alg is not an RSA signature algorithm",
      "key 5: n or e is missing or not strict base64url",
      "key 6: n or e is missing or not strict base64url",
      "key 7: kid is not a string",
      "key 8: RSA exponent is not an odd number between 3 and 2^64",
      "key 9: not a JSON object",
      "key 11: duplicate kid k1",
  };
  CHECK(jwks.skipped() == expected);
  // The first k1 (K().main) is the one kept.
  Accepted(Token(Header("k1"), Payload(), K().main), jwks);
  Accepted(Token(Header("k2"), Payload(), K().other), jwks);
  CHECK(Refused(Token(Header("small"), Payload(), K().small), jwks).error == TokenError::kUnknownKid);
}

TEST_CASE("jwt: PeekKid reads the kid without verifying", "[auth]") {
  CHECK(PeekKid(Token(Header("k9"), Payload(), K().foreign)) == "k9");
  CHECK(PeekKid(B64Url(R"({"alg":"RS256","kid":"k1"})") + ".x") == "k1");
  CHECK_FALSE(PeekKid(Token({{"alg", "RS256"}}, Payload(), K().main)).has_value());
  CHECK_FALSE(PeekKid(B64Url(R"({"alg":"RS256","kid":1})") + ".x.y").has_value());
  CHECK_FALSE(PeekKid(B64Url(R"({"kid":"a","kid":"b"})") + ".x.y").has_value());
  CHECK_FALSE(PeekKid("").has_value());
  CHECK_FALSE(PeekKid("no dots").has_value());
  CHECK_FALSE(PeekKid("%%%.x.y").has_value());
  CHECK_FALSE(PeekKid(B64Url("[1]") + ".x.y").has_value());
}

TEST_CASE("jwt: TokenErrorName gives stable metric labels", "[auth]") {
  CHECK(std::string(TokenErrorName(TokenError::kMissing)) == "missing_token");
  CHECK(std::string(TokenErrorName(TokenError::kTooLarge)) == "too_large");
  CHECK(std::string(TokenErrorName(TokenError::kMalformed)) == "malformed");
  CHECK(std::string(TokenErrorName(TokenError::kBadAlgorithm)) == "bad_algorithm");
  CHECK(std::string(TokenErrorName(TokenError::kUnknownKid)) == "unknown_kid");
  CHECK(std::string(TokenErrorName(TokenError::kBadSignature)) == "bad_signature");
  CHECK(std::string(TokenErrorName(TokenError::kExpired)) == "expired");
  CHECK(std::string(TokenErrorName(TokenError::kNotYetValid)) == "not_yet_valid");
  CHECK(std::string(TokenErrorName(TokenError::kBadIssuer)) == "bad_issuer");
  CHECK(std::string(TokenErrorName(TokenError::kBadAudience)) == "bad_audience");
  CHECK(std::string(TokenErrorName(TokenError::kMissingSub)) == "missing_sub");
}

TEST_CASE("jwt: one Jwks verifies from several threads at once", "[auth]") {
  auto jwks = DefaultJwks();
  std::string good = Token(Header(), Payload(), K().main);
  std::string bad = Token(Header(), Payload(), K().foreign);
  std::atomic<int> accepted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (std::holds_alternative<Claims>(Verify(good, *jwks, Opts(), kNow))) ++accepted;
        if (std::holds_alternative<VerifyFailure>(Verify(bad, *jwks, Opts(), kNow))) ++refused;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(accepted == 100);
  CHECK(refused == 100);
}


// The per-connection memo stands for a cache hit, never for more.
TEST_CASE("authenticator: a connection's token memo is a cache hit, dropped with the cache", "[auth]") {
  FakeClock clock(kNow * 1000);
  Authenticator auth(clock, Opts());
  auth.SetJwks(DefaultJwks());
  TokenMemo memo;
  auto run = [&](const std::string& token, TokenMemo* m) {
    std::optional<AuthResult> out;
    auth.Authenticate("Bearer " + token, [&](AuthResult r) { out = std::move(r); }, m);
    REQUIRE(out.has_value());  // synchronous: no refetch configured
    return std::move(*out);
  };
  auto accepted = [](const AuthResult& r) { return std::holds_alternative<std::shared_ptr<const Claims>>(r); };
  const std::string a = Token(Header("k1"), Payload(), K().main);
  json pb = Payload();
  pb["sub"] = "user_other";
  const std::string b = Token(Header("k1"), pb, K().main);

  REQUIRE(accepted(run(a, &memo)));
  CHECK(memo.token == a);
  CHECK(auth.cache_hits() == 0);
  auto again = run(a, &memo);
  REQUIRE(accepted(again));
  CHECK(std::get<std::shared_ptr<const Claims>>(again)->sub == "user_01H");
  CHECK(auth.cache_hits() == 1);

  SECTION("another token on the same connection is verified on its own") {
    auto other = run(b, &memo);
    REQUIRE(accepted(other));
    CHECK(std::get<std::shared_ptr<const Claims>>(other)->sub == "user_other");
    CHECK(memo.token == b);
    // A tampered token never matches the memo.
    std::string bad = b;
    bad.back() = bad.back() == 'A' ? 'B' : 'A';
    CHECK_FALSE(accepted(run(bad, &memo)));
  }
  SECTION("new keys: the memo no longer counts") {
    auth.SetJwks(MakeJwks({Jwk(K().other, "k2")}));  // k1 rotated out
    CHECK_FALSE(accepted(run(a, &memo)));
    CHECK(memo.claims == nullptr);
  }
  SECTION("new options: the memo no longer counts") {
    VerifyOptions strict = Opts();
    strict.issuers = {"https://issuer.example"};
    auth.SetOptions(strict);
    CHECK_FALSE(accepted(run(a, &memo)));
  }
  SECTION("at exp the memo no longer counts") {
    // Verified afresh (within the verifier's leeway), not taken from memo.
    clock.SetNowMs((kNow + 300) * 1000);
    const uint64_t hits = auth.cache_hits();
    run(a, &memo);
    CHECK(auth.cache_hits() == hits);
    clock.SetNowMs((kNow + 3600) * 1000);
    CHECK_FALSE(accepted(run(a, &memo)));
  }
}

}  // namespace
}  // namespace usersd::auth
