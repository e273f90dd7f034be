#include "auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <limits>
#include <set>

namespace usersd::auth {

using json = nlohmann::json;

// Gives Verify access to Jwks::Find without making Find public.
struct JwksAccess {
  static const Jwks::Key* Find(const Jwks& jwks, const std::optional<std::string>& kid) {
    return jwks.Find(kid);
  }
};

namespace {

// Key sizes outside this range are skipped at Parse. The floor is our policy;
// the ceiling keeps one verification cheap (RSA cost grows with the square of
// the size), since anyone can make us verify against every key we hold.
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;
// OpenSSL refuses public exponents over 64 bits for large moduli anyway.
constexpr int kMaxRsaExponentBits = 64;
// Nesting limits: real headers and payloads are flat or nearly so. The limit
// bounds the work an attacker-chosen document can cause before we refuse it.
constexpr size_t kMaxTokenJsonDepth = 16;
constexpr size_t kMaxJwksJsonDepth = 32;
// Leeway larger than a day is a configuration mistake that would make expiry
// meaningless; clamping also keeps the time arithmetic far from overflow.
constexpr int64_t kMaxLeewaySeconds = 86400;

// The algorithms this file implements. All are RSA, which is what makes
// "none" and HS256 impossible whatever the configured allow-list says.
struct AlgSpec {
  std::string_view name;
  const char* digest;  // OpenSSL digest name
  bool pss;
};
constexpr std::array<AlgSpec, 6> kAlgs = {{
    {"RS256", "SHA256", false},
    {"RS384", "SHA384", false},
    {"RS512", "SHA512", false},
    {"PS256", "SHA256", true},
    {"PS384", "SHA384", true},
    {"PS512", "SHA512", true},
}};

const AlgSpec* FindAlg(std::string_view name) {
  for (const AlgSpec& a : kAlgs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Strict base64url (RFC 7515 section 2): alphabet [A-Za-z0-9-_], no padding,
// no whitespace. We also refuse a final character whose unused low bits are
// not zero, so each byte string has exactly one accepted encoding and two
// different token strings can never carry the same signed content.

constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kDecode = MakeDecodeTable();

bool Base64UrlDecode(std::string_view in, std::string* out) {
  out->clear();
  // A length of 1 mod 4 would be 6 bits of a byte: no encoder produces it.
  if (in.size() % 4 == 1) return false;
  out->reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = kDecode[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits (2 or 4) are padding inside the last character; they must be zero.
  return (acc & ((1u << bits) - 1)) == 0;
}

// ---------------------------------------------------------------------------
// JSON. nlohmann keeps the last of duplicate member names while other JWT
// libraries may keep the first; refusing duplicates avoids two parties reading
// different claims from one signed payload. The check is a SAX pass that
// builds nothing, followed by the ordinary DOM parse; both are linear and the
// input is at most a few KiB.

class StrictJsonChecker {
 public:
  StrictJsonChecker(bool reject_duplicates, size_t max_depth)
      : reject_duplicates_(reject_duplicates), max_depth_(max_depth) {}

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const std::string&) { return true; }
  bool string(std::string&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) {
    if (!Enter()) return false;
    if (reject_duplicates_) keys_.emplace_back();
    return true;
  }
  bool key(std::string& k) {
    if (reject_duplicates_ && !keys_.back().insert(k).second) {
      duplicate_ = true;
      return false;
    }
    return true;
  }
  bool end_object() {
    if (reject_duplicates_) keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) { return Enter(); }
  bool end_array() {
    --depth_;
    return true;
  }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception&) {
    return false;
  }

  bool duplicate() const { return duplicate_; }
  bool too_deep() const { return too_deep_; }

 private:
  bool Enter() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  const bool reject_duplicates_;
  const size_t max_depth_;
  size_t depth_ = 0;
  std::vector<std::set<std::string>> keys_;  // member names seen, per open object
  bool duplicate_ = false;
  bool too_deep_ = false;
};

enum class JsonProblem { kNone, kInvalid, kDuplicate, kTooDeep, kNotObject };

const char* JsonProblemText(JsonProblem p) {
  switch (p) {
    case JsonProblem::kNone: return "ok";
    case JsonProblem::kInvalid: return "is not valid JSON";
    case JsonProblem::kDuplicate: return "has a duplicate member name";
    case JsonProblem::kTooDeep: return "is nested too deeply";
    case JsonProblem::kNotObject: return "is not a JSON object";
  }
  return "is invalid";
}

// Parses `text` into *out. May throw only std::bad_alloc; callers catch at the edge.
JsonProblem ParseJsonObject(std::string_view text, bool reject_duplicates, size_t max_depth,
                            json* out) {
  StrictJsonChecker checker(reject_duplicates, max_depth);
  if (!json::sax_parse(text.begin(), text.end(), &checker)) {
    if (checker.duplicate()) return JsonProblem::kDuplicate;
    if (checker.too_deep()) return JsonProblem::kTooDeep;
    return JsonProblem::kInvalid;
  }
  *out = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return JsonProblem::kInvalid;
  if (!out->is_object()) return JsonProblem::kNotObject;
  return JsonProblem::kNone;
}

// ---------------------------------------------------------------------------
// Small helpers for details. Details end up in logs, so nothing attacker-chosen
// goes in verbatim.

std::string Sanitize(std::string_view s) {
  constexpr size_t kMax = 32;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    out.push_back(ok ? c : '?');
  }
  if (s.size() > kMax) out += "...";
  if (out.empty()) out = "(empty)";
  return out;
}

std::string FormatUtcSeconds(int64_t s) {
  // gmtime_r handles far more, but years past 9999 would not be ISO 8601.
  constexpr int64_t kYear10000 = 253402300800;
  if (s >= 0 && s < kYear10000) {
    time_t t = static_cast<time_t>(s);
    struct tm tm {};
    char buf[32];
    if (gmtime_r(&t, &tm) != nullptr && strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
      return buf;
    }
  }
  return std::to_string(s) + " (epoch seconds)";
}

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) {
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return r;
}

// A NumericDate (RFC 7519 section 2): integer or fractional seconds.
// Fractions are dropped; values beyond +-2^53 are refused as nonsense rather
// than risking a float-to-integer conversion out of range.
bool GetNumericDate(const json& v, int64_t* out) {
  constexpr int64_t kLimit = int64_t{1} << 53;
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(kLimit)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i > kLimit || i < -kLimit) return false;
    *out = i;
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d > static_cast<double>(kLimit) || d < -static_cast<double>(kLimit)) {
      return false;
    }
    *out = static_cast<int64_t>(std::floor(d));
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// OpenSSL plumbing.

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// OpenSSL keeps a per-thread error queue. Failures we handle (a bad signature,
// a bad key) must not leave entries behind: libcurl's TLS code on the same
// thread reads that queue and would report our stale error as its own.
struct ClearOpenSslErrors {
  ~ClearOpenSslErrors() { ERR_clear_error(); }
};

