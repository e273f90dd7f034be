// Store: usersd's durable state in one LMDB environment.
//
// Tables (LMDB named databases, named in code by `Table`):
//   kUsers     users      user id (UUID)         -> UserRecord (versioned)
//   kByWorkos  by_workos  WorkOS user id         -> user id   (every user, live
//                                                   or deleted, so a deleted
//                                                   user's token is refused,
//                                                   not re-provisioned)
//   kByEmail   by_email   EmailKey(email)        -> user id   (live users,
//                                                   non-empty emails; the
//                                                   key: common/text.h)
//   kMeta      meta       name                   -> value     (schema version,
//                                                   creation time, last
//                                                   transactionId, next job
//                                                   id; other parts' state:
//                                                   JWKS, events cursor, ...;
//                                                   every key and its value's
//                                                   form: store/meta_keys.h)
//   kChanges   changes    transactionId (u64 BE) -> Change    (the change feed)
//   kOutbox    outbox     job id (u64 BE)        -> OutboxJob (to deliver to
//                                                   WorkOS)
//   kDead      dead       job id (u64 BE)        -> DeadLetter
//   kJobsByUser jobs_by_user  user id, NUL, job id (u64 BE) -> "" (the
//                                                   outbox by user: a user's
//                                                   pending jobs without a
//                                                   scan of the outbox)
// The Store encodes and decodes the values only through store/record_codec.h,
// which defines their stored form (versioned MessagePack); keys, indexes,
// meta counters and LMDB are the Store's own.
//
// Threads: the Store object is shared. Read transactions may be used on any
// thread (MDB_NOTLS), one thread at a time each, and may end on another thread
// than the one that began them. Write transactions come only from the Writer
// thread (store/writer.h), so LMDB's single-writer rule holds by construction.
// Growing the map needs every transaction of this process to be closed:
// readers (ReadTxn, Backup, Stats) count themselves in for their lifetime and
// Grow() waits until none is left. A pending Grow holds back new readers for
// at most a few milliseconds, so a thread that opens a second ReadTxn while
// holding one cannot deadlock with it; still, keep read transactions short.
//
// A process may open a given store only once at a time (LMDB's rule: closing
// a second handle on the same file drops the first one's locks); Open refuses
// a second one.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/status.h"
#include "store/lmdb_util.h"
#include "store/records.h"

namespace usersd::store {

using Json = nlohmann::json;

// The store's tables (see the file comment).
enum class Table { kUsers, kByWorkos, kByEmail, kMeta, kChanges, kOutbox, kDead, kJobsByUser };
inline constexpr size_t kTableCount = 8;
// The LMDB database name of a table (part of the on-disk format).
const char* TableName(Table table);

// How a commit becomes durable (store.sync_mode; see "Durability" in
// store/writer.h).
//   kOne: LMDB opened with MDB_NOMETASYNC. A commit syncs its data pages and
//         writes its meta page without a sync; the next commit's data sync
//         (or Store::Sync) makes that meta page durable. One sync per commit
//         under load, and a commit is durable only one sync later.
//   kTwo: LMDB's default. A commit syncs its data pages, then writes its
//         meta page through a synchronous descriptor: durable on return.
enum class SyncMode { kOne, kTwo };
const char* SyncModeName(SyncMode mode);

struct StoreOptions {
  std::string path;                  // directory; created if missing
  uint64_t map_size_bytes = 64ull << 20;
  uint64_t max_map_size_bytes = 64ull << 30;
  const Clock* clock = &SystemClock();
  SyncMode sync_mode = SyncMode::kOne;
};

struct StoreStats {
  uint64_t map_size_bytes = 0;
  uint64_t used_bytes = 0;      // pages in use (last_pgno+1) * page size
  uint64_t file_bytes = 0;      // size of data.mdb on disk
  uint64_t users = 0;           // entries in users (live and deleted)
  uint64_t outbox_depth = 0;
  uint64_t dead_letters = 0;
  uint32_t max_readers = 0;
};

// What Store::Backup wrote.
struct BackupInfo {
  uint64_t bytes = 0;  // size of the copy's data.mdb
  uint64_t txid = 0;   // the last transactionId in the copy (0: none yet)
};

class Store;

// Read-only view of the store. Values returned are copies (decoded), so they
// outlive the transaction. Move-only; closes on destruction.
class ReadTxn {
 public:
  ReadTxn(ReadTxn&&) noexcept;
  ReadTxn& operator=(ReadTxn&&) = delete;
  ~ReadTxn();

