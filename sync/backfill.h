// ExternalIdBackfill: SPEC 4b's one-time publication of every user's id.
//
// A store created before ids were shared holds users whose WorkOS
// external_id was never set. At start, this walks the users table in id
// order, a batch at a time, and queues for each such user a job that
// publishes its id (what a user qualifies, and what the job carries, is
// domain::BackfillExternalIds's rule). Each batch commits together with its
// position (meta external_id_backfill, store/meta_keys.h), so a restart
// resumes after the last committed batch and never queues a user twice;
// the position "done" ends the work for good, and a later start reads it
// and does nothing.
//
// Promises (tests/unit/sync_backfill_test.cc):
//   - every qualifying live user gets exactly one job, over any number of
//     batches and restarts;
//   - on_queued runs after each committed batch that queued a job (the
//     daemon wakes the outbox with it);
//   - after Stop() no further batch is submitted; a batch already with the
//     writer commits or not, and the next start resumes from what committed;
//   - once the position is "done", a start submits nothing.
// A failed batch (a storage error) logs, leaves the position where it was
// and stops; the next start tries again.
//
// Loop thread only. Borrows the Store and the Writer, which must outlive
// it; a batch's completion that arrives after destruction is ignored.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "domain/user_mutations.h"
#include "store/store.h"
#include "store/writer.h"

namespace usersd::sync {

struct BackfillOptions {
  std::shared_ptr<const domain::SyncPolicy> sync;  // identity.namespace, sync.metadata.*
  size_t batch = 500;                              // users looked at per write transaction
  std::function<void()> on_queued;                 // after a batch that queued jobs
};

class ExternalIdBackfill {
 public:
  ExternalIdBackfill(store::Store* store, store::Writer* writer, const Clock& clock, BackfillOptions opt);
  ~ExternalIdBackfill();
  ExternalIdBackfill(const ExternalIdBackfill&) = delete;
  ExternalIdBackfill& operator=(const ExternalIdBackfill&) = delete;

  // Reads the position; returns at once when the work is done, else submits
  // the first batch. A read error logs and leaves the work to the next start.
  void Start();
  // No further batch is submitted.
  void Stop();

  // Whether a batch is with the writer.
  bool running() const { return running_; }
  // Whether the position says "done" (read at Start, or reached since).
  bool done() const { return done_; }
  // Jobs queued since Start().
  size_t queued() const { return queued_; }

 private:
  void Step(std::string after);

  store::Store* store_;
  store::Writer* writer_;
  const Clock& clock_;
  BackfillOptions opt_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopped_ = false;
  bool running_ = false;
  bool done_ = false;
  size_t queued_ = 0;
};

}  // namespace usersd::sync