// Builds a public RSA key from JWK "n" and "e" (big-endian bytes).
// Returns null and sets *why when the numbers are not an acceptable key.
std::shared_ptr<evp_pkey_st> BuildRsaKey(const std::string& n_bytes, const std::string& e_bytes,
                                         std::string* why) {
  ClearOpenSslErrors clear;
  BnPtr n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n_bytes.data()),
                    static_cast<int>(n_bytes.size()), nullptr));
  BnPtr e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e_bytes.data()),
                    static_cast<int>(e_bytes.size()), nullptr));
  if (!n || !e) {
    *why = "out of memory";
    return nullptr;
  }
  int bits = BN_num_bits(n.get());
  if (bits < kMinRsaBits) {
    *why = "RSA key of " + std::to_string(bits) + " bits is under the " + std::to_string(kMinRsaBits) +
           " bit minimum";
    return nullptr;
  }
  if (bits > kMaxRsaBits) {
    *why = "RSA key of " + std::to_string(bits) + " bits is over the " + std::to_string(kMaxRsaBits) +
           " bit maximum";
    return nullptr;
  }
  if (!BN_is_odd(n.get())) {
    *why = "RSA modulus is even";
    return nullptr;
  }
  int ebits = BN_num_bits(e.get());
  if (!BN_is_odd(e.get()) || ebits < 2 || ebits > kMaxRsaExponentBits) {
    *why = "RSA exponent is not an odd number between 3 and 2^64";
    return nullptr;
  }

  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    *why = "OpenSSL could not build key parameters";
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || raw == nullptr) {
    *why = "OpenSSL refused the RSA key";
    return nullptr;
  }
  return std::shared_ptr<evp_pkey_st>(raw, EVP_PKEY_free);
}

