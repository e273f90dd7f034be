// OutboxSender: delivers the durable outbox to WorkOS (SPEC 4 and 4b).
//
// Jobs are written by the operations in the same transaction as their change
// (domain/user_mutations.h): per user at most one pending update job, which
// later writes merge into, plus delete and fetch jobs in order. The sender
// keeps at most one request in flight per WorkOS user (also across a
// re-key, when the window holds jobs under the old local id and the new
// one), in job order. For an update it reads the job and the user from the
// store at send time (so every write merged in since goes in the same
// request) and sends what domain/publish.h plans: one PUT with the changed
// WorkOS-owned fields and the whole versioned document, with a GET first
// only where publish.h asks for one. The answer is applied through
// domain::CompletePublish: what was delivered leaves the job, a write made
// during the flight keeps the job (the user is sent again), parts WorkOS did
// not take become dead letters. Consecutive update jobs (an outbox of an
// earlier release) are merged into one request. Delete jobs send DELETE
// (404 counts as done). Fetch jobs GET the WorkOS profile: for users
// provisioned while WorkOS was unreachable they fill in the local fields
// that are still empty; re-reads ("resync") apply it like an event.
//
// Pace: every request takes a token of the host's RequestBudget
// (workos.requests_per_second), shared with reconciliation and resync.
//
// Failures: network errors, timeouts, 408, 429 and 5xx are retried with
// exponential backoff and full jitter (initial_backoff_ms doubling up to
// max_backoff_ms; a Retry-After header sets the floor); so are 401 and 403
// (the API key is wrong or lacks a permission: nothing is dead-lettered for
// it, SPEC 4). Other 4xx, and jobs older than max_age_ms, move to the
// dead-letter table with the last status and body; later jobs of that user
// go on.
//
// Whole-sender backoff: a transport failure, 5xx, 429, 401 or 403 means
// WorkOS as a whole is in trouble (or refuses the key), so the sender
// pauses: nothing new is sent until the pause ends, then exactly one request
// (a probe) goes out; while probes fail the pause grows on the same backoff
// schedule (Retry-After as a floor). A success (or any other WorkOS answer,
// or the upstream state turning online through other traffic such as the
// events poller) ends the pause and everything due is sent again. Requests
// already in flight when the pause begins finish normally.
//
// Memory: the sender keeps a window of at most kWindow jobs in memory
// (sync/outbox_window.h), read at Start, on Kick, whenever the window runs
// low, and at least every 10 s whatever it was told.
//
// State (attempts, next attempt time, last error) is persisted in the job
// through the Writer, so backoff survives restarts. Delivery is at least
// once: a job's delivered part is removed only after WorkOS acknowledged it,
// and the user stays busy until that removal commits.
//
// Loop thread only. Owns one timer (common/uv_timer.h): Close() flushes,
// stops the work and closes it, as destruction closes it; the loop must run
// once after either before uv_loop_close. Writer dones
// and HTTP callbacks arriving after Close() are ignored. Borrows everything
// passed to the constructor; all must outlive it. Time and randomness are
// injected (Clock, Random) so tests run with no sleeps.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "domain/user_mutations.h"
#include "store/writer.h"
#include "sync/outbox_window.h"
#include "sync/request_budget.h"
#include "sync/workos_client.h"

namespace usersd::sync {

struct OutboxOptions {
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 300000;
  int64_t max_age_ms = 604800LL * 1000;
  size_t max_in_flight = 8;  // usually workos.max_concurrency; 0 is treated as 1
  // identity.namespace, sync.metadata.* (never null).
  std::shared_ptr<const domain::SyncPolicy> sync = std::make_shared<const domain::SyncPolicy>();
  // The host's WorkOS request budget (shared; null: unpaced).
  std::shared_ptr<RequestBudget> budget;
};

// Returns a uniform double in [0, 1).
using Random = std::function<double()>;

// Full-jitter exponential backoff (common/backoff.h): uniform in
// [0, min(max, initial * 2^attempt)), with initial at least 1 ms, raised to
// retry_after_ms when the server asked for more. `attempt` counts
// from 0 (the delay after the first failure). Never negative. Pure; for tests.
int64_t BackoffDelayMs(const OutboxOptions& o, uint32_t attempt, double random01,
                       std::optional<int64_t> retry_after_ms);

struct OutboxStats {
  uint64_t depth = 0;                       // jobs in the in-memory window (and in flight)
  int64_t oldest_age_ms = -1;               // age of the oldest job in the window; -1 when empty
  uint64_t in_flight = 0;                   // requests under way
  uint64_t requests = 0;                    // requests sent since start
  uint64_t delivered = 0;                   // jobs acknowledged by WorkOS
  uint64_t dead_lettered = 0;               // jobs moved to the dead-letter table
  uint64_t not_taken = 0;                   // PUTs answered 2xx showing another value (dead-lettered)
  uint64_t reads_first = 0;                 // GETs made before a publish (publish.h says when)
  uint64_t kept = 0;                        // publishes after which a write made meanwhile kept the job
  uint64_t pending_writes = 0;              // store writes submitted, not yet committed
  std::map<int, uint64_t> sends_by_status;  // 0 = transport failure
  bool paused = false;                      // whole-sender backoff in force
  int64_t paused_until_ms = 0;              // wall clock; 0 = not paused
  int64_t next_wakeup_ms = 0;               // wall clock of the timer; 0 = none
};

class OutboxSender {
 public:
  // Jobs held in memory at most (see the class comment).
  static constexpr size_t kWindow = OutboxWindow::kCapacity;
  // Update jobs merged into one PUT at most.
  static constexpr size_t kMaxMerge = 256;

  OutboxSender(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer, const Clock& clock,
               OutboxOptions options, Random random);
  ~OutboxSender();  // REQUIRES: Close() was called and its close callback ran.
  OutboxSender(const OutboxSender&) = delete;
  OutboxSender& operator=(const OutboxSender&) = delete;

  // Reads the outbox and starts sending. Does nothing on send while WorkOS
  // is unconfigured (no API key); jobs stay queued.
  void Start();
  // New jobs were committed (or dead letters re-queued): look again on the
  // next loop turn. Cheap; calls within one turn coalesce.
  void Kick();
  void SetOptions(OutboxOptions options);
  // Sends whatever is due at clock.NowMs() (after reading new jobs if a
  // Kick is pending) and re-arms the timer. The timer calls it; tests call it
  // after advancing a FakeClock.
  void Tick();
  void Close();
  OutboxStats stats() const;
  // The usersd_outbox_* series of this sender (describes and sets them).
  // Loop thread: it reads stats(). The store's outbox gauges (depth, oldest
  // job) come from store::Store::ExportMetrics.
  void ExportMetrics(Metrics& m) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace usersd::sync
