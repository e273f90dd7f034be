// EventsPoller: brings WorkOS's user events into the store (SPEC section 4).
//
// Every poll_seconds it reads GET /events?events=user.created,user.updated,
// user.deleted&after={cursor} (from range_start = the store's creation time
// when there is no cursor yet), page after page (limit 100, following
// list_metadata.after until a page comes back short), and applies each page
// in one write transaction together with the new cursor (meta
// "events_cursor"): a page is applied entirely or not at all, so a crash
// never loses or half-applies one. Each event carries the whole user, so of
// several events of one user in a page only the last is applied; reading a
// page a second time therefore changes nothing.
//
// Applying an event:
//   user.created / user.updated  upsert by WorkOS id. A WorkOS user with no
//       local user gets one (new UUID, role member, no organization, email,
//       names and avatarUrl from WorkOS; createdAt from WorkOS so hosts
//       agree). For a live local user, email and names take the WorkOS
//       values, except a field that has an undelivered change in the outbox
//       (a pending update job naming it), which keeps its local value until
//       that change is delivered. profile_picture_url always records the
//       WorkOS picture (user.resetAvatar's offline fallback); avatarUrl
//       follows it only while it still shows the previous WorkOS picture
//       (or nothing), so an avatar the user chose is kept.
//       A soft-deleted local user stays deleted.
//   user.deleted  soft-deletes a live local user (deletedAt = now).
//   anything else  ignored, even if the server returns it.
// An email that another live local user holds is not taken over (logged;
// the rest of the event applies). An event that cannot be applied at all is
// logged and skipped; it does not hold back the page.
//
// Ordering: events are applied in feed order, and there is deliberately no
// comparison of the event's updated_at with the local updatedAt. The local
// updatedAt also moves for local-only fields (timezone, settings,
// onboarding) and comes from another clock, so such a comparison would drop
// genuine WorkOS changes; the outbox rule above is what keeps a newer local
// change from being overwritten.
//
// Loop thread only. Owns one uv_timer_t; Close() before destruction, then
// let the loop run once so the handle's close callback runs. Borrows
// everything passed to the constructor.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "store/writer.h"
#include "sync/workos_client.h"

namespace usersd::sync {

struct EventsStats {
  uint64_t polls = 0;
  uint64_t pages = 0;
  uint64_t applied = 0;   // events that changed the store
  uint64_t ignored = 0;   // other types, unknown users' deletions, or no change
  uint64_t failures = 0;  // polls that ended in an error
  int64_t last_success_ms = 0;
};

class EventsPoller {
 public:
  static constexpr int kPageLimit = 100;

  EventsPoller(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer, const Clock& clock,
               int64_t poll_seconds);
  ~EventsPoller();  // REQUIRES: Close() was called and its close callback ran.
  EventsPoller(const EventsPoller&) = delete;
  EventsPoller& operator=(const EventsPoller&) = delete;

  // Reads the stored cursor and starts polling (the first poll right away).
  // Polls are skipped while poll_seconds == 0 or WorkOS is unconfigured.
  void Start();
  // Polls now (all pages); `done` runs when the attempt ends. Joins a poll
  // under way instead of starting a second one.
  void PollNow(std::function<void(Status)> done);
  void SetPollSeconds(int64_t s);
  void Close();
  std::optional<std::string> cursor() const;
  EventsStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace usersd::sync
