#include "sync/workos_pages.h"

#include <algorithm>
#include <unordered_map>

#include "common/text.h"
#include "common/timefmt.h"

namespace usersd::sync {

namespace {

// WorkOS documents its times as ISO 8601, but the event samples of its
// data-syncing guide (and its Node SDK's fixtures) have no zone: UTC.
constexpr bool kNoZoneIsUtc = true;

std::string StrField(const Json& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::optional<domain::WorkosProfileSource::Profile> ParseWorkosUser(const Json& u) {
  if (!u.is_object()) return std::nullopt;
  domain::WorkosProfileSource::Profile p;
  p.workos_id = StrField(u, "id");
  p.shown.email = u.contains("email");
  p.shown.first_name = u.contains("first_name");
  p.shown.last_name = u.contains("last_name");
  p.shown.external_id = u.contains("external_id");
  p.email = StrField(u, "email");
  p.first_name = StrField(u, "first_name");
  p.last_name = StrField(u, "last_name");
  std::string pic = StrField(u, "profile_picture_url");
  if (!Trim(pic, kLineBlanks).empty()) p.profile_picture_url = pic;
  p.created_at_ms = ParseIso8601Ms(StrField(u, "created_at"), kNoZoneIsUtc);
  p.updated_at_ms = ParseIso8601Ms(StrField(u, "updated_at"), kNoZoneIsUtc);
  std::string xid = StrField(u, "external_id");
  if (!xid.empty()) p.external_id = std::move(xid);
  if (auto md = u.find("metadata"); md != u.end() && md->is_object()) {
    p.metadata = *md;
    p.has_metadata = true;
  }
  return p;
}

bool IsUserEvent(std::string_view t) {
  return t == "user.created" || t == "user.updated" || t == "user.deleted";
}

Result<EventsPage> ParseEventsPage(std::string_view body) {
  Json doc = Json::parse(body, nullptr, false);
  auto data = doc.is_object() ? doc.find("data") : doc.end();
  if (!doc.is_object() || data == doc.end() || !data->is_array()) {
    return Status::InvalidArgument("events poll returned an unreadable page");
  }
  EventsPage page;
  page.entries = data->size();
  page.events.reserve(data->size());
  for (auto& e : *data) {
    if (!e.is_object() || StrField(e, "id").empty()) {
      ++page.unreadable;
      continue;
    }
    FeedEvent ev;
    ev.pos.id = StrField(e, "id");
    ev.pos.at_ms = ParseIso8601Ms(StrField(e, "created_at"), kNoZoneIsUtc).value_or(0);
    ev.type = StrField(e, "event");
    if (auto d = e.find("data"); d != e.end()) ev.data = std::move(*d);
    if (IsUserEvent(ev.type) && ev.data.is_object()) ev.workos_id = StrField(ev.data, "id");
    page.events.push_back(std::move(ev));
  }
  for (size_t i = 1; i < page.events.size() && !page.newest_first; ++i) {
    page.newest_first = page.events[i].pos < page.events[i - 1].pos;
  }
  std::stable_sort(page.events.begin(), page.events.end(),
                   [](const FeedEvent& a, const FeedEvent& b) { return a.pos < b.pos; });
  return page;
}

std::vector<FeedEvent> EventsAfter(std::vector<FeedEvent> sorted, const std::optional<FeedPos>& floor,
                                   int64_t range_start_ms, uint64_t* behind) {
  std::vector<FeedEvent> out;
  for (auto& ev : sorted) {
    bool is_behind = floor ? ev.pos <= *floor || ev.pos.id == floor->id : ev.pos.at_ms < range_start_ms;
    if (is_behind) {
      ++*behind;
      continue;
    }
    out.push_back(std::move(ev));
  }
  return out;
}

std::vector<FeedEvent> LastPerUser(std::vector<FeedEvent> events, uint64_t* dropped) {
  std::unordered_map<std::string, size_t> last_of;
  for (size_t i = 0; i < events.size(); ++i) {
    if (IsUserEvent(events[i].type)) last_of[events[i].workos_id] = i;
  }
  std::vector<FeedEvent> out;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!IsUserEvent(events[i].type) || last_of[events[i].workos_id] != i) {
      ++*dropped;
      continue;
    }
    out.push_back(std::move(events[i]));
  }
  return out;
}

Result<UsersPage> ParseUsersPage(std::string_view body) {
  Json doc = Json::parse(body, nullptr, false);
  auto data = doc.is_object() ? doc.find("data") : doc.end();
  if (!doc.is_object() || data == doc.end() || !data->is_array()) {
    return Status::InvalidArgument("listing users returned an unreadable page");
  }
  UsersPage page;
  page.entries = data->size();
  for (const auto& u : *data) {
    auto p = ParseWorkosUser(u);
    if (p && !p->workos_id.empty()) page.users.push_back(std::move(*p));
  }
  if (auto md = doc.find("list_metadata"); md != doc.end() && md->is_object()) page.next_after = StrField(*md, "after");
  return page;
}

}  // namespace usersd::sync
