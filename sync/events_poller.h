// EventsPoller: brings WorkOS's user events into the store (SPEC section 4).
//
// Every poll_seconds it reads GET /events?events=user.created,user.updated,
// user.deleted&after={cursor} (from range_start = the store's creation time
// when there is no cursor yet), page after page, and applies each page in one
// write transaction together with the new cursor: users are upserted by
// WorkOS id (created locally when new), soft-deleted on user.deleted, and a
// field that has an undelivered local change in the outbox keeps its local
// value. Event types other than the three are ignored. Profile picture URLs
// seen are kept for user.resetAvatar's offline fallback.
//
// Loop thread only. Owns one uv_timer_t; Close() before destruction.
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
  uint64_t applied = 0;   // events that changed the store
  uint64_t ignored = 0;   // other types, stale, or unchanged
  uint64_t failures = 0;
  int64_t last_success_ms = 0;
};

class EventsPoller {
 public:
  EventsPoller(uv_loop_t* loop, WorkosClient* workos, store::Store* store, store::Writer* writer,
               const Clock& clock, int64_t poll_seconds);
  ~EventsPoller();

  // Starts polling (no-op when poll_seconds == 0 or WorkOS is unconfigured).
  void Start();
  // Polls now (all pages); `done` runs when the attempt ends.
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
