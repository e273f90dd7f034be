#include "auth/token_cache.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace usersd::auth {

TokenCache::TokenCache(size_t capacity)
    : capacity_(capacity), md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {}

TokenCache::~TokenCache() {
  EVP_MD_CTX_free(ctx_);
  EVP_MD_free(md_);
}

TokenCache::Digest TokenCache::Hash(std::string_view token) {
  Digest d;
  unsigned int n = 0;
  if (md_ && ctx_ && EVP_DigestInit_ex2(ctx_, md_, nullptr) == 1 &&
      EVP_DigestUpdate(ctx_, token.data(), token.size()) == 1 && EVP_DigestFinal_ex(ctx_, d.data(), &n) == 1 &&
      n == d.size())
    return d;
  // Allocation failed at construction (or a provider refused): the one-shot
  // still gives the same digest.
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

std::shared_ptr<const Claims> TokenCache::Lookup(std::string_view token, int64_t now_s) {
  if (map_.empty()) return nullptr;
  auto it = map_.find(Hash(token));
  if (it == map_.end()) return nullptr;
  List::iterator entry = it->second;
  if (now_s >= entry->exp) {
    lru_.erase(entry);
    map_.erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, entry);
  return entry->claims;
}

std::optional<Claims> TokenCache::Get(std::string_view token, int64_t now_s) {
  std::shared_ptr<const Claims> c = Lookup(token, now_s);
  if (!c) return std::nullopt;
  return *c;
}

void TokenCache::Put(std::string_view token, const Claims& claims) {
  if (capacity_ == 0 || claims.valid_until == 0) return;
  Put(token, std::make_shared<const Claims>(claims));
}

void TokenCache::Put(std::string_view token, std::shared_ptr<const Claims> claims_ptr) {
  if (capacity_ == 0 || !claims_ptr || claims_ptr->valid_until == 0) return;
  const Claims& claims = *claims_ptr;
  Digest d = Hash(token);
  if (auto it = map_.find(d); it != map_.end()) {
    it->second->exp = claims.valid_until;
    it->second->claims = std::move(claims_ptr);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (map_.size() >= capacity_) {
    // Evict the least recently used entry. Expired entries are not hunted
    // down: they age to the back of the list like any unused entry.
    map_.erase(lru_.back().digest);
    lru_.pop_back();
  }
  lru_.push_front(Entry{d, claims.valid_until, std::move(claims_ptr)});
  map_.emplace(d, lru_.begin());
}

void TokenCache::Clear() {
  ++generation_;
  map_.clear();
  lru_.clear();
}

}  // namespace usersd::auth
