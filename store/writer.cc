#include "store/writer.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "common/log.h"
#include "store/meta_keys.h"

namespace usersd::store {

Writer::Writer(Store* store, Poster* poster, size_t max_batch)
    : store_(store), poster_(poster), max_batch_(max_batch == 0 ? 1 : max_batch) {}

Writer::~Writer() { Stop(); }

void Writer::Start() {
  MutexLock lock(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Writer::Submit(WriteOp op, WriteDone done) {
  {
    MutexLock lock(mu_);
    if (!stopping_) {
      queue_.push_back(Item{std::move(op), std::move(done), Status::Ok()});
      // Wake the writer for the first op of a batch; while it gathers, when
      // the batch reaches the size the last one had or a chunk is ready to
      // run early. In between, its timed gather steps look at the queue
      // themselves: a wakeup per op would cost a context switch per mutation.
      const bool wake = gathering_ ? taken_ + queue_.size() >= wake_at_ || queue_.size() >= kRunChunk
                                   : queue_.size() == 1;
      if (wake) cv_.NotifyOne();
      return;
    }
  }
  poster_->Post([done = std::move(done)] { done(Status::Unavailable("shutting down")); });
}

size_t Writer::queued() const {
  MutexLock lock(mu_);
  return queue_.size();
}

void Writer::Stop() {
  std::deque<Item> orphans;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    cv_.NotifyAll();
    // Never started: nothing will run what is queued, but every caller is
    // owed an answer.
    if (!started_) orphans.swap(queue_);
  }
  if (thread_.joinable()) thread_.join();
  for (auto& it : orphans)
    poster_->Post([done = std::move(it.done)] { done(Status::Unavailable("shutting down")); });
}

Status Writer::RunOp(const WriteOp& op, WriteTxn& txn) {
  try {
    return op(txn);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("write op threw: ") + e.what());
  } catch (...) {
    // Anything escaping this thread would terminate the process.
    return Status::Internal("write op threw a non-standard exception");
  }
}

void Writer::Run() {
  for (;;) {
    std::vector<Item> batch;
    // The ops run straight in the batch's transaction as they arrive, so
    // their CPU time overlaps the wait for the rest of the batch. Anything
    // unusual (an op fails, the map is full, no transaction) drops to
    // ApplyBatch, which starts the batch over from scratch.
    std::optional<WriteTxn> txn;
    size_t ran = 0;         // batch[0, ran) ran in txn
    bool straight = true;   // and every one of them succeeded
    auto run_new = [&] {
      if (!straight) return;
      if (!txn) {
        auto t = store_->BeginWrite();
        if (!t.ok()) {
          straight = false;
          return;
        }
        txn.emplace(std::move(*t));
      }
      for (; ran < batch.size(); ++ran) {
        batch[ran].result = RunOp(batch[ran].op, *txn);
        if (!batch[ran].result.ok()) {
          straight = false;
          return;
        }
      }
    };
    {
      MutexLock lock(mu_);
      // Nothing is pending here unless the queue holds ops (Settle syncs
      // when it finds the queue empty), so the wait never holds back a
      // reply.
      while (!stopping_ && queue_.empty()) cv_.Wait(mu_);
      if (queue_.empty()) return;  // stopping and drained
      // A batch waits for this commit's data sync (SyncMode::kOne): wait
      // for nothing (every microsecond here delays its replies), take what
      // is queued and what comes while it runs.
      const bool hurry = !pending_.empty();
      // Right after a commit the clients it answered send their next
      // mutations within a fraction of a millisecond. Waiting for as many
      // as the last batch had, and beyond that while the queue keeps growing
      // (each step at most kGatherStep, all together at most kGatherMax, both
      // small next to an fsync), lets one commit carry them all instead of
      // splitting them over two commits. Under light load the last batch had
      // one op, so a lone mutation commits at once.
      constexpr auto kGatherStep = std::chrono::microseconds(200);
      constexpr auto kGatherMax = std::chrono::microseconds(2000);
      const auto deadline = std::chrono::steady_clock::now() + kGatherMax;
      const size_t target = std::min(max_batch_, wake_at_);
      auto take = [&]() REQUIRES(mu_) {
        while (!queue_.empty() && batch.size() < max_batch_) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        taken_ = batch.size();
      };
      gathering_ = true;
      take();
      // Hurried: no waiting, but what arrives while the ops run joins too.
      while (hurry && !stopping_) {
        lock.Unlock();
        run_new();
        lock.Lock();
        if (queue_.empty() || batch.size() >= max_batch_) break;
        take();
      }
      while (!hurry && !stopping_ && batch.size() < target) {
        lock.Unlock();
        run_new();
        lock.Lock();
        take();
        if (stopping_ || batch.size() >= target) break;
        const size_t before = batch.size();
        auto until = std::min(std::chrono::steady_clock::now() + kGatherStep, deadline);
        while (!stopping_ && batch.size() + queue_.size() < target && queue_.size() < kRunChunk) {
          if (!cv_.WaitUntil(mu_, until)) break;
        }
        take();
        if (batch.size() == before) break;  // a whole step without a new op
        if (std::chrono::steady_clock::now() >= deadline) break;
      }
      gathering_ = false;
      taken_ = 0;
      // A hurried batch holds whoever was quicker than the rest: it says
      // nothing about how many clients come together.
      if (!hurry) wake_at_ = std::max<size_t>(1, batch.size());
    }
    run_new();
    if (straight && txn) {
      Status commit = txn->Commit();
      if (commit.code() != Code::kMapFull) {
        if (commit.ok()) {
          batches_++;
        } else {
          LogError("store commit failed", {{"error", commit.ToString()}});
          for (auto& it : batch) it.result = commit;
          FailPending(commit);
        }
        Settle(std::move(batch));
        continue;
      }
    }
    // An op that failed will fail again: replay nested from the start. A
    // full map (or a transaction that did not begin) takes the usual path.
    const bool op_failed = ran < batch.size() && !batch[ran].result.ok() &&
                           batch[ran].result.code() != Code::kMapFull;
    if (txn) txn->Abort();  // no-op after a failed commit
    txn.reset();
    for (auto& it : batch) it.result = Status::Ok();
    if (op_failed) replays_++;
    ApplyBatch(batch, /*nested=*/op_failed);
    Settle(std::move(batch));
  }
}

void Writer::Settle(std::vector<Item>&& batch) {
  pending_.push_back(Pending{std::move(batch), store_->commits()});
  if (ack_early_for_testing_.load(std::memory_order_relaxed)) {
    // Test-only (see set_ack_early_for_testing): as if committed meant durable.
    for (auto& p : pending_) Finish(p.batch);
    pending_.clear();
    return;
  }
  AckDurable();
  if (pending_.empty()) return;
  {
    MutexLock lock(mu_);
    // Another commit follows at once: its data sync will cover this one.
    if (!queue_.empty()) return;
  }
  // Idle: sync now rather than keep the replies waiting for a next commit.
  Status st = store_->Sync();
  if (!st.ok()) {
    LogError("store sync failed", {{"error", st.ToString()}});
    FailPending(st);
    return;
  }
  AckDurable();
}

void Writer::AckDurable() {
  const uint64_t durable = store_->durable_commits();
  while (!pending_.empty() && pending_.front().commits <= durable) {
    Finish(pending_.front().batch);
    pending_.pop_front();
  }
}

void Writer::FailPending(const Status& why) {
  // A batch whose commit is not known to be durable when a commit or sync
  // fails may or may not survive a power cut (after a failed fdatasync the
  // kernel may have dropped the pages it could not write): its writes get
  // the error, as a failed commit's do, though they stay visible.
  const uint64_t durable = store_->durable_commits();
  for (auto& p : pending_) {
    if (p.commits <= durable) continue;
    for (auto& it : p.batch)
      if (it.result.ok()) it.result = Status::IOError("durability unknown: " + why.message());
  }
  for (auto& p : pending_) Finish(p.batch);
  pending_.clear();
}

void Writer::ApplyBatch(std::vector<Item>& batch, bool nested) {
  std::vector<size_t> all(batch.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  ApplyGroup(batch, std::move(all), nested);
}

bool Writer::NudgeFreelist() {
  auto txn = store_->BeginWrite();
  if (!txn.ok()) return false;
  if (!txn->PutMeta(kMetaFreelistNudge, "1").ok()) return false;
  return txn->Commit().ok();
}

void Writer::ApplyGroup(std::vector<Item>& batch, std::vector<size_t> idx, bool nested) {
  bool nudged = false;
  // First try: every op straight in the batch transaction. LMDB's nested
  // transactions are not free (each one allocates and later merges a dirty
  // page list), and almost every op succeeds. When one fails, its partial
  // writes cannot be undone alone: the batch is aborted and replayed with one
  // nested transaction per op, which gives every op the result it would have
  // had alone (ops are re-runnable, as for a full map). `nested` skips the
  // first try when an op is already known to fail.
  while (!idx.empty()) {
    auto txn = store_->BeginWrite();
    if (!txn.ok()) {
      for (size_t i : idx) batch[i].result = txn.status();
      return;
    }
    bool map_full = false;
    size_t full_at = idx.size();  // position in idx of the op that hit MapFull
    bool replay_nested = false;
    for (size_t pos = 0; pos < idx.size(); ++pos) {
      Item& it = batch[idx[pos]];
      if (!nested) {
        Status st = RunOp(it.op, *txn);
        it.result = st;
        if (st.code() == Code::kMapFull) {
          map_full = true;
          full_at = pos;
          break;
        }
        if (!st.ok()) {
          replay_nested = true;
          break;
        }
        continue;
      }
      auto child = txn->BeginNested();
      if (!child.ok()) {
        it.result = child.status();
        if (child.status().code() == Code::kMapFull) {
          map_full = true;
          full_at = pos;
          break;
        }
        continue;
      }
      Status st = RunOp(it.op, *child);
      if (st.ok()) st = child->Commit();
      else child->Abort();
      it.result = st;
      if (st.code() == Code::kMapFull) {
        map_full = true;
        full_at = pos;
        break;
      }
    }
    if (replay_nested) {
      replays_++;
      txn->Abort();
      for (size_t i : idx) batch[i].result = Status::Ok();
      nested = true;
      continue;
    }
    Status commit = map_full ? Status::MapFull("map full") : txn->Commit();
    if (!map_full && commit.code() == Code::kMapFull) map_full = true;  // full_at stays idx.size()
    if (!map_full) {
      if (!commit.ok()) {
        LogError("store commit failed", {{"error", commit.ToString()}});
        for (size_t i : idx)
          if (batch[i].result.ok()) batch[i].result = commit;
        FailPending(commit);
      }
      batches_++;
      return;
    }

    // The map is full: abort, make room, replay.
    txn->Abort();
    for (size_t i : idx) batch[i].result = Status::Ok();
    Status grown = store_->Grow();
    if (grown.ok()) continue;
    if (!nudged) {
      nudged = true;
      if (NudgeFreelist()) continue;
    }

    // At the maximum size. Decide as if the ops had run one by one.
    if (full_at == 0) {
      // The first op does not fit even alone: it fails, the rest go on.
      batch[idx[0]].result = grown;
      LogWarn("store full: write refused", {{"error", grown.message()}});
      idx.erase(idx.begin());
      nudged = false;
      continue;
    }
    if (full_at < idx.size()) {
      // The ops before it fit together: commit them first, then go on from
      // the op that did not fit, which may fit once they are committed.
      ApplyGroup(batch, std::vector<size_t>(idx.begin(), idx.begin() + full_at));
      idx.erase(idx.begin(), idx.begin() + full_at);
      nudged = false;
      continue;
    }
    // Only the commit overflowed, which no single op can be blamed for.
    if (idx.size() == 1) {
      batch[idx[0]].result = grown;
      LogWarn("store full: write refused", {{"error", grown.message()}});
      return;
    }
    LogWarn("store full at commit: applying the batch one op at a time", {{"ops", std::to_string(idx.size())}});
    for (size_t i : idx) ApplyGroup(batch, {i});
    return;
  }
}

void Writer::Finish(std::vector<Item>& batch) {
  ops_ += batch.size();
  // One hand-off per batch, not per op: the loop wakes once per commit.
  auto shared = std::make_shared<std::vector<Item>>(std::move(batch));
  poster_->Post([shared] {
    for (auto& it : *shared) it.done(std::move(it.result));
  });
}

void Writer::ExportMetrics(Metrics& m) const {
  m.Describe("usersd_writer_batches_total", "counter",
             "Store write batches committed (see usersd_store_syncs_total for their syncs).");
  m.Describe("usersd_writer_ops_total", "counter", "Store write operations run.");
  m.Describe("usersd_writer_replays_total", "counter",
             "Write batches aborted and run again op by op because an op failed.");
  m.Describe("usersd_writer_queue_depth", "gauge", "Write operations waiting for the writer thread.");
  m.Set("usersd_writer_batches_total", {}, static_cast<double>(batches()));
  m.Set("usersd_writer_ops_total", {}, static_cast<double>(ops()));
  m.Set("usersd_writer_replays_total", {}, static_cast<double>(replays()));
  m.Set("usersd_writer_queue_depth", {}, static_cast<double>(queued()));
}

}  // namespace usersd::store
