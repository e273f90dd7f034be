#include "domain/user_json.h"

#include <charconv>

#include "common/timefmt.h"
#include "domain/roles.h"
#include "ipc/protocol.h"

namespace usersd::domain {

using store::UserRecord;

namespace {

Json OptString(const std::optional<std::string>& s) { return s ? Json(*s) : Json(nullptr); }
Json OptTime(const std::optional<int64_t>& t) { return t ? Json(FormatIso8601Ms(*t)) : Json(nullptr); }

// A JSON string as nlohmann writes it. Printable ASCII without quote or
// backslash (ids, most names, URLs, zones) is copied as is; anything else
// goes through nlohmann's serializer, which escapes and replaces invalid
// UTF-8.
void Str(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      ipc::AppendJson(out, Json(std::string(s)));
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}
void OptStr(std::string& out, const std::optional<std::string>& s) {
  if (s) Str(out, *s);
  else out += "null";
}
void Time(std::string& out, int64_t ms) { Str(out, FormatIso8601Ms(ms)); }
void OptTimeOut(std::string& out, const std::optional<int64_t>& t) {
  if (t) Time(out, *t);
  else out += "null";
}
void Settings(std::string& out, const std::optional<Json>& s) {
  if (s) ipc::AppendJson(out, *s);
  else out += "null";
}
void Uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

Json ToUserJson(const UserRecord& u) {
  return Json{{"id", u.id},
              {"email", u.email},
              {"firstName", u.first_name},
              {"lastName", u.last_name},
              {"avatarUrl", OptString(u.avatar_url)},
              {"userType", u.user_type},
              {"settings", u.settings ? *u.settings : Json(nullptr)},
              {"isOnboarded", u.is_onboarded},
              {"timezone", OptString(u.timezone)},
              {"createdAt", FormatIso8601Ms(u.created_at_ms)},
              {"updatedAt", OptTime(u.updated_at_ms)},
              {"deletedAt", OptTime(u.deleted_at_ms)}};
}

Json ToCurrentUserJson(const UserRecord& u, const auth::Claims& caller) {
  // organizationId and role describe the session: AuthKit issues them per
  // token (a user may switch organizations), so the token is the source.
  return Json{{"id", u.id},
              {"organizationId", caller.org_id ? Json(*caller.org_id) : Json(nullptr)},
              {"role", SessionRole(caller.role)},
              {"email", u.email},
              {"firstName", u.first_name},
              {"lastName", u.last_name},
              {"avatarUrl", OptString(u.avatar_url)},
              {"isOnboarded", u.is_onboarded},
              {"timezone", OptString(u.timezone)},
              {"settings", u.settings ? *u.settings : Json(nullptr)}};
}

Json ToMutationResultJson(const UserRecord& u) { return Json{{"data", ToUserJson(u)}, {"transactionId", u.txid}}; }

// Keys below are in std::map (byte) order, as the DOM forms serialize.
void AppendUserJson(std::string& out, const UserRecord& u) {
  out += "{\"avatarUrl\":";
  OptStr(out, u.avatar_url);
  out += ",\"createdAt\":";
  Time(out, u.created_at_ms);
  out += ",\"deletedAt\":";
  OptTimeOut(out, u.deleted_at_ms);
  out += ",\"email\":";
  Str(out, u.email);
  out += ",\"firstName\":";
  Str(out, u.first_name);
  out += ",\"id\":";
  Str(out, u.id);
  out += u.is_onboarded ? ",\"isOnboarded\":true" : ",\"isOnboarded\":false";
  out += ",\"lastName\":";
  Str(out, u.last_name);
  out += ",\"settings\":";
  Settings(out, u.settings);
  out += ",\"timezone\":";
  OptStr(out, u.timezone);
  out += ",\"updatedAt\":";
  OptTimeOut(out, u.updated_at_ms);
  out += ",\"userType\":";
  Str(out, u.user_type);
  out += '}';
}

void AppendCurrentUserJson(std::string& out, const UserRecord& u, const auth::Claims& caller) {
  out += "{\"avatarUrl\":";
  OptStr(out, u.avatar_url);
  out += ",\"email\":";
  Str(out, u.email);
  out += ",\"firstName\":";
  Str(out, u.first_name);
  out += ",\"id\":";
  Str(out, u.id);
  out += u.is_onboarded ? ",\"isOnboarded\":true" : ",\"isOnboarded\":false";
  out += ",\"lastName\":";
  Str(out, u.last_name);
  out += ",\"organizationId\":";
  OptStr(out, caller.org_id);
  out += ",\"role\":";
  Str(out, SessionRole(caller.role));
  out += ",\"settings\":";
  Settings(out, u.settings);
  out += ",\"timezone\":";
  OptStr(out, u.timezone);
  out += '}';
}

void AppendMutationResultJson(std::string& out, const UserRecord& u) {
  out += "{\"data\":";
  AppendUserJson(out, u);
  out += ",\"transactionId\":";
  Uint(out, u.txid);
  out += '}';
}

}  // namespace usersd::domain