bool VerifySignature(EVP_PKEY* pkey, const AlgSpec& alg, std::string_view signing_input,
                     const std::string& sig) {
  ClearOpenSslErrors clear;
  // RSA signatures are exactly the modulus size; anything else cannot verify
  // and need not reach OpenSSL.
  if (sig.size() != static_cast<size_t>(EVP_PKEY_get_size(pkey))) return false;
  // A fresh context per call: contexts are not shareable between threads, the
  // key is (read-only).
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestVerifyInit_ex(ctx.get(), &pctx, alg.digest, nullptr, nullptr, pkey, nullptr) != 1) {
    return false;
  }
  if (alg.pss) {
    // RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash.
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
      return false;
    }
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

// ---------------------------------------------------------------------------
// Token structure.

struct Segments {
  std::string_view header_b64, payload_b64, signature_b64;
  std::string_view signing_input;  // "header.payload", what the signature covers
};

bool SplitToken(std::string_view token, Segments* s) {
  size_t d1 = token.find('.');
  if (d1 == std::string_view::npos) return false;
  size_t d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return false;
  if (token.find('.', d2 + 1) != std::string_view::npos) return false;
  s->header_b64 = token.substr(0, d1);
  s->payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
  s->signature_b64 = token.substr(d2 + 1);
  s->signing_input = token.substr(0, d2);
  return true;
}

// Decodes and parses a header segment. Returns an error text, or nullopt when ok.
std::optional<std::string> ParseHeader(std::string_view header_b64, json* header) {
  if (header_b64.empty()) return "header segment is empty";
  std::string bytes;
  if (!Base64UrlDecode(header_b64, &bytes)) return "header is not strict base64url";
  JsonProblem p = ParseJsonObject(bytes, /*reject_duplicates=*/true, kMaxTokenJsonDepth, header);
  if (p != JsonProblem::kNone) return std::string("header ") + JsonProblemText(p);
  return std::nullopt;
}

VerifyFailure Fail(TokenError e, std::string detail) { return VerifyFailure{e, std::move(detail)}; }

// Reads an optional string claim; null counts as absent. False on a wrong type.
bool OptionalString(const json& payload, const char* name, std::optional<std::string>* out) {
  auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

bool OptionalDate(const json& payload, const char* name, int64_t* out) {
  auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) return true;
  return GetNumericDate(*it, out);
}

