// Tests of admin/admin_users.h: the admin view of a user and the validation
// of admin.users.import entries.
#include "admin/admin_users.h"

#include <catch2/catch.hpp>

namespace usersd::admin {
namespace {

Json Entry(Json extra = Json::object()) {
  Json j{{"workosId", "user_01ABC"}, {"email", "ada@example.com"}, {"firstName", "Ada"}, {"lastName", "Lovelace"}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

std::string ErrorOf(const Json& j, size_t index = 0) {
  auto r = ParseImportEntry(j, index);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  return r.status().message();
}

TEST_CASE("admin users: the admin view is the User plus workosId, organizationId and role", "[admin]") {
  store::UserRecord u;
  u.id = "0b8e6b2c-1f7a-4c1e-9d55-3f1b2a9c0e11";
  u.workos_id = "user_01ABC";
  u.email = "ada@example.com";
  u.first_name = "Ada";
  u.last_name = "Lovelace";
  u.created_at_ms = 1790000000123;
  u.organization_id = "org_1";
  u.role = "admin";
  Json j = ToAdminUserJson(u);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"avatarUrl", "createdAt", "deletedAt", "email", "firstName", "id",
                                         "isOnboarded", "lastName", "organizationId", "role", "settings", "timezone",
                                         "updatedAt", "userType", "workosId"});
  CHECK(j["workosId"] == "user_01ABC");
  CHECK(j["organizationId"] == "org_1");
  CHECK(j["role"] == "admin");
  CHECK(j["createdAt"] == "2026-09-21T14:13:20.123Z");
  u.organization_id.reset();
  CHECK(ToAdminUserJson(u)["organizationId"].is_null());
}

TEST_CASE("admin users: an exported user imports back to the same record", "[admin]") {
  store::UserRecord u;
  u.id = "0b8e6b2c-1f7a-4c1e-9d55-3f1b2a9c0e11";
  u.workos_id = "user_01ABC";
  u.email = "ada@example.com";
  u.first_name = "Ada";
  u.last_name = "Lovelace";
  u.avatar_url = "https://avatars.example.com/ada.png";
  u.user_type = "machine";
  u.settings = Json{{"doNotDisturb", true}, {"custom", 1}};
  u.is_onboarded = true;
  u.timezone = "UTC";
  u.created_at_ms = 1790000000123;
  u.updated_at_ms = 1790000001000;
  u.deleted_at_ms = 1790000002000;
  u.organization_id = "org_1";
  u.role = "owner";
  auto e = ParseImportEntry(ToAdminUserJson(u), 0);
  REQUIRE(e.ok());
  CHECK(e->workos_id == u.workos_id);
  CHECK(e->id == u.id);
  store::UserRecord back;
  back.id = u.id;
  back.workos_id = u.workos_id;
  domain::CopyImportedFields(*e, &back);
  CHECK(ToAdminUserJson(back) == ToAdminUserJson(u));
}

TEST_CASE("admin users: absent fields stay unchanged, null clears nullable ones", "[admin]") {
  store::UserRecord u;
  u.first_name = "Ada";
  u.timezone = "UTC";
  u.avatar_url = "https://a.example.com/x.png";
  auto e = ParseImportEntry(Json{{"workosId", "user_1"}, {"timezone", nullptr}}, 0);
  REQUIRE(e.ok());
  domain::CopyImportedFields(*e, &u);
  CHECK(u.first_name == "Ada");
  CHECK_FALSE(u.timezone.has_value());
  CHECK(u.avatar_url == "https://a.example.com/x.png");
}

TEST_CASE("admin users: empty names and emails are accepted (WorkOS users may have none)", "[admin]") {
  auto e = ParseImportEntry(Entry({{"email", ""}, {"firstName", ""}, {"lastName", ""}}), 0);
  REQUIRE(e.ok());
  CHECK(e->email == "");
}

TEST_CASE("admin users: a bad entry is refused with its index and field", "[admin]") {
  CHECK(ErrorOf(Json::array(), 2) == "users[2]: must be an object");
  CHECK(ErrorOf(Json{{"email", "a@example.com"}}, 0) == "users[0].workosId: required");
  CHECK(ErrorOf(Entry({{"workosId", ""}})).rfind("users[0].workosId:", 0) == 0);
  CHECK(ErrorOf(Entry({{"id", "not-a-uuid"}}), 4) == "users[4].id: must be a UUID");
  CHECK(ErrorOf(Entry({{"email", "nope"}}), 3).rfind("users[3].email:", 0) == 0);
  CHECK(ErrorOf(Entry({{"firstName", std::string(101, 'x')}})).rfind("users[0].firstName:", 0) == 0);
  CHECK(ErrorOf(Entry({{"lastName", 5}})) == "users[0].lastName: must be a string");
  CHECK(ErrorOf(Entry({{"avatarUrl", "ftp://x"}})).rfind("users[0].avatarUrl:", 0) == 0);
  CHECK(ErrorOf(Entry({{"timezone", "Mars/Olympus"}})).rfind("users[0].timezone:", 0) == 0);
  CHECK(ErrorOf(Entry({{"settings", Json::array()}})) == "users[0].settings: must be an object or null");
  CHECK(ErrorOf(Entry({{"settings", Json{{"doNotDisturb", "yes"}}}})).rfind("users[0].settings", 0) == 0);
  CHECK(ErrorOf(Entry({{"userType", "robot"}})).rfind("users[0].userType:", 0) == 0);
  CHECK(ErrorOf(Entry({{"role", "root"}})).rfind("users[0].role:", 0) == 0);
  CHECK(ErrorOf(Entry({{"organizationId", ""}})).rfind("users[0].organizationId:", 0) == 0);
  CHECK(ErrorOf(Entry({{"isOnboarded", "true"}})) == "users[0].isOnboarded: must be a boolean");
  CHECK(ErrorOf(Entry({{"createdAt", nullptr}})).rfind("users[0].createdAt:", 0) == 0);
  CHECK(ErrorOf(Entry({{"updatedAt", "yesterday"}})).rfind("users[0].updatedAt:", 0) == 0);
}

TEST_CASE("admin users: unknown members are ignored and the id is lower-cased", "[admin]") {
  auto e = ParseImportEntry(Entry({{"id", "0B8E6B2C-1F7A-4C1E-9D55-3F1B2A9C0E11"}, {"transactionId", 7}, {"x", 1}}), 0);
  REQUIRE(e.ok());
  CHECK(e->id == "0b8e6b2c-1f7a-4c1e-9d55-3f1b2a9c0e11");
}

}  // namespace
}  // namespace usersd::admin
