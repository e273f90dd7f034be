// The admin socket's view of a user, and the entries of admin.users.import.
//
// An admin user is the application socket's User (domain::ToUserJson) plus
// `workosId`, `organizationId` and `role`: what admin.users.get/list return,
// what `usersctl users export` writes and what admin.users.import reads back,
// so an export imports unchanged.
//
// Pure functions on values; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/status.h"
#include "store/store.h"

namespace usersd::admin {

using Json = nlohmann::json;

// User + workosId, organizationId, role.
Json ToAdminUserJson(const store::UserRecord& u);

// One validated import entry. A field left out of the entry is nullopt here
// and leaves an existing user's value unchanged (a new user gets the
// default). For nullable fields the inner optional is the value (nullopt =
// null).
struct ImportEntry {
  std::string workos_id;                // required, non-empty
  std::optional<std::string> id;        // lower-case UUID
  std::optional<std::string> email;     // "" allowed (profile not known yet)
  std::optional<std::string> first_name, last_name;  // "" allowed (WorkOS has none)
  std::optional<std::string> user_type;  // "user" | "machine"
  std::optional<std::string> role;       // "owner" | "admin" | "member"
  std::optional<std::optional<std::string>> avatar_url, timezone, organization_id;
  std::optional<std::optional<Json>> settings;
  std::optional<bool> is_onboarded;
  std::optional<int64_t> created_at_ms;
  std::optional<std::optional<int64_t>> updated_at_ms, deleted_at_ms;
};

// Validates entry number `index` of the `users` array with the same rules as
// user.update (domain/validate.h), except that empty names and emails are
// accepted (WorkOS users may have none). Unknown members are ignored (an
// export's extra fields import cleanly). Fails with InvalidArgument whose
// message names the entry and the field: "users[3].email: must be ...".
Result<ImportEntry> ParseImportEntry(const Json& entry, size_t index);

// Copies the present fields of `e` onto `u` (id and workos_id excepted).
void ApplyImportEntry(const ImportEntry& e, store::UserRecord* u);

}  // namespace usersd::admin
