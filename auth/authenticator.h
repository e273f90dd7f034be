// Authenticator: from an "authorization" header to verified Claims.
//
// Holds the current JWKS and the verified-token cache. An unknown kid (or no
// JWKS yet) triggers at most one JWKS refetch per min_refetch_interval; the
// requests that arrive while it runs wait for it and are verified once more
// when it ends. Everything else is answered synchronously.
//
// Loop thread only. The Refetch function is owned by the caller's sync layer
// and must call its `done` on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/jwt.h"
#include "auth/token_cache.h"
#include "common/clock.h"

namespace usersd::auth {

// The last token one client connection presented and the claims it verified
// to. Clients send the same token request after request; a repeat is
// recognised by comparing the bytes, which is cheaper than the cache's
// SHA-256. It stands for a cache hit only: the same cache generation (no
// Clear since) and before exp. Unlike the cache, it holds the raw token, for
// as long as the connection lives (its read buffer held it anyway).
struct TokenMemo {
  std::string token;
  std::shared_ptr<const Claims> claims;
  uint64_t generation = 0;
};

// Accepted claims are shared (with the token cache), never copied per request.
using AuthResult = std::variant<std::shared_ptr<const Claims>, VerifyFailure>;
using AuthCallback = std::function<void(AuthResult)>;

class Authenticator {
 public:
  using Refetch = std::function<void(std::function<void()> done)>;

  Authenticator(const Clock& clock, VerifyOptions options, size_t cache_capacity = 10000);

  // Replaces the key set (and forgets cached verifications).
  void SetJwks(std::shared_ptr<const Jwks> jwks);
  std::shared_ptr<const Jwks> jwks() const { return jwks_; }
  void SetRefetch(Refetch refetch, int64_t min_interval_ms);
  void SetOptions(VerifyOptions options);
  void SetMinRefetchInterval(int64_t ms) { min_refetch_interval_ms_ = ms; }

  // `header` is the authorization header's value, if the request had one.
  // `cb` may run before this returns (cache hit, plain failure) or later
  // (after a refetch).
  // `memo`, if given, is the caller connection's memo: read and updated
  // only before this returns (never after a refetch).
  void Authenticate(std::optional<std::string_view> header, AuthCallback cb, TokenMemo* memo = nullptr);

  // Refusals by reason (TokenErrorName), for metrics.
  const std::map<std::string, uint64_t>& failures() const { return failures_; }
  uint64_t cache_hits() const { return cache_hits_; }

 private:
  AuthResult VerifyNow(std::string_view token);
  void Finish(AuthResult r, const AuthCallback& cb);
  void StartRefetch();

  const Clock& clock_;
  VerifyOptions options_;
  TokenCache cache_;
  std::shared_ptr<const Jwks> jwks_;
  Refetch refetch_;
  int64_t min_refetch_interval_ms_ = 30000;
  int64_t last_refetch_ms_ = -1;
  bool refetching_ = false;
  std::vector<std::pair<std::string, AuthCallback>> waiting_;
  std::map<std::string, uint64_t> failures_;
  uint64_t cache_hits_ = 0;
};

// Splits "Bearer <token>" (scheme case-insensitive). nullopt when the header
// is not of that form.
std::optional<std::string_view> BearerToken(std::string_view header);

}  // namespace usersd::auth
