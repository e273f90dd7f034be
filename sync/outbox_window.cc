#include "sync/outbox_window.h"

#include <algorithm>

#include "common/log.h"

namespace usersd::sync {

std::string OutboxWindow::QueueOf(const store::OutboxJob& job) {
  // Per WorkOS user, not per local id: a re-key moves the stored jobs to
  // the new id, but the window still holds some under the old one, and both
  // must go one at a time, in job order.
  return job.workos_id.empty() ? "local:" + job.user_id : job.workos_id;
}

void OutboxWindow::Add(store::OutboxJob job) {
  uint64_t id = job.id;
  std::string uid = QueueOf(job);
  int64_t due = job.next_attempt_at_ms;
  if (!jobs.emplace(id, Entry{std::move(job), due, 0}).second) return;
  UserQ& q = users[uid];
  bool new_head = q.ids.empty() || id < q.ids.front();
  if (q.ids.empty() || q.ids.back() < id) {
    q.ids.push_back(id);
  } else {
    q.ids.insert(std::upper_bound(q.ids.begin(), q.ids.end(), id), id);
  }
  if (new_head) Reschedule(uid);
}

void OutboxWindow::Load() {
  if (jobs.size() >= kCapacity) {
    more = true;
    return;
  }
  auto txn = store->BeginRead();
  if (!txn.ok()) {
    LogWarn("outbox: cannot read the store", {{"error", txn.status().ToString()}});
    return;
  }
  size_t room = kCapacity - jobs.size();
  auto list = txn->ListJobsAfter(loaded_upto, room);
  if (!list.ok()) {
    LogWarn("outbox: cannot read jobs", {{"error", list.status().ToString()}});
    return;
  }
  for (auto& j : *list) {
    loaded_upto = std::max(loaded_upto, j.id);
    Add(std::move(j));
  }
  more = list->size() == room;
  if (!more) {
    // Every job in the table is in the window or being removed, unless one
    // was put back under an id below loaded_upto (a re-queued dead letter).
    uint64_t count = txn->CountEntries(store::Table::kOutbox);
    if (count > jobs.size() + removing.size()) PickUpMissed(*txn);
  }
}

void OutboxWindow::PickUpMissed(store::ReadTxn& txn) {
  uint64_t after = 0;
  for (;;) {
    auto chunk = txn.ListJobsAfter(after, 1024);
    if (!chunk.ok()) return;
    for (auto& j : *chunk) {
      after = j.id;
      if (j.id > loaded_upto) return;  // read by Load already
      if (jobs.count(j.id) || removing.count(j.id)) continue;
      if (jobs.size() >= kCapacity) {
        more = true;
        return;
      }
      LogInfo("outbox: picked up a re-queued job", {{"job", std::to_string(j.id)}});
      Add(std::move(j));
    }
    if (chunk->size() < 1024) return;
  }
}

void OutboxWindow::Reschedule(const std::string& uid) {
  auto it = users.find(uid);
  if (it == users.end()) return;
  UserQ& q = it->second;
  if (q.key) {
    ready.erase({*q.key, uid});
    q.key.reset();
  }
  if (q.busy) return;
  if (q.ids.empty()) {
    users.erase(it);
    return;
  }
  int64_t due = jobs.at(q.ids.front()).due_ms;
  ready.emplace(due, uid);
  q.key = due;
}

void OutboxWindow::Erase(const std::string& uid, const std::vector<uint64_t>& ids) {
  auto it = users.find(uid);
  for (uint64_t id : ids) {
    jobs.erase(id);
    if (it != users.end()) {
      auto& d = it->second.ids;
      auto pos = std::find(d.begin(), d.end(), id);
      if (pos != d.end()) d.erase(pos);
    }
  }
}

void OutboxWindow::Forget(const std::string& uid, const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) removing.insert(id);
  Erase(uid, ids);
}

void OutboxWindow::Drop(const std::string& uid, const std::vector<uint64_t>& ids) {
  Erase(uid, ids);
}

}  // namespace usersd::sync
