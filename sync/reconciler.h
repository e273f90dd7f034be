// Reconciler: repairs what the events feed missed (SPEC 4b "Reconciliation").
//
// WorkOS keeps events for a limited time and an edge host can be offline
// longer; a server may also change or delete a user without an event. A full
// run lists every WorkOS user
//   GET /user_management/users?order=asc&limit=100&after={last id}
// and applies each one as an event would (domain/user_mutations.h: pending
// local changes still win, stale states are refused), then sweeps the local
// users: a live local user that the listing did not show, and that existed
// before the run started, is asked for on its own
//   GET /user_management/users/{id}
// and soft-deleted only when WorkOS answers 404 (a user it still has is
// applied and counted in users_not_listed): a listing can end early, e.g.
// when the user named by `after` was deleted between two pages, and must
// not soft-delete everyone after it. When
// the sweep is done it clears the events cursor and points the feed at the
// run's start (events_range_start), so the poller reads on from there.
//
// Triggers: the events poller (cursor too old, cursor rejected), a timer
// (every interval, less this host's early share, since the last run
// finished; the first one that long after the store was created), and
// `admin.users.resync {all: true}`. One run at a
// time; a trigger during a run joins it.
//
// Pacing and resumption: requests (list pages and the sweep's confirming
// GETs) start at most requests_per_second;
// a retryable failure (transport, 408, 429, 5xx) waits with exponential
// backoff (honouring Retry-After) and retries the same page; another answer
// ends the run with last_error, a refused API key (401, 403) included, named
// as such ("WorkOS refuses the API key (HTTP 401) ..."). After a failed run the automatic triggers
// (the poller's, the timer's) wait: 1 minute after the first failure,
// doubling up to 1 hour, reset by a completed run, so a key without the
// permission or a broken proxy costs WorkOS one list request per wait, not
// one per poll; an admin request starts at once. RetryNow() (the daemon calls
// it when WorkOS takes the API key again) lifts that wait when the failure
// was the key's. The next run starts over.
// The run's state (phase, position, counters) is committed with every page
// and every sweep batch (meta "reconcile"), and which WorkOS users the
// listing showed is recorded per user (meta "rcs:{workosId}" = run id), so a
// restart resumes where it stopped. The wait after a failure is not kept: a
// restarted daemon may start at once.
//
// ResyncOne: the same for one user (GET; 404 soft-deletes the local user).
//
// Loop thread only. Owns one timer (common/uv_timer.h): Close() stops the
// work and closes it, as does destruction; the loop must run once after
// either before uv_loop_close. Borrows everything passed to the constructor.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "domain/user_mutations.h"
#include "store/writer.h"
#include "sync/request_budget.h"
#include "sync/workos_client.h"

namespace usersd::sync {

struct ReconcileOptions {
  double requests_per_second = 5;            // list and confirming requests (sync.reconcile.requests_per_second)
  // The host's WorkOS budget (workos.requests_per_second), shared with the
  // outbox; each request also takes a token of it. Null: not shared.
  std::shared_ptr<RequestBudget> budget;
  int64_t interval_ms = 24LL * 3600 * 1000;  // 0: no timer (sync.reconcile.interval_hours)
  // Taken off interval_ms (never added, so a run is never later than the
  // interval SPEC 4b names): the daemon draws a random share of up to a
  // tenth of it at start, so that hosts set up together do not all list
  // WorkOS at the same hour every day.
  int64_t interval_early_ms = 0;
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 60000;
  // After a failed run, automatic triggers wait this long, doubling per
  // failed run up to failed_run_max_wait_ms.
  int64_t failed_run_wait_ms = 60 * 1000;
  int64_t failed_run_max_wait_ms = 3600 * 1000;
  int page_limit = 100;    // users per list request (WorkOS allows 1..100)
  int sweep_batch = 500;   // local users per sweep transaction
  // identity.namespace, sync.metadata.* (never null).
  std::shared_ptr<const domain::SyncPolicy> sync = std::make_shared<const domain::SyncPolicy>();
  // Applying WorkOS's state may queue outbox jobs (a re-read behind a held
  // field); the outbox is told after each committed page that applied any.
  std::function<void()> kick_outbox;
};

struct ReconcileStatus {
  bool running = false;
  std::string reason;  // cursor_too_old | cursor_rejected | interval | admin
  std::string phase;   // list | sweep (while running)
  uint64_t run_id = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;  // last run's end (0: never)
  uint64_t pages = 0;
  uint64_t users_seen = 0;     // WorkOS users listed
  uint64_t users_applied = 0;  // created or updated here
  uint64_t users_deleted = 0;  // soft-deleted by the sweep
  uint64_t users_not_listed = 0;  // not in the listing, but WorkOS still had them
  uint64_t runs_completed = 0;  // this process
  uint64_t runs_failed = 0;     // this process
  std::string last_error;
  int64_t next_auto_start_ms = 0;  // wall clock; after a failed run, automatic triggers wait until then (0: none)
};

struct ResyncResult {
  domain::RemoteOutcome outcome = domain::RemoteOutcome::kUnchanged;
  bool in_workos = true;
  std::optional<store::UserRecord> user;  // the local user afterwards
};

class Reconciler {
 public:
  Reconciler(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer, const Clock& clock,
             ReconcileOptions options);
  ~Reconciler();  // REQUIRES: Close() was called and its close callback ran.
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Runs after every completed run (the poller reloads its position).
  void SetOnFinished(std::function<void()> f);
  // Loads the persisted state, resumes a run that a stop interrupted, and
  // arms the interval timer.
  void Start();
  // Starts a full run unless one runs (then joins it); returns the run's id.
  // Unavailable when WorkOS is not configured, the reconciler is closed, or
  // the reason is automatic (not "admin") and the wait after a failed run
  // has not passed (the message says when it does).
  Result<uint64_t> StartAll(const std::string& reason);
  // One user by WorkOS id.
  void ResyncOne(const std::string& workos_id, std::function<void(Result<ResyncResult>)> done);
  bool running() const;
  // WorkOS answers again, or takes the API key again: a running run's
  // request waiting for a retry goes now, and when the last run failed on a
  // refused key, automatic triggers no longer wait for the failed-run backoff.
  void RetryNow();
  void SetOptions(ReconcileOptions options);
  void Close();
  ReconcileStatus status() const;
  void ExportMetrics(Metrics& m) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace usersd::sync
