// Target body for the WorkOS list pages (fuzz/targets.h).
#include <set>
#include <string>
#include <string_view>

#include "fuzz/targets.h"
#include "sync/workos_pages.h"

namespace usersd::fuzz {

// Input: the body of a GET /events or GET /user_management/users answer
// (what a WorkOS-compatible server, or anything on the path to it, sends).
// ParseEventsPage either refuses it with InvalidArgument or returns every
// readable entry sorted oldest first; EventsAfter keeps exactly the events
// after the floor; LastPerUser keeps one user event per WorkOS user, the
// last. ParseUsersPage never returns a user without an id.
int FuzzWorkosPages(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto page = sync::ParseEventsPage(body);
  if (!page.ok()) {
    USERSD_FUZZ_CHECK(page.status().code() == Code::kInvalidArgument);
  } else {
    const auto& evs = page->events;
    USERSD_FUZZ_CHECK(evs.size() + page->unreadable == page->entries);
    for (size_t i = 1; i < evs.size(); ++i) USERSD_FUZZ_CHECK(evs[i - 1].pos <= evs[i].pos);
    for (const auto& ev : evs) USERSD_FUZZ_CHECK(!ev.pos.id.empty());
    // The floor: the middle event, if any.
    std::optional<sync::FeedPos> floor;
    if (!evs.empty()) floor = evs[evs.size() / 2].pos;
    uint64_t behind = 0;
    auto ahead = sync::EventsAfter(evs, floor, 0, &behind);
    USERSD_FUZZ_CHECK(ahead.size() + behind == evs.size());
    for (const auto& ev : ahead) USERSD_FUZZ_CHECK(*floor < ev.pos && ev.pos.id != floor->id);
    uint64_t dropped = 0;
    auto last = sync::LastPerUser(ahead, &dropped);
    USERSD_FUZZ_CHECK(last.size() + dropped == ahead.size());
    std::set<std::string> users;
    for (const auto& ev : last) {
      USERSD_FUZZ_CHECK(sync::IsUserEvent(ev.type));
      USERSD_FUZZ_CHECK(users.insert(ev.workos_id).second);
    }
    // Each kept event is the last of its user.
    for (size_t i = 0; i < ahead.size(); ++i) {
      if (!sync::IsUserEvent(ahead[i].type)) continue;
      bool later = false;
      for (size_t j = i + 1; j < ahead.size(); ++j)
        later |= sync::IsUserEvent(ahead[j].type) && ahead[j].workos_id == ahead[i].workos_id;
      if (!later) USERSD_FUZZ_CHECK(users.count(ahead[i].workos_id) == 1);
    }
  }
  auto users = sync::ParseUsersPage(body);
  if (!users.ok()) {
    USERSD_FUZZ_CHECK(users.status().code() == Code::kInvalidArgument);
  } else {
    USERSD_FUZZ_CHECK(users->users.size() <= users->entries);
    for (const auto& u : users->users) USERSD_FUZZ_CHECK(!u.workos_id.empty());
  }
  return 0;
}

}  // namespace usersd::fuzz
