// OutboxSender: delivers the durable outbox to WorkOS (SPEC section 4).
//
// Jobs are written by the operations in the same transaction as their change
// (store/store.h, table "outbox"). The sender keeps at most one request in
// flight per user, in job order; consecutive update jobs of one user are
// merged into one PUT (later fields win) and removed together when it
// succeeds. Fetch jobs (users provisioned while WorkOS was unreachable) GET
// the WorkOS profile and fill in the local user.
//
// Failures: network errors, timeouts, 408, 429 and 5xx are retried with
// exponential backoff and full jitter (initial_backoff_ms doubling up to
// max_backoff_ms; a Retry-After header sets the floor). Other 4xx, and jobs
// older than max_age_ms, move to the dead-letter table with the last status
// and body; later jobs of that user go on. While WorkOS is unreachable the
// whole sender backs off (one probe at a time, on the same schedule) instead
// of retrying every job; all of it resumes when a probe succeeds.
//
// State (attempts, next attempt time, last error) is persisted in the job,
// so backoff survives restarts. Delivery is at least once: a job is deleted
// only after WorkOS acknowledged it.
//
// Loop thread only. Owns one uv_timer_t; Close() before destruction. Time and
// randomness are injected (Clock, Random) so tests run with no sleeps.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <set>
#include <string>

#include "common/clock.h"
#include "store/writer.h"
#include "sync/workos_client.h"

namespace usersd::sync {

struct OutboxOptions {
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 300000;
  int64_t max_age_ms = 604800LL * 1000;
  size_t max_in_flight = 8;  // usually workos.max_concurrency
};

// Returns a uniform double in [0, 1).
using Random = std::function<double()>;

// Full-jitter exponential backoff: uniform in [0, min(max, initial * 2^attempt)),
// raised to retry_after_ms when the server asked for more. Pure; for tests.
int64_t BackoffDelayMs(const OutboxOptions& o, uint32_t attempt, double random01,
                       std::optional<int64_t> retry_after_ms);

struct OutboxStats {
  uint64_t depth = 0;
  int64_t oldest_age_ms = -1;  // -1 when empty
  uint64_t in_flight = 0;
  uint64_t delivered = 0;
  uint64_t dead_lettered = 0;
  std::map<int, uint64_t> sends_by_status;  // 0 = transport failure
  int64_t paused_until_ms = 0;              // whole-sender backoff (wall clock), 0 = none
};

class OutboxSender {
 public:
  OutboxSender(uv_loop_t* loop, WorkosClient* workos, store::Store* store, store::Writer* writer,
               const Clock& clock, OutboxOptions options, Random random);
  ~OutboxSender();

  void Start();
  // New jobs were committed (or dead letters re-queued): look again now.
  void Kick();
  void SetOptions(OutboxOptions options);
  void Close();
  OutboxStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace usersd::sync
