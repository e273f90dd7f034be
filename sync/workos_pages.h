// WorkOS list pages, read: the GET /events page the events poller applies
// and the GET /user_management/users page reconciliation applies. Logic
// without I/O, fuzzed (fuzz/targets/sync.cc): the bodies come from the
// network.
//
// Events page rules (SPEC 4; the poller's header says why):
//   - entries that are not objects or have no string `id` are unreadable
//     (counted, skipped); `created_at` that does not parse counts as 0;
//   - events come back sorted by (created_at, id), oldest first, whatever
//     order the server used, and `newest_first` tells whether it used
//     another;
//   - EventsAfter keeps what is newer than the feed position;
//   - LastPerUser keeps, of the three user events, the last one of each
//     WorkOS user (each carries the whole user).
//
// Pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "domain/types.h"

namespace usersd::sync {

using Json = nlohmann::json;

// A position in the events feed: created_at, then the event id (WorkOS event
// ids are ULIDs, so they break ties in creation order).
struct FeedPos {
  int64_t at_ms = 0;
  std::string id;
  bool operator<(const FeedPos& o) const { return at_ms != o.at_ms ? at_ms < o.at_ms : id < o.id; }
  bool operator<=(const FeedPos& o) const { return !(o < *this); }
};

struct FeedEvent {
  FeedPos pos;
  std::string type;       // "user.created", … ("" when absent)
  Json data;              // the event's payload
  std::string workos_id;  // data.id for user events ("" when absent)
};

struct EventsPage {
  std::vector<FeedEvent> events;  // readable entries, oldest first
  size_t entries = 0;             // entries in `data`
  size_t unreadable = 0;          // entries skipped as unreadable
  bool newest_first = false;      // the server's order was not oldest first
};

// InvalidArgument when the body is not an object with a `data` array.
Result<EventsPage> ParseEventsPage(std::string_view body);

bool IsUserEvent(std::string_view type);

// The events (sorted, as ParseEventsPage gives them) after `floor`, or with
// no floor those at or after range_start_ms. The others are counted in
// *behind. An event with the floor's id is never after it.
std::vector<FeedEvent> EventsAfter(std::vector<FeedEvent> sorted, const std::optional<FeedPos>& floor,
                                   int64_t range_start_ms, uint64_t* behind);

// Of the user events in `events`, the last of each WorkOS user, in the order
// of those last occurrences; everything else (other types, earlier events of
// the same user) is counted in *dropped.
std::vector<FeedEvent> LastPerUser(std::vector<FeedEvent> events, uint64_t* dropped);

struct UsersPage {
  std::vector<domain::WorkosProfileSource::Profile> users;  // entries with a string id
  size_t entries = 0;
  std::string next_after;  // list_metadata.after ("" when null or absent)
};

// InvalidArgument when the body is not an object with a `data` array.
Result<UsersPage> ParseUsersPage(std::string_view body);

// A WorkOS user object's fields; nullopt when `user` is not an object.
std::optional<domain::WorkosProfileSource::Profile> ParseWorkosUser(const Json& user);

}  // namespace usersd::sync
