// Tests for auth/token_cache.h. The cache never verifies anything, so plain
// strings stand in for tokens.
#include "auth/token_cache.h"

#include <catch2/catch.hpp>
#include <string>

namespace usersd::auth {
namespace {

constexpr int64_t kNow = 1'790'000'000;

Claims MakeClaims(const std::string& sub, int64_t exp) {
  Claims c;
  c.sub = sub;
  c.exp = exp;
  c.valid_until = exp;
  c.iss = "https://api.workos.com";
  c.org_id = "org_1";
  c.raw = {{"sub", sub}, {"exp", exp}};
  return c;
}

TEST_CASE("token cache: a stored token hits, any other token misses", "[auth]") {
  TokenCache cache(10);
  CHECK_FALSE(cache.Get("token-a", kNow).has_value());
  cache.Put("token-a", MakeClaims("user_a", kNow + 60));
  CHECK(cache.size() == 1);

  auto hit = cache.Get("token-a", kNow);
  REQUIRE(hit.has_value());
  CHECK(hit->sub == "user_a");
  CHECK(hit->org_id == "org_1");
  CHECK(hit->raw["sub"] == "user_a");
  CHECK(cache.Lookup("token-a", kNow)->sub == "user_a");

  CHECK_FALSE(cache.Get("token-b", kNow).has_value());
  CHECK_FALSE(cache.Get("token-", kNow).has_value());
  CHECK_FALSE(cache.Get("", kNow).has_value());
}

TEST_CASE("token cache: an entry is good until exp, with no leeway", "[auth]") {
  TokenCache cache(10);
  cache.Put("token-a", MakeClaims("user_a", kNow + 60));
  CHECK(cache.Get("token-a", kNow + 59).has_value());
  CHECK_FALSE(cache.Get("token-a", kNow + 60).has_value());
  // The expired entry was dropped, not just hidden.
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.Get("token-a", kNow).has_value());
}

TEST_CASE("token cache: an entry ends at valid_until when a maximum age ends it before exp", "[auth]") {
  TokenCache cache(10);
  Claims c = MakeClaims("user_a", kNow + 3600);
  c.valid_until = kNow + 60;  // iat + auth.max_token_age_seconds
  cache.Put("token-a", c);
  CHECK(cache.Get("token-a", kNow + 59).has_value());
  CHECK_FALSE(cache.Get("token-a", kNow + 60).has_value());
}

TEST_CASE("token cache: claims without exp are not cached", "[auth]") {
  TokenCache cache(10);
  cache.Put("token-a", MakeClaims("user_a", 0));
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.Get("token-a", kNow).has_value());
}

TEST_CASE("token cache: evicts the least recently used entry at capacity", "[auth]") {
  TokenCache cache(3);
  cache.Put("t1", MakeClaims("u1", kNow + 60));
  cache.Put("t2", MakeClaims("u2", kNow + 60));
  cache.Put("t3", MakeClaims("u3", kNow + 60));
  // Touch t1 so t2 becomes the oldest.
  CHECK(cache.Get("t1", kNow).has_value());
  cache.Put("t4", MakeClaims("u4", kNow + 60));
  CHECK(cache.size() == 3);
  CHECK_FALSE(cache.Get("t2", kNow).has_value());
  CHECK(cache.Get("t1", kNow).has_value());
  CHECK(cache.Get("t3", kNow).has_value());
  CHECK(cache.Get("t4", kNow).has_value());

  // Putting an existing token replaces it and refreshes it, without growing.
  cache.Put("t1", MakeClaims("u1-new", kNow + 120));
  CHECK(cache.size() == 3);
  cache.Put("t5", MakeClaims("u5", kNow + 60));  // evicts t3, the oldest now
  CHECK_FALSE(cache.Get("t3", kNow).has_value());
  CHECK(cache.Get("t1", kNow + 100)->sub == "u1-new");
}

TEST_CASE("token cache: a shared Lookup result outlives eviction", "[auth]") {
  TokenCache cache(1);
  cache.Put("t1", MakeClaims("u1", kNow + 60));
  std::shared_ptr<const Claims> held = cache.Lookup("t1", kNow);
  cache.Put("t2", MakeClaims("u2", kNow + 60));
  CHECK_FALSE(cache.Get("t1", kNow).has_value());
  REQUIRE(held != nullptr);
  CHECK(held->sub == "u1");
}

TEST_CASE("token cache: Clear empties it", "[auth]") {
  TokenCache cache(10);
  cache.Put("t1", MakeClaims("u1", kNow + 60));
  cache.Put("t2", MakeClaims("u2", kNow + 60));
  cache.Clear();
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.Get("t1", kNow).has_value());
  cache.Put("t1", MakeClaims("u1", kNow + 60));
  CHECK(cache.Get("t1", kNow).has_value());
}

TEST_CASE("token cache: capacity zero caches nothing", "[auth]") {
  TokenCache cache(0);
  cache.Put("t1", MakeClaims("u1", kNow + 60));
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.Get("t1", kNow).has_value());
}

TEST_CASE("token cache: many entries stay consistent", "[auth]") {
  TokenCache cache(100);
  for (int i = 0; i < 1000; ++i) cache.Put("token-" + std::to_string(i), MakeClaims(std::to_string(i), kNow + 60));
  CHECK(cache.size() == 100);
  for (int i = 0; i < 900; ++i) CHECK_FALSE(cache.Get("token-" + std::to_string(i), kNow).has_value());
  for (int i = 900; i < 1000; ++i) CHECK(cache.Get("token-" + std::to_string(i), kNow)->sub == std::to_string(i));
}

}  // namespace
}  // namespace usersd::auth
