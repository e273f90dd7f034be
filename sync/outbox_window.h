// OutboxWindow: the outbox jobs the sender holds in memory, and which WorkOS
// user is due next (sync/outbox_sender.h says how they are sent).
//
// At most kCapacity jobs (the oldest ids) are held: Load reads the table
// above the highest id seen so far and, once the whole table is read, checks
// by count that nothing below it was missed (a dead letter re-queued under
// its old id) and picks such jobs up. Jobs are queued per WorkOS user in id
// order (also across a re-key, when the window holds jobs of one WorkOS
// user under two local ids); an idle user with jobs sits in `ready` under its
// head job's due time.
//
// Loop thread only. Borrows the store; plain data with public members: the
// sender is its only user.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/store.h"

namespace usersd::sync {

struct OutboxWindow {
  static constexpr size_t kCapacity = 4096;

  // One job of the window. due_ms starts as the persisted
  // next_attempt_at_ms; last_status is the status of the last failed send in
  // this process (0 when unknown), for the dead letter of an expired job.
  struct Entry {
    store::OutboxJob job;
    int64_t due_ms = 0;
    int last_status = 0;
  };
  // The loaded jobs of one WorkOS user, in id order. `busy` while a request
  // for it is in flight; `key` is its entry in `ready` when it has one.
  struct UserQ {
    std::deque<uint64_t> ids;
    bool busy = false;
    std::optional<int64_t> key;
  };

  explicit OutboxWindow(store::Store* s) : store(s) {}

  // The queue of a job: its WorkOS user ("local:<id>" without one).
  static std::string QueueOf(const store::OutboxJob& job);
  void Add(store::OutboxJob job);
  // Reads jobs above loaded_upto into the window, then, with the whole table
  // read, picks up jobs below it that the window missed (by count).
  void Load();
  // Puts `uid` back into `ready` keyed by its head job's due time, or drops
  // the user when it has nothing left. Invalidates references into `users`.
  void Reschedule(const std::string& uid);
  // Drops jobs from memory whose removal is submitted, not yet committed
  // (`removing` keeps Load from reading them again meanwhile).
  void Forget(const std::string& uid, const std::vector<uint64_t>& ids);
  // Drops jobs from memory whose removal has committed.
  void Drop(const std::string& uid, const std::vector<uint64_t>& ids);
  // True when the table holds more than the window and it has room to read
  // again: the sender should Load on its next turn.
  bool wants_refill() const { return more && jobs.size() < kCapacity / 2; }

  store::Store* store;
  std::map<uint64_t, Entry> jobs;                   // by id
  std::unordered_map<std::string, UserQ> users;     // by queue (QueueOf)
  std::set<std::pair<int64_t, std::string>> ready;  // (due, queue) of idle users with jobs
  std::unordered_set<uint64_t> removing;            // deletions submitted, not yet committed
  uint64_t loaded_upto = 0;                         // highest job id read from the store
  bool more = false;                                // the window was full at the last read

 private:
  void PickUpMissed(store::ReadTxn& txn);
  void Erase(const std::string& uid, const std::vector<uint64_t>& ids);
};

}  // namespace usersd::sync