std::variant<Claims, VerifyFailure> VerifyImpl(std::string_view token, const Jwks& jwks,
                                               const VerifyOptions& opts, int64_t now_s) {
  if (token.empty()) return Fail(TokenError::kMissing, "no token");
  // Size first, before any work, so an oversized token costs nothing.
  if (token.size() > opts.max_token_bytes) {
    return Fail(TokenError::kTooLarge, "token is " + std::to_string(token.size()) + " bytes, over the " +
                                           std::to_string(opts.max_token_bytes) + " byte limit");
  }

  Segments seg;
  if (!SplitToken(token, &seg)) return Fail(TokenError::kMalformed, "token does not have three segments");
  json header;
  if (auto err = ParseHeader(seg.header_b64, &header)) return Fail(TokenError::kMalformed, *err);
  if (seg.payload_b64.empty()) return Fail(TokenError::kMalformed, "payload segment is empty");
  std::string payload_bytes;
  if (!Base64UrlDecode(seg.payload_b64, &payload_bytes)) {
    return Fail(TokenError::kMalformed, "payload is not strict base64url");
  }
  // An empty signature is structurally fine here: "alg":"none" tokens have one,
  // and they should be reported as a bad algorithm, not as malformed.
  std::string signature;
  if (!Base64UrlDecode(seg.signature_b64, &signature)) {
    return Fail(TokenError::kMalformed, "signature is not strict base64url");
  }

  // The algorithm: from the token, but only honoured when configuration
  // allows it, this file implements it, and the key agrees.
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) {
    return Fail(TokenError::kMalformed, "header has no alg");
  }
  const std::string& alg_name = alg_it->get_ref<const std::string&>();
  if (std::find(opts.algorithms.begin(), opts.algorithms.end(), alg_name) == opts.algorithms.end()) {
    return Fail(TokenError::kBadAlgorithm, "algorithm " + Sanitize(alg_name) + " not allowed");
  }
  const AlgSpec* alg = FindAlg(alg_name);
  if (alg == nullptr) {
    return Fail(TokenError::kBadAlgorithm, "algorithm " + Sanitize(alg_name) + " not supported with RSA keys");
  }
  // RFC 7515 section 4.1.11: a recipient must refuse "crit" extensions it does
  // not understand, and we understand none.
  if (header.contains("crit")) return Fail(TokenError::kMalformed, "header has crit extensions");

  std::optional<std::string> kid;
  if (auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string()) return Fail(TokenError::kMalformed, "header kid is not a string");
    kid = it->get<std::string>();
  }
  const auto* key = JwksAccess::Find(jwks, kid);
  if (key == nullptr) {
    if (kid) return Fail(TokenError::kUnknownKid, "unknown signing key id");
    return Fail(TokenError::kUnknownKid,
                "token has no key id and the key set holds " + std::to_string(jwks.size()) + " keys");
  }
  if (key->alg && *key->alg != alg->name) {
    return Fail(TokenError::kBadAlgorithm,
                "algorithm " + std::string(alg->name) + " does not match the key's " + *key->alg);
  }

  if (!VerifySignature(key->pkey.get(), *alg, seg.signing_input, signature)) {
    return Fail(TokenError::kBadSignature, "signature does not verify");
  }

  // From here on the payload is what the key holder signed.
  json payload;
  JsonProblem p = ParseJsonObject(payload_bytes, /*reject_duplicates=*/true, kMaxTokenJsonDepth, &payload);
  if (p != JsonProblem::kNone) return Fail(TokenError::kMalformed, std::string("payload ") + JsonProblemText(p));

  Claims c;
  const auto exp_it = payload.find("exp");
  const bool has_exp = exp_it != payload.end() && !exp_it->is_null();  // else c.exp stays 0
  if (has_exp && !GetNumericDate(*exp_it, &c.exp)) {
    return Fail(TokenError::kMalformed, "exp claim is not a valid date");
  }
  if (!OptionalDate(payload, "nbf", &c.nbf)) return Fail(TokenError::kMalformed, "nbf claim is not a valid date");
  if (!OptionalDate(payload, "iat", &c.iat)) return Fail(TokenError::kMalformed, "iat claim is not a valid date");

  const int64_t leeway = std::clamp<int64_t>(opts.leeway_seconds, 0, kMaxLeewaySeconds);
  // RFC 7519 section 4.1.4: the token must not be accepted on or after exp.
  if (!has_exp && opts.require_exp) {
    // A token without exp would be good forever (SPEC 3, auth.require_exp).
    return Fail(TokenError::kExpired, "token has no exp claim (required by auth.require_exp)");
  }
  if (has_exp && SatAdd(c.exp, leeway) <= now_s) {
    return Fail(TokenError::kExpired, "token expired at " + FormatUtcSeconds(c.exp));
  }
  c.valid_until = has_exp ? c.exp : 0;
  if (opts.max_age_seconds > 0) {
    const bool has_iat = payload.contains("iat") && !payload.at("iat").is_null();
    if (!has_iat) {
      return Fail(TokenError::kExpired, "token has no iat claim (required by auth.max_token_age_seconds)");
    }
    const int64_t too_old_at = SatAdd(c.iat, opts.max_age_seconds);
    if (SatAdd(too_old_at, leeway) <= now_s) {
      return Fail(TokenError::kExpired, "token issued at " + FormatUtcSeconds(c.iat) + " is older than " +
                                            std::to_string(opts.max_age_seconds) + " seconds");
    }
    c.valid_until = c.valid_until == 0 ? too_old_at : std::min(c.valid_until, too_old_at);
  }
  if (payload.contains("nbf") && c.nbf > SatAdd(now_s, leeway)) {
    return Fail(TokenError::kNotYetValid, "token not valid before " + FormatUtcSeconds(c.nbf));
  }

  auto iss_it = payload.find("iss");
  if (iss_it == payload.end() || !iss_it->is_string()) return Fail(TokenError::kBadIssuer, "token has no issuer");
  c.iss = iss_it->get<std::string>();
  if (std::find(opts.issuers.begin(), opts.issuers.end(), c.iss) == opts.issuers.end()) {
    // Named, so an operator sees which issuer to configure (SPEC 3); cut
    // short because the token's sender chose it.
    return Fail(TokenError::kBadIssuer, "issuer \"" + c.iss.substr(0, 256) + (c.iss.size() > 256 ? "…" : "") +
                                            "\" is not accepted (not in auth.issuers)");
  }

  if (opts.audience) {
    bool match = false;
    auto aud_it = payload.find("aud");
    if (aud_it != payload.end()) {
      if (aud_it->is_string()) {
        match = aud_it->get_ref<const std::string&>() == *opts.audience;
      } else if (aud_it->is_array()) {
        for (const json& a : *aud_it) {
          if (a.is_string() && a.get_ref<const std::string&>() == *opts.audience) match = true;
        }
      }
    }
    if (!match) {
      // The token's aud is named (cut short: its sender chose it), and the
      // key that decides; the configured value itself is not echoed to the
      // caller.
      std::string aud;
      if (aud_it == payload.end()) aud = "none";
      else aud = aud_it->dump(-1, ' ', false, json::error_handler_t::replace);
      if (aud.size() > 256) aud = aud.substr(0, 256) + "…";
      return Fail(TokenError::kBadAudience, aud_it == payload.end()
                                                ? "token has no aud; auth.audience requires one"
                                                : "token aud " + aud + " does not match auth.audience");
    }
  }

  auto sub_it = payload.find("sub");
  if (sub_it == payload.end() || !sub_it->is_string() || sub_it->get_ref<const std::string&>().empty()) {
    return Fail(TokenError::kMissingSub, "token has no sub");
  }
  c.sub = sub_it->get<std::string>();

  std::optional<std::string> role;
  if (!OptionalString(payload, "org_id", &c.org_id)) return Fail(TokenError::kMalformed, "org_id claim is not a string");
  if (!OptionalString(payload, "sid", &c.sid)) return Fail(TokenError::kMalformed, "sid claim is not a string");
  if (!OptionalString(payload, "role", &role)) return Fail(TokenError::kMalformed, "role claim is not a string");
  if (role) c.role = std::move(*role);
  if (auto it = payload.find("permissions"); it != payload.end() && !it->is_null()) {
    if (!it->is_array()) return Fail(TokenError::kMalformed, "permissions claim is not an array");
    for (const json& perm : *it) {
      if (!perm.is_string()) return Fail(TokenError::kMalformed, "permissions claim holds a non-string");
      c.permissions.push_back(perm.get<std::string>());
    }
  }
  c.raw = std::move(payload);
  return c;
}

}  // namespace