  Result<std::optional<UserRecord>> GetUser(std::string_view id);
  Result<std::optional<UserRecord>> FindByWorkosId(std::string_view workos_id);
  // Live users only; `email` is compared by its uniqueness key
  // (common/text.h EmailKey: NFC, Unicode case folding).
  Result<std::optional<UserRecord>> FindByEmail(std::string_view email);
  Result<std::optional<std::string>> GetMeta(std::string_view key);
  // The last transactionId. A read transaction sees only durable ones
  // (Store::durable_txid()): in SyncMode::kOne a commit is visible before
  // its meta page is on disk, and SPEC 1 shows a transactionId only once it
  // is durable. A write transaction sees its own.
  uint64_t LastTxid();
  // Users in id order strictly after `after` (empty = from the start), at
  // most `limit`.
  Result<std::vector<UserRecord>> ListUsers(std::string_view after, size_t limit);
  // Outbox jobs in id order (oldest first), at most `limit` (0 = all).
  Result<std::vector<OutboxJob>> ListJobs(size_t limit);
  // Jobs of one user, in id order, through the jobs_by_user index: the
  // cost grows with that user's jobs, not with the outbox.
  Result<std::vector<OutboxJob>> JobsOfUser(std::string_view user_id);
  // Outbox jobs with id > after_id in id order, at most `limit` (0 = all):
  // lets the outbox sender read only what is new since its last look.
  Result<std::vector<OutboxJob>> ListJobsAfter(uint64_t after_id, size_t limit);
  Result<std::optional<OutboxJob>> GetJob(uint64_t id);
  Result<std::vector<DeadLetter>> ListDeadLetters(size_t limit);
  Result<std::optional<DeadLetter>> GetDeadLetter(uint64_t id);
  // Changes with txid >= since, oldest first, at most `limit`; in a read
  // transaction only durable ones (see LastTxid).
  Result<std::vector<Change>> ChangesSince(uint64_t since, size_t limit);
  // Entries in `table` (0 when LMDB cannot say).
  uint64_t CountEntries(Table table);

 protected:
  friend class Store;
  ReadTxn(Store* store, MDB_txn* txn, bool holds_lock);
  Result<std::optional<std::string>> GetRaw(MDB_dbi dbi, std::string_view key);
  // The highest transactionId this transaction may show (see LastTxid).
  uint64_t VisibleTxidLimit() const { return visible_txid_; }
  Store* store_;
  MDB_txn* txn_;
  bool holds_lock_;
  bool reader_;  // a read transaction (BeginRead), not a WriteTxn
  // Taken once, when the transaction begins: Store::durable_txid() moves on
  // while it is open, and LastTxid and ChangesSince must agree (the change
  // stream reads both; two looks could see two limits and skip a change).
  uint64_t visible_txid_;
};

// A write transaction (writer thread only). Mutations maintain the indexes.
// Nested transactions (Begin on a parent) let one operation of a group
// commit roll back alone. Abort on destruction unless committed.
class WriteTxn : public ReadTxn {
 public:
  WriteTxn(WriteTxn&&) noexcept = default;
  ~WriteTxn();

  // Starts a child transaction of this one.
  Result<WriteTxn> BeginNested();
  Status Commit();
  void Abort();

