// The direct JSON writers against the DOM forms they stand in for: the same
// text as nlohmann's serializer makes of ToUserJson / ToCurrentUserJson.
#include <catch2/catch.hpp>

#include <random>

#include "domain/user_json.h"
#include "ipc/protocol.h"

using namespace usersd;
using namespace usersd::domain;

namespace {

std::string Dump(const Json& j) {
  std::string out;
  ipc::AppendJson(out, j);
  return out;
}

std::string RandomText(std::mt19937_64& rng) {
  // Plain ASCII most of the time, and every kind of byte that needs care:
  // quote, backslash, control characters, DEL, UTF-8, invalid UTF-8.
  static const std::string kPlain = "abcxyzABC019-_.:/@ ";
  static const std::string kOdd[] = {"\"", "\\", "\n", "\t", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80", "\xc3", "\xff", "\xed\xa0\x80"};
  std::string s;
  size_t n = rng() % 40;
  for (size_t i = 0; i < n; ++i) {
    if (rng() % 8 == 0) s += kOdd[rng() % (sizeof kOdd / sizeof kOdd[0])];
    else s += kPlain[rng() % kPlain.size()];
  }
  return s;
}

store::UserRecord RandomUser(std::mt19937_64& rng) {
  store::UserRecord u;
  u.id = RandomText(rng);
  u.email = RandomText(rng);
  u.first_name = RandomText(rng);
  u.last_name = RandomText(rng);
  u.user_type = rng() % 2 ? "user" : "machine";
  u.is_onboarded = rng() % 2;
  u.created_at_ms = static_cast<int64_t>(rng() % 4102444800000ull);
  u.txid = rng();
  if (rng() % 2) u.avatar_url = RandomText(rng);
  if (rng() % 2) u.timezone = RandomText(rng);
  if (rng() % 2) u.updated_at_ms = static_cast<int64_t>(rng() % 4102444800000ull);
  if (rng() % 2) u.deleted_at_ms = static_cast<int64_t>(rng() % 4102444800000ull);
  if (rng() % 2) u.settings = Json{{"theme", RandomText(rng)}, {"n", -3}, {"list", {1.5, nullptr, true}}};
  return u;
}

}  // namespace

TEST_CASE("Append*Json write the text of the DOM forms", "[domain][json]") {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 3000; ++i) {
    store::UserRecord u = RandomUser(rng);
    auth::Claims c;
    c.sub = "user_x";
    static const char* kRoles[] = {"member", "admin", "owner", "guest", ""};
    c.role = kRoles[rng() % 5];
    if (rng() % 2) c.org_id = RandomText(rng);

    std::string text;
    AppendUserJson(text, u);
    REQUIRE(text == Dump(ToUserJson(u)));
    text.clear();
    AppendCurrentUserJson(text, u, c);
    REQUIRE(text == Dump(ToCurrentUserJson(u, c)));
    text = "prefix";  // appends, never overwrites
    AppendMutationResultJson(text, u);
    REQUIRE(text == "prefix" + Dump(ToMutationResultJson(u)));
  }
}

TEST_CASE("CurrentUser's role is one of the three, from the token", "[domain][json]") {
  store::UserRecord u;
  u.id = "u1";
  auth::Claims c;
  c.role = "superuser";
  std::string text;
  AppendCurrentUserJson(text, u, c);
  auto j = Json::parse(text);
  CHECK(j["role"] == "member");
  CHECK(j["organizationId"].is_null());
  c.role = "owner";
  c.org_id = "org_1";
  text.clear();
  AppendCurrentUserJson(text, u, c);
  j = Json::parse(text);
  CHECK(j["role"] == "owner");
  CHECK(j["organizationId"] == "org_1");
}