const char* TokenErrorName(TokenError error) {
  switch (error) {
    case TokenError::kMissing: return "missing_token";
    case TokenError::kTooLarge: return "too_large";
    case TokenError::kMalformed: return "malformed";
    case TokenError::kBadAlgorithm: return "bad_algorithm";
    case TokenError::kUnknownKid: return "unknown_kid";
    case TokenError::kBadSignature: return "bad_signature";
    case TokenError::kExpired: return "expired";
    case TokenError::kNotYetValid: return "not_yet_valid";
    case TokenError::kBadIssuer: return "bad_issuer";
    case TokenError::kBadAudience: return "bad_audience";
    case TokenError::kMissingSub: return "missing_sub";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Jwks

Jwks::~Jwks() = default;

namespace {

// Reads one JWK entry. Returns false and sets *why when the entry is unusable.
template <class Key>
bool ParseJwk(const json& entry, Key* key, std::string* why) {
  if (!entry.is_object()) {
    *why = "not a JSON object";
    return false;
  }
  auto str = [&](const char* name) -> const std::string* {
    auto it = entry.find(name);
    return it != entry.end() && it->is_string() ? &it->template get_ref<const std::string&>() : nullptr;
  };
  if (auto it = entry.find("kid"); it != entry.end()) {
    if (!it->is_string()) {
      *why = "kid is not a string";
      return false;
    }
    key->kid = it->get<std::string>();
  }
  const std::string* kty = str("kty");
  if (kty == nullptr || *kty != "RSA") {
    *why = "kty is not RSA";
    return false;
  }
  if (entry.contains("use")) {
    const std::string* use = str("use");
    if (use == nullptr || *use != "sig") {
      *why = "use is not sig";
      return false;
    }
  }
  if (auto it = entry.find("key_ops"); it != entry.end()) {
    bool verify = false;
    if (it->is_array()) {
      for (const json& op : *it) verify = verify || (op.is_string() && op.get_ref<const std::string&>() == "verify");
    }
    if (!verify) {
      *why = "key_ops does not include verify";
      return false;
    }
  }
  if (entry.contains("alg")) {
    const std::string* alg = str("alg");
    if (alg == nullptr || FindAlg(*alg) == nullptr) {
      *why = "alg is not an RSA signature algorithm";
      return false;
    }
    key->alg = *alg;
  }
  const std::string* n64 = str("n");
  const std::string* e64 = str("e");
  std::string n, e;
  if (n64 == nullptr || e64 == nullptr || !Base64UrlDecode(*n64, &n) || !Base64UrlDecode(*e64, &e)) {
    *why = "n or e is missing or not strict base64url";
    return false;
  }
  key->pkey = BuildRsaKey(n, e, why);
  return key->pkey != nullptr;
}

}  // namespace

Result<std::shared_ptr<const Jwks>> Jwks::Parse(std::string_view json_text) {
  try {
    json doc;
    JsonProblem p = ParseJsonObject(json_text, /*reject_duplicates=*/false, kMaxJwksJsonDepth, &doc);
    if (p != JsonProblem::kNone) return Status::InvalidArgument(std::string("jwks ") + JsonProblemText(p));
    auto keys_it = doc.find("keys");
    if (keys_it == doc.end() || !keys_it->is_array()) {
      return Status::InvalidArgument("jwks has no \"keys\" array");
    }
    std::shared_ptr<Jwks> jwks(new Jwks());
    jwks->text_ = std::string(json_text);
    size_t index = 0;
    for (const json& entry : *keys_it) {
      Key key;
      std::string why;
      std::string label = "key " + std::to_string(index++);
      if (!ParseJwk(entry, &key, &why)) {
        jwks->skipped_.push_back(label + ": " + why);
        continue;
      }
      // A duplicate kid would make the choice of key depend on order in the
      // document; keep the first and say so.
      if (key.kid && jwks->HasKid(*key.kid)) {
        jwks->skipped_.push_back(label + ": duplicate kid " + Sanitize(*key.kid));
        continue;
      }
      jwks->keys_.push_back(std::move(key));
    }
    return std::shared_ptr<const Jwks>(std::move(jwks));
  } catch (const std::exception& e) {
    // Only allocation failure can get here; nlohmann is used without exceptions.
    return Status::Internal(std::string("jwks parse failed: ") + e.what());
  }
}

bool Jwks::HasKid(std::string_view kid) const {
  return std::any_of(keys_.begin(), keys_.end(), [&](const Key& k) { return k.kid && *k.kid == kid; });
}

const Jwks::Key* Jwks::Find(const std::optional<std::string>& kid) const {
  if (!kid) return keys_.size() == 1 ? &keys_[0] : nullptr;
  for (const Key& k : keys_) {
    if (k.kid && *k.kid == *kid) return &k;
  }
  return nullptr;
}

std::variant<Claims, VerifyFailure> Verify(std::string_view token, const Jwks& jwks,
                                           const VerifyOptions& opts, int64_t now_s) {
  try {
    return VerifyImpl(token, jwks, opts, now_s);
  } catch (const std::exception& e) {
    // Only allocation failure can get here; refuse rather than crash.
    return VerifyFailure{TokenError::kMalformed, std::string("verification failed: ") + e.what()};
  }
}

std::optional<std::string> PeekKid(std::string_view token) {
  try {
    size_t dot = token.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    json header;
    if (ParseHeader(token.substr(0, dot), &header)) return std::nullopt;
    auto it = header.find("kid");
    if (it == header.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace usersd::auth
