#include "admin/admin_users.h"

#include "common/text.h"
#include "common/timefmt.h"
#include "domain/roles.h"
#include "domain/users_service.h"
#include "domain/validate.h"

namespace usersd::admin {

namespace {

std::string Field(size_t index, const char* name) {
  return "users[" + std::to_string(index) + "]." + name;
}

// Turns a validator's "field: rule" message into "users[i].field: rule".
Status Prefixed(size_t index, const Status& st) {
  return Status::InvalidArgument("users[" + std::to_string(index) + "]." + st.message());
}

Status TypeError(size_t index, const char* name, const char* what) {
  return Status::InvalidArgument(Field(index, name) + ": must be " + what);
}

// Reads an optional string member; `nullable` allows JSON null.
Status OptStringMember(const Json& j, size_t index, const char* name, std::optional<std::string>* out) {
  auto it = j.find(name);
  if (it == j.end()) return Status::Ok();
  if (!it->is_string()) return TypeError(index, name, "a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status NullableStringMember(const Json& j, size_t index, const char* name,
                            std::optional<std::optional<std::string>>* out) {
  auto it = j.find(name);
  if (it == j.end()) return Status::Ok();
  if (it->is_null()) {
    *out = std::optional<std::string>();
    return Status::Ok();
  }
  if (!it->is_string()) return TypeError(index, name, "a string or null");
  *out = std::optional<std::string>(it->get<std::string>());
  return Status::Ok();
}

Status TimeMember(const Json& j, size_t index, const char* name, bool nullable,
                  std::optional<std::optional<int64_t>>* out) {
  auto it = j.find(name);
  if (it == j.end()) return Status::Ok();
  if (it->is_null()) {
    if (!nullable) return TypeError(index, name, "an ISO 8601 time");
    *out = std::optional<int64_t>();
    return Status::Ok();
  }
  if (!it->is_string()) return TypeError(index, name, nullable ? "an ISO 8601 time or null" : "an ISO 8601 time");
  auto ms = ParseIso8601Ms(it->get<std::string>());
  if (!ms) return TypeError(index, name, "an ISO 8601 time like 2026-11-26T17:52:41.123Z");
  *out = std::optional<int64_t>(*ms);
  return Status::Ok();
}

}  // namespace

Json ToAdminUserJson(const store::UserRecord& u) {
  Json j = domain::ToUserJson(u);
  j["workosId"] = u.workos_id;
  j["organizationId"] = u.organization_id ? Json(*u.organization_id) : Json(nullptr);
  j["role"] = u.role;
  return j;
}

Result<ImportEntry> ParseImportEntry(const Json& j, size_t index) {
  if (!j.is_object())
    return Status::InvalidArgument("users[" + std::to_string(index) + "]: must be an object");
  ImportEntry e;
  auto w = j.find("workosId");
  if (w == j.end() || w->is_null()) return Status::InvalidArgument(Field(index, "workosId") + ": required");
  if (!w->is_string() || w->get<std::string>().empty() || w->get<std::string>().size() > 255 ||
      !IsValidUtf8(w->get<std::string>()))
    return TypeError(index, "workosId", "a non-empty string of at most 255 bytes");
  e.workos_id = w->get<std::string>();

  if (auto it = j.find("id"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || !domain::IsUuid(it->get<std::string>())) return TypeError(index, "id", "a UUID");
    e.id = ToLowerAscii(it->get<std::string>());
  }
  USERSD_RETURN_IF_ERROR(OptStringMember(j, index, "firstName", &e.first_name));
  if (e.first_name && !e.first_name->empty()) {
    Status st = domain::ValidateName("firstName", *e.first_name);
    if (!st.ok()) return Prefixed(index, st);
  }
  USERSD_RETURN_IF_ERROR(OptStringMember(j, index, "lastName", &e.last_name));
  if (e.last_name && !e.last_name->empty()) {
    Status st = domain::ValidateName("lastName", *e.last_name);
    if (!st.ok()) return Prefixed(index, st);
  }
  USERSD_RETURN_IF_ERROR(OptStringMember(j, index, "email", &e.email));
  if (e.email && !e.email->empty()) {
    Status st = domain::ValidateEmail(*e.email);
    if (!st.ok()) return Prefixed(index, st);
  }
  USERSD_RETURN_IF_ERROR(NullableStringMember(j, index, "avatarUrl", &e.avatar_url));
  if (e.avatar_url && *e.avatar_url) {
    Status st = domain::ValidateAvatarUrl(**e.avatar_url);
    if (!st.ok()) return Prefixed(index, st);
  }
  USERSD_RETURN_IF_ERROR(NullableStringMember(j, index, "timezone", &e.timezone));
  if (e.timezone && *e.timezone) {
    Status st = domain::ValidateTimezone(**e.timezone);
    if (!st.ok()) return Prefixed(index, st);
  }
  if (auto it = j.find("settings"); it != j.end()) {
    if (it->is_null()) {
      e.settings = std::optional<Json>();
    } else if (!it->is_object()) {
      return TypeError(index, "settings", "an object or null");
    } else {
      Status st = domain::ValidateSettings(*it);
      if (!st.ok()) return Prefixed(index, st);
      e.settings = std::optional<Json>(*it);
    }
  }
  USERSD_RETURN_IF_ERROR(OptStringMember(j, index, "userType", &e.user_type));
  if (e.user_type && *e.user_type != "user" && *e.user_type != "machine")
    return TypeError(index, "userType", "\"user\" or \"machine\"");
  USERSD_RETURN_IF_ERROR(OptStringMember(j, index, "role", &e.role));
  if (e.role && !domain::IsKnownRole(*e.role)) return TypeError(index, "role", "\"owner\", \"admin\" or \"member\"");
  USERSD_RETURN_IF_ERROR(NullableStringMember(j, index, "organizationId", &e.organization_id));
  if (e.organization_id && *e.organization_id &&
      ((*e.organization_id)->empty() || (*e.organization_id)->size() > 255 ||
       !IsValidUtf8(**e.organization_id)))
    return TypeError(index, "organizationId", "a non-empty string of at most 255 bytes, or null");
  if (auto it = j.find("isOnboarded"); it != j.end()) {
    if (!it->is_boolean()) return TypeError(index, "isOnboarded", "a boolean");
    e.is_onboarded = it->get<bool>();
  }
  std::optional<std::optional<int64_t>> created;
  USERSD_RETURN_IF_ERROR(TimeMember(j, index, "createdAt", false, &created));
  if (created) e.created_at_ms = **created;
  USERSD_RETURN_IF_ERROR(TimeMember(j, index, "updatedAt", true, &e.updated_at_ms));
  USERSD_RETURN_IF_ERROR(TimeMember(j, index, "deletedAt", true, &e.deleted_at_ms));
  return e;
}

}  // namespace usersd::admin