  // The next transactionId (persisted in this transaction).
  Result<uint64_t> NextTxid();
  // Stores `u` and keeps by_workos and by_email in step. `previous` is the
  // stored version (nullopt for a new user) as the caller read it; the
  // indexes are maintained from the version actually stored in this
  // transaction, so a stale `previous` cannot corrupt them (it is used only
  // when the stored bytes do not decode). Fails, changing nothing, with
  // InvalidArgument "email already in use" when another live user holds the
  // email, InvalidArgument when the WorkOS id belongs to another user, when
  // id or WorkOS id is empty, when id, WorkOS id or email is longer than 255
  // bytes, or when settings nest deeper than kMaxStoredDepth levels.
  Status PutUser(const UserRecord& u, const std::optional<UserRecord>& previous);
  // Removes the user stored under `id` and its index entries (those still
  // pointing at it). Ok when there is none. Used only to re-key a user
  // (domain/user_mutations.h); soft deletes keep the record.
  Status RemoveUser(std::string_view id);
  Status PutMeta(std::string_view key, std::string_view value);
  // Removes a meta entry; Ok when there is none.
  Status DeleteMeta(std::string_view key);
  Status AppendChange(const Change& c);
  // Assigns job.id and stores the job. Job fields, like settings, may nest at
  // most kMaxStoredDepth levels (InvalidArgument otherwise).
  Result<uint64_t> EnqueueJob(OutboxJob job);
  // Replaces a stored job (NotFound when there is none); a changed user_id
  // moves its jobs_by_user entry.
  Status UpdateJob(const OutboxJob& job);
  Status DeleteJob(uint64_t id);
  Status MoveToDeadLetter(const OutboxJob& job, int status, std::string_view body, int64_t now_ms);
  Status DeleteDeadLetter(uint64_t id);
  // Deletes change-feed entries with txid < before (retention).
  Result<uint64_t> TrimChanges(uint64_t before, size_t max_entries);

 private:
  friend class Store;
  WriteTxn(Store* store, MDB_txn* txn, bool nested) : ReadTxn(store, txn, false), nested_(nested) {}
  Status Put(MDB_dbi dbi, std::string_view key, std::string_view value);
  Status Del(MDB_dbi dbi, std::string_view key);
  bool done_ = false;
  bool nested_ = false;
};

class Store {
 public:
  // Opens (creating if needed) the environment at options.path. Runs
  // mdb_reader_check to clear reader slots left by a killed process. Fails
  // with InvalidArgument when this process already has the store open, and
  // with Corruption (naming both versions) for another schema version.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();

  Result<ReadTxn> BeginRead();
  // Writer thread only.
  Result<WriteTxn> BeginWrite();

  // Doubles the map (capped at the maximum). Writer thread only, with no
  // write transaction open; waits for readers to finish. Returns MapFull when
  // already at the maximum.
  Status Grow();

  // Consistent hot copy (compacted) into the open directory `dir_fd`, as a
  // new file data.mdb of mode 0600 (O_EXCL | O_NOFOLLOW: InvalidArgument when
  // the directory already holds a data.mdb, or a symlink by that name),
  // synced to disk with its directory entry. `shown` names the directory in
  // messages. Returns the copy's size and the transactionId it is consistent
  // with (read from the copy: LMDB picks the snapshot). Safe while writes
  // continue, but the copy counts as a reader for its whole duration: a
  // Grow, and so the writer when the map is full, waits until it finishes.
  // A failed backup leaves no data.mdb behind. Does not close `dir_fd`.
  Result<BackupInfo> Backup(int dir_fd, const std::string& shown);
  // The same into directory `path`, created (mode 0700) when missing.
  Result<BackupInfo> Backup(const std::string& path);

  StoreStats Stats();
  // The store's series (describes and sets them): usersd_store_*,
  // usersd_users, usersd_outbox_depth, usersd_dead_letters,
  // usersd_last_transaction_id and usersd_outbox_oldest_age_seconds (by this
  // store's clock). Any thread; opens a read transaction, so not const.
  void ExportMetrics(Metrics& m);
  const std::string& path() const { return options_.path; }
  const Clock& clock() const { return *options_.clock; }
  int64_t created_at_ms() const { return created_at_ms_; }
  // Any thread; takes effect at the next Grow().
  void set_max_map_size(uint64_t bytes) { max_map_size_.store(bytes); }

