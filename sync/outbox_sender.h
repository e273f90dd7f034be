// OutboxSender: delivers the durable outbox to WorkOS (SPEC section 4).
//
// Jobs are written by the operations in the same transaction as their change
// (store/store.h, table "outbox"). The sender keeps at most one request in
// flight per WorkOS user (also across a re-key, when the window holds jobs
// under the old local id and the new one), in job order; consecutive update jobs of one user are
// merged into one PUT (later fields win) and removed together when it
// succeeds. An update carrying shared fields or an id to publish (SPEC 4b)
// first GETs the user and PUTs the metadata document with only its own
// fields replaced, and external_id only while WorkOS has none (PlanPut);
// what the GET shows about external_id is recorded, which may re-key the
// user (domain/user_mutations.h). Delete jobs send DELETE (404 counts as
// done). Fetch jobs GET the WorkOS profile: for users provisioned while
// WorkOS was unreachable they fill in the local fields that are still
// empty, record the profile picture and clear profile_pending; re-reads
// ("resync", queued behind a held field) apply it like an event.
//
// Failures: network errors, timeouts, 408, 429 and 5xx are retried with
// exponential backoff and full jitter (initial_backoff_ms doubling up to
// max_backoff_ms; a Retry-After header sets the floor). Other 4xx, and jobs
// older than max_age_ms, move to the dead-letter table with the last status
// and body; later jobs of that user go on.
//
// Whole-sender backoff: a transport failure, 5xx or 429 means WorkOS as a
// whole is in trouble, so the sender pauses: nothing new is sent until the
// pause ends, then exactly one request (a probe) goes out; while probes fail
// the pause grows on the same backoff schedule (Retry-After as a floor).
// A success (or any other WorkOS answer, or the upstream state turning
// online through other traffic such as the events poller) ends the pause and
// everything due is sent again. Requests already in flight when the pause
// begins finish normally. So an outage costs at most max_in_flight requests
// plus one per backoff step, however deep the outbox is.
//
// Memory: the sender keeps a window of at most kWindow jobs (the oldest ids)
// in memory, read from the store at Start and extended by reading only ids
// above the highest one seen (Kick, and whenever the window runs low).
// Jobs of one user are therefore always loaded in order. If the table holds
// jobs the sender has not seen below that id (a dead letter re-queued under
// its old id), a count check on Kick notices it and rescans.
//
// State (attempts, next attempt time, last error) is persisted in the job
// through the Writer, so backoff survives restarts. Delivery is at least
// once: a job is deleted only after WorkOS acknowledged it; the next job of
// that user may be sent before the deletion commits (a crash in between
// re-sends the older job first, in order, which WorkOS treats as a repeat).
//
// Loop thread only. Owns one uv_timer_t; Close() before destruction, then
// let the loop run once so the handle's close callback runs. Writer dones
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
#include "sync/workos_client.h"

namespace usersd::sync {

struct OutboxOptions {
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 300000;
  int64_t max_age_ms = 604800LL * 1000;
  size_t max_in_flight = 8;  // usually workos.max_concurrency; 0 is treated as 1
  // identity.namespace, sync.metadata.* (never null).
  std::shared_ptr<const domain::SyncPolicy> sync = std::make_shared<const domain::SyncPolicy>();
};

// What a read-modify-write sends, decided from the job's merged fields and
// the user WorkOS shows (SPEC 4b "Writes and conflicts"). Pure; for tests.
struct PutPlan {
  Json body = Json::object();  // the PUT; empty: nothing to send
  // The job cannot apply (a dead letter with this JSON text): the shared
  // fields do not fit, or WorkOS holds another external_id than an imported id.
  std::optional<std::string> refusal;
  bool keep_imported_id = false;  // the refusal keeps the imported id on this host
  bool sets_external_id = false;  // the body publishes the id
  // WorkOS's external_id, to record (and re-key to when it is a UUID).
  std::optional<std::optional<std::string>> learned_external_id;
};

// True when the job's fields need the read first: the document or external_id.
bool NeedsRead(const Json& fields, const domain::SyncPolicy& sync);

// The body: WorkOS-owned fields as the job carries them; with shared fields,
// the document WorkOS shows with only the job's fields replaced, chunked with
// the application's metadata keys carried as shown; external_id only when
// WorkOS has none.
PutPlan PlanPut(const Json& fields, const domain::WorkosProfileSource::Profile& shown, const domain::SyncPolicy& sync);

// Returns a uniform double in [0, 1).
using Random = std::function<double()>;

// Full-jitter exponential backoff: uniform in [0, min(max, initial * 2^attempt)),
// raised to retry_after_ms when the server asked for more. `attempt` counts
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
  uint64_t pending_writes = 0;              // store writes submitted, not yet committed
  std::map<int, uint64_t> sends_by_status;  // 0 = transport failure
  bool paused = false;                      // whole-sender backoff in force
  int64_t paused_until_ms = 0;              // wall clock; 0 = not paused
  int64_t next_wakeup_ms = 0;               // wall clock of the timer; 0 = none
};

class OutboxSender {
 public:
  // Jobs held in memory at most (see the class comment).
  static constexpr size_t kWindow = 4096;
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
