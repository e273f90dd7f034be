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
#include "domain/user_mutations.h"
#include "store/store.h"

namespace usersd::admin {

using Json = nlohmann::json;

// User + workosId, organizationId, role.
Json ToAdminUserJson(const store::UserRecord& u);

// One validated import entry (the domain's: it decides what an import does).
using ImportEntry = domain::UserImport;

// Validates entry number `index` of the `users` array with the same rules as
// user.update (domain/validate.h), except that empty names and emails are
// accepted (WorkOS users may have none). Unknown members are ignored (an
// export's extra fields import cleanly). Fails with InvalidArgument whose
// message names the entry and the field: "users[3].email: must be ...".
Result<ImportEntry> ParseImportEntry(const Json& entry, size_t index);

}  // namespace usersd::admin