  // Durability (see SyncMode and store/writer.h). A commit "counts" when it
  // wrote something (LMDB skips an empty one: no sync, no new meta page).
  SyncMode sync_mode() const { return options_.sync_mode; }
  // Makes every commit so far durable: one fdatasync of data.mdb, or
  // nothing when they already are. Writer thread (or, with no Writer, the
  // thread that commits).
  Status Sync();
  // Commits that counted, by this process since Open; the first
  // durable_commits() of them are known to be on disk. Any thread.
  uint64_t commits() const { return commits_.load(std::memory_order_acquire); }
  uint64_t durable_commits() const { return durable_commits_.load(std::memory_order_acquire); }
  // Syncs of data.mdb (fdatasync, or a write through LMDB's O_DSYNC
  // descriptor) by this process since Open. Any thread.
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }
  // The last transactionId known to be durable. Any thread.
  uint64_t durable_txid() const { return durable_txid_.load(std::memory_order_acquire); }

 private:
  friend class ReadTxn;
  friend class WriteTxn;
  explicit Store(const StoreOptions& o) : options_(o), max_map_size_(o.max_map_size_bytes) {}
  Status Init();
  // Rebuilds by_email with the current key (common/text.h EmailKey), inside
  // Init's transaction.
  Status RebuildEmailIndex(MDB_txn* txn);
  // Counts a user of the map in and out (see the class comment).
  void EnterMap() EXCLUDES(gate_mu_);
  void LeaveMap() EXCLUDES(gate_mu_);
  // A read transaction ends: it is reset (its snapshot released) and kept for
  // the next BeginRead to renew, then the reader leaves the map.
  void EndRead(MDB_txn* txn) EXCLUDES(gate_mu_);
  // Waits until no reader uses the map, then sets its size (0 adopts the size
  // another process gave it) while new readers are held back. Returns the
  // LMDB code; LMDB refuses (EINVAL) while a write transaction is open.
  int Remap(uint64_t size) EXCLUDES(gate_mu_);
  // Bookkeeping of a top-level commit of the write transaction `id` whose
  // last_txid was `txid` (writer thread).
  void NoteCommit(uint64_t id, uint64_t txid);

  MDB_dbi dbi(Table table) const { return dbis_[static_cast<size_t>(table)]; }

  StoreOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbis_[kTableCount] = {};  // by Table
  int64_t created_at_ms_ = 0;
  std::atomic<uint64_t> max_map_size_;
  // Not a std::shared_mutex: a ReadTxn may end on another thread than the one
  // that began it, and a shared_mutex must be unlocked by the thread that
  // locked it.
  Mutex gate_mu_;
  CondVar gate_cv_;
  uint32_t map_users_ GUARDED_BY(gate_mu_) = 0;  // open readers
  uint32_t remaps_waiting_ GUARDED_BY(gate_mu_) = 0;
  // Reset read transactions kept for reuse (mdb_txn_renew is much cheaper
  // than mdb_txn_begin). A reset transaction pins no pages and does not
  // count as a user of the map.
  std::vector<MDB_txn*> spare_reads_ GUARDED_BY(gate_mu_);
  bool registered_ = false;      // in the process-wide set of open stores
  uint64_t dev_ = 0, ino_ = 0;
  // Durability bookkeeping (see commits()). Written by the writer thread
  // only; atomics so that readers and metrics may look at any time.
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> durable_commits_{0};
  std::atomic<uint64_t> syncs_{0};
  uint64_t committed_txid_ = 0;  // last_txid of the last commit that counted
  std::atomic<uint64_t> durable_txid_{0};
};

// Gives `after` the next transactionId, stores it (PutUser, with `before` the
// stored version or nullopt for a new user) and appends its change-feed entry:
// how every user change is written (operations, WorkOS events and fetches);
// the caller's transaction commits it.
Status WriteUserChange(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
                       int64_t now_ms);

}  // namespace usersd::store
