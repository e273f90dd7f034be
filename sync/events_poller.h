// EventsPoller: brings WorkOS's user events into the store (SPEC section 4).
//
// What it sends. Every poll_seconds:
//   GET /events?events[]=user.created&events[]=user.updated&events[]=user.deleted
//       &order=asc&limit=100&after={cursor}
// or, with no cursor yet, &range_start={start} instead of after, where start
// is the store's creation time (or the start of the last reconciliation,
// which cleared the cursor). WorkOS lists newest first unless asked
// otherwise, so order=asc is always sent. Pages follow one another while a
// page is full and moved the cursor.
//
// How a page is read. A server may ignore `order`, the type filter or
// range_start; none of that may put an older state over a newer one:
//   - the page is sorted by (created_at, id) and applied oldest first; a page
//     that came back newest first is logged (once) and counted;
//   - events at or before the cursor (by created_at, then id) are skipped,
//     and so are events before range_start when there is no cursor; a page
//     of nothing but such events while there is no cursor (a server that
//     ignores range_start) moves the cursor to its last event, and reading
//     goes on, so a fresh store or a finished reconciliation is not stuck
//     behind an old history;
//   - each event carries the whole user, so of several events of one user in
//     a page only the last is applied, and domain/remote_user.h refuses a
//     user state older than the one the record already shows.
// The page's events and the new cursor (the newest event read, with its
// created_at) commit in one write transaction, so a crash never loses or
// half-applies a page. What an event does to a record is decided by
// domain/user_mutations.h (ApplyRemoteUser / ApplyRemoteDelete).
//
// Stuck and old cursors. "Stuck" means the feed cannot move, never "nothing
// new yet": a page that had events but none newer than the cursor, and was
// full, came newest first or did not show the cursor event (the server
// ignores `after` or `order`, so what is newer is never served), turns
// stats().stuck true (logged once per episode, exported as
// usersd_events_stuck) until a poll moves the cursor or reaches the end of
// the feed. A short oldest-first page that shows the cursor event and nothing
// after it is a server that ignores `after` with nothing new: caught up.
//
// A refused API key (401, 403) fails the poll quietly (WorkosClient logs it
// once a minute) and doubles the wait before the next one, from the poll
// interval up to 5 minutes, until an accepted answer.
// When the last poll that reached the end of the feed is older than
// max_cursor_age_ms (events are kept for a limited time), or the server
// rejects the cursor (400, 404, 410 or 422 to a request with `after`), the
// poller asks for a reconciliation (SPEC 4b) through `request_reconcile`
// and does not poll while `reconciling()` says one runs; the reconciler
// clears the cursor when it finishes (Reload() picks that up). A rejected
// cursor is not sent again: until Reload(), each poll asks for the
// reconciliation instead, which the reconciler may refuse for a while after
// a failed run (then the poll ends Unavailable, logged at debug).
//
// Loop thread only. Owns one timer (common/uv_timer.h): Close() stops
// polling and closes it, as does destruction; the loop must run once after
// either before uv_loop_close. Borrows everything passed to the constructor.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "domain/user_mutations.h"
#include "store/writer.h"
#include "sync/workos_client.h"

namespace usersd::sync {

struct EventsStats {
  uint64_t polls = 0;
  uint64_t pages = 0;
  uint64_t applied = 0;   // events that changed the store
  uint64_t ignored = 0;   // other types, duplicates in a page, or no change
  uint64_t stale = 0;     // user states older than what the record shows
  uint64_t behind_cursor = 0;       // events at or before the cursor (or before range_start)
  uint64_t newest_first_pages = 0;  // pages that came back newest first
  uint64_t failures = 0;            // polls that ended in an error
  std::map<std::string, uint64_t> applied_by_type;  // "user.created" -> n
  bool stuck = false;            // the last page had events, none newer than the cursor
  int64_t last_success_ms = 0;   // last poll that ended without error
  int64_t last_poll_ms = 0;      // last poll attempt's start
  uint64_t last_poll_events = 0;  // events read by the last poll
  int64_t cursor_at_ms = 0;       // created_at of the cursor event (0: none)
  int64_t newest_seen_ms = 0;     // newest created_at any page showed
  int64_t caught_up_ms = 0;       // last poll that reached the end of the feed
  int64_t next_poll_delay_ms = 0;  // the wait armed after the last poll (longer while the key is refused)
};

struct EventsOptions {
  int64_t poll_seconds = 10;  // 0 disables polling
  // A feed position older than this is repaired by a reconciliation instead
  // of being read (0: never).
  int64_t max_cursor_age_ms = 25LL * 86400 * 1000;
  // identity.namespace, sync.metadata.* (never null).
  std::shared_ptr<const domain::SyncPolicy> sync = std::make_shared<const domain::SyncPolicy>();
  // Applying WorkOS's state may queue outbox jobs (a re-read behind a held
  // field); the outbox is told after each committed page that applied any.
  std::function<void()> kick_outbox;
  // Uniform in [0, 1): spreads the polls of hosts started together
  // (PollDelayMs). Unset: every wait is exactly poll_seconds.
  std::function<double()> random;
};

// The wait between polls: poll_seconds shortened by up to a tenth (r in
// [0, 1) picks how much), so that a fleet restarted together drifts apart
// instead of calling WorkOS in the same instant at every poll. Never longer
// than poll_seconds, so SPEC 4b's bound of two poll intervals holds.
int64_t PollDelayMs(int64_t poll_seconds, double r);

class EventsPoller {
 public:
  static constexpr int kPageLimit = 100;

  EventsPoller(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer, const Clock& clock,
               EventsOptions options);
  ~EventsPoller();  // REQUIRES: Close() was called and its close callback ran.
  EventsPoller(const EventsPoller&) = delete;
  EventsPoller& operator=(const EventsPoller&) = delete;

  // The reconciliation hooks (sync/reconciler.h). request_reconcile(reason)
  // starts one unless one runs and says Ok, or says why it did not start;
  // reconciling() tells whether one runs. Unset: an old or rejected cursor
  // is only logged.
  void SetReconcileHooks(std::function<Status(const std::string& reason)> request_reconcile,
                         std::function<bool()> reconciling);

  // Reads the stored position and starts polling (the first poll right away).
  // Polls are skipped while poll_seconds == 0 or WorkOS is unconfigured.
  void Start();
  // Polls now (all pages); `done` runs when the attempt ends. Joins a poll
  // under way instead of starting a second one.
  void PollNow(std::function<void(Status)> done);
  // Re-reads the stored position (after a reconciliation replaced it).
  void Reload();
  void SetOptions(EventsOptions options);
  void Close();
  std::optional<std::string> cursor() const;
  EventsStats stats() const;
  // Describes and sets the usersd_events_* series. Loop thread.
  void ExportMetrics(Metrics& m) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace usersd::sync
