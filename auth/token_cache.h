// TokenCache: remembers the claims of tokens that Verify accepted, so a
// client presenting the same token again skips the RSA verification.
//
// Bounded LRU keyed by the SHA-256 of the token bytes: the raw token is never
// stored, so a heap dump does not hand out live credentials. An entry is good
// until Claims::valid_until (the token's exp, or the end of its allowed age
// when that comes first), with no leeway (Verify already granted leeway
// once). Claims without it (valid_until == 0: no exp) are never stored: such
// a token is verified again at each use.
//
// The cache holds only what Verify decided under the options in force when it
// ran; call Clear() when the JWKS, the verify options, or a user changes.
//
// Loop thread only: not thread-safe, no internal locking.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "auth/jwt.h"

struct evp_md_st;
struct evp_md_ctx_st;

namespace usersd::auth {

class TokenCache {
 public:
  // capacity == 0 disables caching (Put does nothing).
  explicit TokenCache(size_t capacity = 10000);
  ~TokenCache();

  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // The claims cached for `token` if it is present and now_s < valid_until; marks it
  // most recently used. An expired entry is dropped. Copies the Claims; use
  // Lookup to avoid the copy.
  std::optional<Claims> Get(std::string_view token, int64_t now_s);
  // Like Get, but shares the cached Claims instead of copying them. The
  // pointer stays valid after the entry is evicted.
  std::shared_ptr<const Claims> Lookup(std::string_view token, int64_t now_s);

  // Remembers `claims` for `token`, replacing any older entry and evicting the
  // least recently used one when full. REQUIRES: Verify accepted the token and
  // returned these claims. Claims without valid_until are not cached.
  void Put(std::string_view token, const Claims& claims);
  // Like Put, sharing `claims` instead of copying them.
  void Put(std::string_view token, std::shared_ptr<const Claims> claims);

  void Clear();
  // Changes on every Clear(): what was looked up under an older generation
  // may no longer hold.
  uint64_t generation() const { return generation_; }
  size_t size() const { return map_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  using Digest = std::array<unsigned char, 32>;
  struct DigestHash {
    // SHA-256 output is uniform, so its first bytes are already a good hash.
    size_t operator()(const Digest& d) const {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);
      return h;
    }
  };
  struct Entry {
    Digest digest;
    int64_t exp;
    std::shared_ptr<const Claims> claims;
  };
  using List = std::list<Entry>;  // front = most recently used

  Digest Hash(std::string_view token);

  const size_t capacity_;
  uint64_t generation_ = 0;
  // SHA-256 fetched once and one reused context: OpenSSL 3's one-shot
  // SHA256() fetches the algorithm on every call, a third of its cost here.
  evp_md_st* md_;
  evp_md_ctx_st* ctx_;
  List lru_;
  std::unordered_map<Digest, List::iterator, DigestHash> map_;
};

}  // namespace usersd::auth
