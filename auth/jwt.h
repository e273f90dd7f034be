// Access-token verification: RS256 (and RS384/RS512/PS256/PS384/PS512) JWTs
// checked against a JWKS, as SPEC.md section 3 describes.
//
// Nothing here does I/O or reads a clock: the caller fetches the JWKS (and
// keeps Jwks::text() in the store), and passes wall-clock seconds to Verify.
// No function in this header throws.
//
// Policy decisions a caller should know about:
//  - `exp` is required unless VerifyOptions::require_exp is false (SPEC 3,
//    auth.require_exp; WorkOS always sets it). Without the requirement, a
//    token without it is accepted with Claims::exp = 0, and callers must not
//    cache it: TokenCache and the per-connection memo skip such claims, so
//    every request carrying it is verified again.
//  - VerifyOptions::max_age_seconds (auth.max_token_age_seconds, 0 = off)
//    bounds the age from `iat`: older tokens, and tokens without `iat`, are
//    refused as expired whatever their `exp` says.
//  - An empty VerifyOptions::issuers list accepts no issuer (fails closed).
//  - The algorithm must be in VerifyOptions::algorithms, be one this code
//    implements (RSA only), and equal the key's own "alg" when the JWK has one.
//    "none" and every HMAC algorithm are therefore always refused.
//  - Header fields that point at other keys ("jku", "x5u", "jwk", "x5c") are
//    ignored: keys come only from the JWKS. A "crit" header is refused since we
//    implement no extensions.
//  - Duplicate member names anywhere in the header or payload are refused, so
//    that we and any other JWT library read the same claims.
//  - Optional claims (org_id, role, sid, permissions, exp, iat, nbf) must have the
//    right JSON type when present; a wrong type is kMalformed. null counts as
//    absent, so an issuer that starts writing "org_id": null does not lock
//    every user out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

// OpenSSL's EVP_PKEY, forward-declared so this header does not pull in OpenSSL.
struct evp_pkey_st;

namespace usersd::auth {

// Why a token was refused. Used as a metrics label through TokenErrorName.
enum class TokenError {
  kMissing,       // empty token
  kTooLarge,      // over VerifyOptions::max_token_bytes
  kMalformed,     // not three strict base64url segments of JSON objects, bad claim types
  kBadAlgorithm,  // alg not allowed, not implemented, or not matching the key
  kUnknownKid,    // no key in the JWKS for the token's kid
  kBadSignature,  // signature does not verify with the selected key
  kExpired,
  kNotYetValid,
  kBadIssuer,
  kBadAudience,
  kMissingSub,
};

// A stable snake_case name ("expired", "bad_signature", "missing_token", ...).
// The returned string is static.
const char* TokenErrorName(TokenError error);

// The claims of a verified token. A value type.
struct Claims {
  std::string sub;                  // WorkOS user id; never empty after Verify
  std::optional<std::string> org_id;
  std::string role = "member";      // "role" claim; "member" when absent
  std::optional<std::string> sid;
  std::vector<std::string> permissions;  // "permissions" claim; empty when absent
  std::string iss;
  int64_t exp = 0;                  // seconds since the epoch; 0 = absent (never cache)
  // When Verify's acceptance stops holding: exp, or iat + max_age_seconds
  // when that comes first; 0 = never (a token without exp: never cache).
  int64_t valid_until = 0;
  int64_t iat = 0;                  // 0 = absent
  int64_t nbf = 0;                  // 0 = absent
  nlohmann::json raw;               // the whole verified payload
};

struct VerifyOptions {
  std::vector<std::string> issuers;             // accepted iss values (exact match); empty accepts none
  std::optional<std::string> audience;          // checked only when set (aud may be a string or array)
  std::vector<std::string> algorithms{"RS256"};  // allow-list from config
  int64_t leeway_seconds = 30;                   // applied to exp, nbf and the age; clamped to [0, 1 day]
  bool require_exp = true;                       // a token without exp is refused (kExpired)
  int64_t max_age_seconds = 0;                   // > 0: refuse tokens issued (iat) longer ago, or without iat
  size_t max_token_bytes = 8192;
};

// An immutable parsed JWKS, holding one ready-to-use OpenSSL public key per
// usable entry, built once here so that Verify does no key parsing.
//
// Usable entries are RSA keys ("kty":"RSA" with base64url "n" and "e") of at
// least 2048 bits, whose "use" (if any) is "sig", whose "key_ops" (if any)
// contain "verify", and whose "alg" (if any) is one Verify implements. Other
// entries are skipped and described in skipped(). The first entry with a
// given kid wins; later duplicates are skipped. A document that is not JSON,
// is not an object, or has no "keys" array is an error.
//
// Thread-safe after construction: share it as std::shared_ptr<const Jwks> and
// verify from any thread. OpenSSL 3 allows concurrent verification with one
// EVP_PKEY as long as nobody modifies it, and nothing does after Parse.
class Jwks {
 public:
  static Result<std::shared_ptr<const Jwks>> Parse(std::string_view json_text);

  Jwks(const Jwks&) = delete;
  Jwks& operator=(const Jwks&) = delete;
  ~Jwks();

  // Number of usable keys.
  size_t size() const { return keys_.size(); }
  bool HasKid(std::string_view kid) const;
  // The original document, for caching in the store. Lives as long as *this.
  const std::string& text() const { return text_; }
  // One human-readable line per skipped entry, for logging after a fetch.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  struct Key {
    std::optional<std::string> kid;
    std::optional<std::string> alg;      // the JWK's "alg", when present
    std::shared_ptr<evp_pkey_st> pkey;   // never null; freed with EVP_PKEY_free
  };

  Jwks() = default;
  // The key for a token's kid. A token without a kid matches only when the
  // set holds exactly one key, so that rotation (two keys) never guesses.
  // Returns nullptr when nothing matches. The pointer lives as long as *this.
  const Key* Find(const std::optional<std::string>& kid) const;

  std::string text_;
  std::vector<Key> keys_;
  std::vector<std::string> skipped_;

  friend struct JwksAccess;  // jwt.cc's Verify reaches Find() through this.
};

// Why Verify refused a token. `detail` is human readable and never contains
// the token; untrusted strings from the token (such as alg) are sanitised.
struct VerifyFailure {
  TokenError error;
  std::string detail;
};

// Verifies, in this order: size, structure (three strict base64url segments,
// JSON object header without duplicates), alg against the allow-list and the
// key, the signature with the key selected by kid, and only then the payload:
// exp/nbf with leeway, iss, aud (when configured), sub. `now_s` is wall-clock
// seconds since the epoch. Never throws.
std::variant<Claims, VerifyFailure> Verify(std::string_view token, const Jwks& jwks,
                                           const VerifyOptions& opts, int64_t now_s);

// The kid from a token's header, without verifying anything; used to decide
// whether an unknown kid is worth a (rate-limited) JWKS refetch. Returns
// nullopt when the header is malformed or has no string kid.
std::optional<std::string> PeekKid(std::string_view token);

}  // namespace usersd::auth
