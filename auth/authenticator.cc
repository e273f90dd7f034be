#include "auth/authenticator.h"

#include "common/text.h"

namespace usersd::auth {

namespace {
// Requests parked while a refetch runs; beyond this, refuse at once rather
// than let a flood of bogus kids grow memory.
constexpr size_t kMaxWaiting = 4096;
}  // namespace

std::optional<std::string_view> BearerToken(std::string_view header) {
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  if (header.size() < 7) return std::nullopt;
  if (!EqualsIgnoreCaseAscii(header.substr(0, 6), "bearer")) return std::nullopt;
  if (header[6] != ' ') return std::nullopt;
  std::string_view token = header.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\r')) token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

Authenticator::Authenticator(const Clock& clock, VerifyOptions options, size_t cache_capacity)
    : clock_(clock), options_(std::move(options)), cache_(cache_capacity) {}

void Authenticator::SetJwks(std::shared_ptr<const Jwks> jwks) {
  jwks_ = std::move(jwks);
  cache_.Clear();
}

void Authenticator::SetRefetch(Refetch refetch, int64_t min_interval_ms) {
  refetch_ = std::move(refetch);
  min_refetch_interval_ms_ = min_interval_ms;
}

void Authenticator::SetOptions(VerifyOptions options) {
  options_ = std::move(options);
  cache_.Clear();
}

AuthResult Authenticator::VerifyNow(std::string_view token) {
  int64_t now_s = clock_.NowMs() / 1000;
  if (auto hit = cache_.Lookup(token, now_s)) {
    cache_hits_++;
    return hit;
  }
  if (!jwks_) return VerifyFailure{TokenError::kUnknownKid, "no signing keys are known yet"};
  auto r = Verify(token, *jwks_, options_, now_s);
  if (auto* f = std::get_if<VerifyFailure>(&r)) return std::move(*f);
  Claims verified = std::get<Claims>(std::move(r));
  // Nothing past verification reads the raw payload; a cached copy of it
  // would only cost memory (up to cache capacity entries of a few KiB).
  verified.raw = nullptr;
  auto claims = std::make_shared<const Claims>(std::move(verified));
  cache_.Put(token, claims);
  return claims;
}

void Authenticator::Finish(AuthResult r, const AuthCallback& cb) {
  if (auto* f = std::get_if<VerifyFailure>(&r)) failures_[TokenErrorName(f->error)]++;
  cb(std::move(r));
}

void Authenticator::Authenticate(std::optional<std::string_view> header, AuthCallback cb, TokenMemo* memo) {
  if (!header) {
    Finish(VerifyFailure{TokenError::kMissing, "missing authorization header"}, cb);
    return;
  }
  auto token = BearerToken(*header);
  if (!token) {
    Finish(VerifyFailure{TokenError::kMalformed, "authorization header is not \"Bearer <token>\""}, cb);
    return;
  }
  if (token->size() > options_.max_token_bytes) {
    Finish(VerifyFailure{TokenError::kTooLarge, "token larger than " + std::to_string(options_.max_token_bytes) +
                                                    " bytes"},
           cb);
    return;
  }
  if (memo && cache_.capacity() > 0) {
    if (memo->claims && memo->generation == cache_.generation() && memo->token == *token &&
        clock_.NowMs() / 1000 < memo->claims->valid_until) {
      cache_hits_++;
      Finish(memo->claims, cb);
      return;
    }
    memo->claims.reset();
  }
  AuthResult r = VerifyNow(*token);
  if (memo && cache_.capacity() > 0) {
    if (auto* ok = std::get_if<std::shared_ptr<const Claims>>(&r)) {
      memo->token.assign(*token);
      memo->claims = *ok;
      memo->generation = cache_.generation();
    }
  }
  auto* f = std::get_if<VerifyFailure>(&r);
  if (!f || f->error != TokenError::kUnknownKid || !refetch_) {
    Finish(std::move(r), cb);
    return;
  }
  // Unknown kid: maybe the keys rotated. Refetch, but at most once per
  // interval, so a caller inventing kids cannot make us hammer WorkOS.
  int64_t now = clock_.MonotonicMs();
  bool may_refetch = refetching_ || last_refetch_ms_ < 0 || now - last_refetch_ms_ >= min_refetch_interval_ms_;
  if (!may_refetch || waiting_.size() >= kMaxWaiting) {
    Finish(std::move(r), cb);
    return;
  }
  waiting_.emplace_back(std::string(*token), std::move(cb));
  if (!refetching_) StartRefetch();
}

void Authenticator::StartRefetch() {
  refetching_ = true;
  last_refetch_ms_ = clock_.MonotonicMs();
  refetch_([this] {
    refetching_ = false;
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& [token, cb] : waiting) Finish(VerifyNow(token), cb);
  });
}

}  // namespace usersd::auth
