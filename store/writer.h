// Writer: the single writer thread and its group commit.
//
// Every mutation of the store is a WriteOp submitted here. The writer thread
// gathers a batch (up to max_batch; waiting up to 2 ms for as many ops as the
// last batch had, and while the queue still grows), running the ops straight
// in the batch's transaction as they arrive, and commits the batch once: one
// commit for many mutations. When an op fails (or the map is full) the batch
// is aborted and replayed from scratch, each op in its own nested
// transaction. Only once the commit is durable does each op's WriteDone run,
// on the loop thread (via the Poster), so a client never hears of a change
// that is not durable.
//
// Durability (store.sync_mode, store::SyncMode). In kTwo a commit is durable
// when it returns (LMDB syncs the data pages, then writes the meta page
// through an O_DSYNC descriptor). In kOne (the default; LMDB opened with
// MDB_NOMETASYNC) commit N syncs its data pages and writes its meta page
// without a sync. The dones of batch N run only after commit N+1's data sync,
// which flushes N's meta page with it, or, when no op is queued as commit N
// returns, after an explicit Store::Sync (an idle writer syncs at once, so a
// lone write waits for the same two syncs as in kTwo). While batch N waits,
// the next batch is gathered without waiting (what is queued, and what comes
// while its ops run), so replies never wait for a gather. Under load that is
// one sync per commit. A client still waits for two syncs (its commit's and
// the next one), so with a fixed number of clients that each wait for their
// reply the rate hardly changes; it is the syncs per write that fall
// (docs/BENCHMARKS.md).
//
// Why the last durable tree survives a power cut while commit N+1 writes
// (LMDB 0.9, mdb.c): the meta page of transaction T goes to slot T & 1
// (mdb_env_write_meta), and opening picks the valid slot with the higher
// txnid (mdb_env_read_header). Commit N+1 overwrites N-1's slot only after
// its data sync, when N's meta page is already on disk. Its data pages come
// from the map's end or from the free-page DB, whose record T lists the pages
// transaction T stopped using, i.e. pages of tree T-1; mdb_page_alloc takes a
// record only while T < oldest, and mdb_find_oldest starts from the writing
// transaction's id - 1 = N (lower if a reader is older). So commit N+1 reuses
// pages of trees up to N-2 at most: tree N-1 (and N) stay intact. After a
// power cut the disk holds at least meta N-1, whose tree is whole (its data
// was synced before meta N-1 was written), or meta N, whose data was synced
// by commit N itself; meta N+1 is only written after N+1's data sync. At
// most the last commit is lost, and it was never acknowledged. LMDB rewrites
// only the end of a meta record (120 bytes at offset 32 of its page, magic
// and version untouched), within one 512-byte sector, so a torn write leaves
// either the old or the new record.
// tests/unit/store_power_loss_test.cc checks all this against crash images.
//
// An op that fails rolls back alone (in the replay, its nested transaction is
// aborted), so a batch behaves exactly like the same ops one by one, in submission order.
// When the map is full the batch is aborted, the map grown and the batch
// replayed, so ops must be re-runnable: compute everything from the
// transaction and overwrite (not append to) any captured result. An op must
// return a MapFull status unchanged (not wrapped in another code), or the
// writer cannot tell that growing the map would help. At the maximum size,
// the ops before the one that did not fit are committed first; an op that
// does not fit alone fails with MapFull; when only the batch's commit
// overflows, its ops are committed one by one.
//
// Threads: Submit() from any thread; ops run on the writer thread; dones run
// on the loop thread. Ownership: the Store and Poster must outlive the Writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/mutex.h"
#include "common/poster.h"
#include "store/store.h"

namespace usersd::store {

using WriteOp = std::function<Status(WriteTxn&)>;
using WriteDone = std::function<void(Status)>;

class Writer {
 public:
  Writer(Store* store, Poster* poster, size_t max_batch = 512);
  ~Writer();  // Stops the thread if Stop() was not called.
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Starts the writer thread (once; later calls do nothing). Ops submitted
  // before Start() wait for it.
  void Start();
  // Queues an op. After Stop() began, `done` gets Unavailable.
  void Submit(WriteOp op, WriteDone done);
  // Finishes everything queued, then joins the thread. Dones of the final
  // batches are posted to the loop; run the loop afterwards to deliver them.
  // Without a Start(), queued ops do not run and their dones get
  // Unavailable. Must not be called from an op (the writer thread).
  void Stop();

  // Test-only: in SyncMode::kOne, runs each batch's dones right after its
  // commit instead of after the sync that makes it durable, i.e. one commit
  // too early. The power-loss test shows that this loses acknowledged writes.
  void set_ack_early_for_testing(bool on) { ack_early_for_testing_.store(on); }

  uint64_t batches() const { return batches_; }
  uint64_t ops() const { return ops_; }
  // Batches aborted and run again with one nested transaction per op
  // because an op failed: each costs the batch's work twice.
  uint64_t replays() const { return replays_; }
  size_t queued() const;
  // The usersd_writer_* series (describes and sets them). Any thread.
  void ExportMetrics(Metrics& m) const;

 private:
  struct Item {
    WriteOp op;
    WriteDone done;
    Status result;
  };
  void Run() EXCLUDES(mu_);
  static Status RunOp(const WriteOp& op, WriteTxn& txn);
  // Applies the whole batch from scratch (nested: one nested transaction
  // per op from the start).
  void ApplyBatch(std::vector<Item>& batch, bool nested = false);
  // Runs the ops batch[idx...] in one transaction, growing the map and
  // replaying as needed; at the maximum map size, splits the group so that
  // each op gets the result it would have had alone. Sets every result.
  void ApplyGroup(std::vector<Item>& batch, std::vector<size_t> idx, bool nested = false);
  // LMDB reuses the pages a transaction freed only after a later transaction
  // has committed, so right after data was deleted to make room the map can
  // still look full. Commits a tiny write so those pages become usable.
  // Returns whether it committed.
  bool NudgeFreelist();
  void Finish(std::vector<Item>& batch);
  // A batch is done (committed, or failed): it waits in pending_ until the
  // store's commits up to its own are durable, then its dones run (in batch
  // order). Syncs when nothing is queued (see "Durability").
  void Settle(std::vector<Item>&& batch) EXCLUDES(mu_);
  // Runs the dones of the pending batches that are durable now.
  void AckDurable();
  // A commit or sync failed: pending batches not known to be durable get
  // the error; all pending dones run.
  void FailPending(const Status& why);

  Store* store_;
  Poster* poster_;
  size_t max_batch_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Item> queue_ GUARDED_BY(mu_);
  // While the writer gathers a batch: how many ops it has taken so far, and
  // the size of the last batch, at which Submit wakes it. It also wakes for
  // every kRunChunk queued ops, to run them early.
  static constexpr size_t kRunChunk = 8;
  bool gathering_ GUARDED_BY(mu_) = false;
  size_t taken_ GUARDED_BY(mu_) = 0;
  size_t wake_at_ GUARDED_BY(mu_) = 1;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool started_ GUARDED_BY(mu_) = false;
  // Writer thread only: batches done but not yet durable, oldest first, each
  // with the store's commits() after it ran (durable once
  // store->durable_commits() reaches that).
  struct Pending {
    std::vector<Item> batch;
    uint64_t commits;
  };
  std::deque<Pending> pending_;
  std::atomic<bool> ack_early_for_testing_{false};
  std::thread thread_;
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> ops_{0};
  std::atomic<uint64_t> replays_{0};
};

}  // namespace usersd::store
