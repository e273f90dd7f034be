#include "store/writer.h"

#include <memory>

#include "common/log.h"

namespace usersd::store {

Writer::Writer(Store* store, Poster* poster, size_t max_batch)
    : store_(store), poster_(poster), max_batch_(max_batch) {}

Writer::~Writer() { Stop(); }

void Writer::Start() { thread_ = std::thread([this] { Run(); }); }

void Writer::Submit(WriteOp op, WriteDone done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(Item{std::move(op), std::move(done), Status::Ok()});
      cv_.notify_one();
      return;
    }
  }
  poster_->Post([done = std::move(done)] { done(Status::Unavailable("shutting down")); });
}

size_t Writer::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Writer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Writer::Run() {
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ApplyBatch(batch);
    Finish(batch);
  }
}

void Writer::ApplyBatch(std::vector<Item>& batch) {
  // Ops excluded from replays because they alone could not fit at the
  // maximum map size.
  std::vector<bool> excluded(batch.size(), false);
  for (int attempt = 0;; ++attempt) {
    auto txn = store_->BeginWrite();
    if (!txn.ok()) {
      for (auto& it : batch) it.result = txn.status();
      return;
    }
    bool map_full = false;
    size_t full_at = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (excluded[i]) continue;
      auto child = txn->BeginNested();
      if (!child.ok()) {
        batch[i].result = child.status();
        if (child.status().code() == Code::kMapFull) {
          map_full = true;
          full_at = i;
          break;
        }
        continue;
      }
      Status st;
      try {
        st = batch[i].op(*child);
      } catch (const std::exception& e) {
        st = Status::Internal(std::string("write op threw: ") + e.what());
      }
      if (st.ok()) st = child->Commit();
      else child->Abort();
      batch[i].result = st;
      if (st.code() == Code::kMapFull) {
        map_full = true;
        full_at = i;
        break;
      }
    }
    Status commit = map_full ? Status::MapFull("map full") : txn->Commit();
    if (!map_full && commit.code() == Code::kMapFull) {
      map_full = true;
      full_at = batch.size();
    }
    if (!map_full) {
      if (!commit.ok()) {
        LogError("store commit failed", {{"error", commit.ToString()}});
        for (auto& it : batch)
          if (it.result.ok()) it.result = commit;
      }
      batches_++;
      return;
    }
    txn->Abort();
    Status grown = store_->Grow();
    if (!grown.ok()) {
      // At the maximum: the op that did not fit fails; the others are
      // replayed without it. When the commit itself overflowed, every op
      // fails, since none can be told apart.
      if (full_at >= batch.size()) {
        for (auto& it : batch) it.result = grown;
        return;
      }
      excluded[full_at] = true;
      batch[full_at].result = grown;
      LogWarn("store full: write refused", {{"error", grown.message()}});
    }
    for (size_t i = 0; i < batch.size(); ++i)
      if (!excluded[i]) batch[i].result = Status::Ok();
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

}  // namespace usersd::store
