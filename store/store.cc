// Store (store/store.h): opening the environment and its tables (and the
// one-time index rebuilds), the map gate and growth, syncs and the durable
// watermark, backup, statistics and metrics; the table names and key
// encodings. The transactions' reads and writes are in transactions.cc.
#include "store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "common/log.h"
#include "store/lmdb_util.h"
#include "store/meta_keys.h"
#include "store/record_codec.h"

namespace usersd::store {

using internal::EmailIndexKey;
using internal::JobIndexKey;
using internal::Scan;
using internal::Val;
using internal::View;

namespace {

constexpr int kSchemaVersion = 1;
// The by_email index's key (common/text.h EmailKey); version 2 since issue
// 21 (version 1, unmarked, folded ASCII only). A store whose marker differs
// has its index rebuilt at open.
constexpr std::string_view kEmailIndexVersion = "2";
// How long a new reader lets a pending remap go first (see store.h).
constexpr auto kReaderYield = std::chrono::milliseconds(20);

// The process-wide set of open stores, by device and inode of their
// directory (see Store::Open).
struct OpenStoreSet {
  Mutex mu;
  std::set<std::pair<uint64_t, uint64_t>> dirs GUARDED_BY(mu);
};
OpenStoreSet& OpenStores() {
  static OpenStoreSet open;
  return open;
}

// The last transactionId of the store copy in file `file`, read without
// touching the copy (read-only, no lock file): it is private until Backup
// returns.
Result<uint64_t> LastTxidOfCopy(const std::string& file) {
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return FromMdb(rc, "mdb_env_create");
  struct EnvCloser {
    MDB_env* e;
    ~EnvCloser() { mdb_env_close(e); }
  } closer{env};
  mdb_env_set_maxdbs(env, 16);
  rc = mdb_env_open(env, file.c_str(), MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR, 0600);
  if (rc != 0) return FromMdb(rc, "opening the backup");
  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return FromMdb(rc, "reading the backup");
  uint64_t txid = 0;
  MDB_dbi meta;
  rc = mdb_dbi_open(txn, TableName(Table::kMeta), 0, &meta);
  if (rc == 0) {
    MDB_val k = Val(kMetaLastTxid), v;
    rc = mdb_get(txn, meta, &k, &v);
    if (rc == 0) txid = U64FromKey(View(v));
    else if (rc == MDB_NOTFOUND) rc = 0;
  }
  mdb_txn_abort(txn);
  if (rc != 0) return FromMdb(rc, "reading the backup's transactionId");
  return txid;
}

}  // namespace

const char* TableName(Table table) {
  switch (table) {
    case Table::kUsers: return "users";
    case Table::kByWorkos: return "by_workos";
    case Table::kByEmail: return "by_email";
    case Table::kMeta: return "meta";
    case Table::kChanges: return "changes";
    case Table::kOutbox: return "outbox";
    case Table::kDead: return "dead";
    case Table::kJobsByUser: return "jobs_by_user";
  }
  return "?";
}

const char* SyncModeName(SyncMode mode) {
  return mode == SyncMode::kTwo ? "two" : "one";
}

const char* JobOpName(JobOp op) {
  switch (op) {
    case JobOp::kUpdate: return "update";
    case JobOp::kDelete: return "delete";
    case JobOp::kFetch: return "fetch";
  }
  return "update";
}

// ------------------------------------------------------------------ Store

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> s(new Store(options));
  Status st = s->Init();
  if (!st.ok()) return st;
  return s;
}

Status Store::Init() {
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec) return Status::IOError("cannot create store directory " + options_.path + ": " + ec.message());
  if (options_.map_size_bytes > options_.max_map_size_bytes) options_.map_size_bytes = options_.max_map_size_bytes;

  // LMDB must not have one file open twice in a process: closing either
  // handle releases the other's locks. Different spellings of one path (or
  // a symlink) are the same directory, so compare device and inode.
  struct stat dst{};
  if (::stat(options_.path.c_str(), &dst) != 0)
    return Status::IOError("cannot stat store directory " + options_.path + ": " + std::strerror(errno));
  {
    OpenStoreSet& open = OpenStores();
    MutexLock lock(open.mu);
    if (!open.dirs.insert({uint64_t(dst.st_dev), uint64_t(dst.st_ino)}).second)
      return Status::InvalidArgument("store at " + options_.path + " is already open in this process");
    registered_ = true;
    dev_ = uint64_t(dst.st_dev);
    ino_ = uint64_t(dst.st_ino);
  }

  int rc = mdb_env_create(&env_);
  if (rc != 0) {
    env_ = nullptr;
    return FromMdb(rc, "mdb_env_create");
  }
  mdb_env_set_maxdbs(env_, 16);
  mdb_env_set_maxreaders(env_, 256);
  // LMDB raises this to the size of the data already committed when an
  // existing store holds more; Grow() takes it from there.
  rc = mdb_env_set_mapsize(env_, options_.map_size_bytes);
  if (rc != 0) return FromMdb(rc, "mdb_env_set_mapsize");
  // MDB_NOTLS: read transactions belong to their ReadTxn, not to the thread.
  // MDB_NOMETASYNC: see SyncMode and store/writer.h.
  const unsigned flags = MDB_NOTLS | (options_.sync_mode == SyncMode::kOne ? MDB_NOMETASYNC : 0u);
  rc = mdb_env_open(env_, options_.path.c_str(), flags, 0600);
  if (rc != 0) {
    mdb_env_close(env_);
    env_ = nullptr;
    return FromMdb(rc, "opening store at " + options_.path);
  }
  int dead = 0;
  mdb_reader_check(env_, &dead);
  if (dead > 0) LogInfo("cleared stale LMDB reader slots", {{"count", std::to_string(dead)}});

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return FromMdb(rc, "mdb_txn_begin");
  for (size_t i = 0; i < kTableCount; ++i) {
    const char* name = TableName(static_cast<Table>(i));
    rc = mdb_dbi_open(txn, name, MDB_CREATE, &dbis_[i]);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return FromMdb(rc, std::string("mdb_dbi_open ") + name);
    }
  }
  MDB_val k = Val(kMetaSchemaVersion), v;
  rc = mdb_get(txn, dbi(Table::kMeta), &k, &v);
  if (rc == MDB_NOTFOUND) {
    std::string ver = std::to_string(kSchemaVersion);
    std::string created = std::to_string(options_.clock->NowMs());
    MDB_val vv = Val(ver);
    MDB_val ck = Val(kMetaCreatedAt), cv = Val(created);
    rc = mdb_put(txn, dbi(Table::kMeta), &k, &vv, 0);
    if (rc == 0) rc = mdb_put(txn, dbi(Table::kMeta), &ck, &cv, 0);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return FromMdb(rc, "initialising store");
    }
  } else if (rc == 0) {
    if (View(v) != std::to_string(kSchemaVersion)) {
      std::string found(View(v));
      mdb_txn_abort(txn);
      return Status::Corruption("store at " + options_.path + " has schema version " + found +
                                ", which this usersd does not support (expected " + std::to_string(kSchemaVersion) +
                                ")");
    }
  } else {
    mdb_txn_abort(txn);
    return FromMdb(rc, "reading schema version");
  }
  // Stores from before the jobs_by_user index get it built once, here.
  MDB_val ik = Val(kMetaJobsByUserIndex), iv;
  rc = mdb_get(txn, dbi(Table::kMeta), &ik, &iv);
  if (rc == MDB_NOTFOUND) {
    size_t indexed = 0;
    std::vector<std::pair<std::string, uint64_t>> entries;
    Status st = Scan(txn, dbi(Table::kOutbox), {}, [&](std::string_view k, std::string_view v) {
      if (auto j = DecodeJob(v); j.ok()) entries.emplace_back(j->user_id, U64FromKey(k));
      return true;
    });
    for (const auto& [user, id] : entries) {
      if (!st.ok()) break;
      std::string key = JobIndexKey(user, id);
      MDB_val k = Val(key), v = Val(std::string_view());
      rc = mdb_put(txn, dbi(Table::kJobsByUser), &k, &v, 0);
      if (rc != 0) st = FromMdb(rc, "indexing outbox jobs by user");
      ++indexed;
    }
    MDB_val one = Val(std::string_view("1"));
    if (st.ok() && (rc = mdb_put(txn, dbi(Table::kMeta), &ik, &one, 0)) != 0) st = FromMdb(rc, "indexing outbox jobs");
    if (!st.ok()) {
      mdb_txn_abort(txn);
      return st;
    }
    if (indexed > 0) LogInfo("indexed outbox jobs by user", {{"jobs", std::to_string(indexed)}});
  } else if (rc != 0) {
    mdb_txn_abort(txn);
    return FromMdb(rc, "reading the job index marker");
  }
  // Stores whose email index was built with another key (EmailKey changed)
  // get it rebuilt once, here, in the same transaction as its marker.
  MDB_val ek = Val(kMetaEmailIndex), ev;
  rc = mdb_get(txn, dbi(Table::kMeta), &ek, &ev);
  if (rc == MDB_NOTFOUND || (rc == 0 && View(ev) != kEmailIndexVersion)) {
    Status st = RebuildEmailIndex(txn);
    MDB_val version = Val(kEmailIndexVersion);
    if (st.ok() && (rc = mdb_put(txn, dbi(Table::kMeta), &ek, &version, 0)) != 0)
      st = FromMdb(rc, "marking the email index");
    if (!st.ok()) {
      mdb_txn_abort(txn);
      return st;
    }
  } else if (rc != 0) {
    mdb_txn_abort(txn);
    return FromMdb(rc, "reading the email index marker");
  }
  MDB_val ck = Val(kMetaCreatedAt), cv;
  if (mdb_get(txn, dbi(Table::kMeta), &ck, &cv) == 0)
    created_at_ms_ = std::strtoll(std::string(View(cv)).c_str(), nullptr, 10);
  MDB_val tk = Val(kMetaLastTxid), tv;
  uint64_t last_txid = 0;
  if (mdb_get(txn, dbi(Table::kMeta), &tk, &tv) == 0) last_txid = U64FromKey(View(tv));
  rc = mdb_txn_commit(txn);
  if (rc != 0) return FromMdb(rc, "committing store initialisation");
  // What this open read may be a commit whose meta page is still only in
  // the page cache: a process killed in SyncMode::kOne leaves it there. One
  // sync makes it durable before anything shows its transactionId.
  rc = mdb_env_sync(env_, 1);
  if (rc != 0) return FromMdb(rc, "syncing the store at open");
  syncs_.fetch_add(1, std::memory_order_relaxed);
  committed_txid_ = last_txid;
  durable_txid_.store(last_txid, std::memory_order_release);
  return Status::Ok();
}

Status Store::RebuildEmailIndex(MDB_txn* txn) {
  int rc = mdb_drop(txn, dbi(Table::kByEmail), 0);
  if (rc != 0) return FromMdb(rc, "clearing the email index");
  std::vector<std::pair<std::string, std::string>> entries;  // key, user id
  Status st = Scan(txn, dbi(Table::kUsers), {}, [&](std::string_view k, std::string_view v) {
    if (auto u = DecodeUser(v); u.ok() && u->live() && !u->email.empty())
      entries.emplace_back(EmailIndexKey(u->email), std::string(k));
    return true;
  });
  if (!st.ok()) return st;
  size_t clashes = 0;
  for (const auto& [key, id] : entries) {
    MDB_val k = Val(key), v = Val(id);
    rc = mdb_put(txn, dbi(Table::kByEmail), &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
      // Two live users whose addresses differ only in a way the new key
      // folds away: the first keeps the index entry; the other keeps its
      // address, and can change it, but no third user can take it.
      ++clashes;
      LogWarn("two users' emails are the same under the Unicode-aware uniqueness key; the first keeps the index",
              {{"user_id", id}, {"holder", std::string(View(v))}});
      continue;
    }
    if (rc != 0) return FromMdb(rc, "rebuilding the email index");
  }
  if (!entries.empty())
    LogInfo("rebuilt the email index",
            {{"entries", std::to_string(entries.size() - clashes)}, {"clashes", std::to_string(clashes)}});
  return Status::Ok();
}

Store::~Store() {
  for (MDB_txn* t : spare_reads_) mdb_txn_abort(t);
  spare_reads_.clear();
  // mdb_env_close does not sync; a commit made without the Writer (which
  // syncs before it stops) may still wait for its meta page's sync.
  if (env_ && !Sync().ok()) LogError("store: the last commit could not be synced at close", {});
  if (env_) mdb_env_close(env_);
  if (registered_) {
    OpenStoreSet& open = OpenStores();
    MutexLock lock(open.mu);
    open.dirs.erase({dev_, ino_});
  }
}

void Store::EnterMap() {
  MutexLock lock(gate_mu_);
  // A pending remap goes first so that a stream of readers cannot starve it,
  // but only for a moment: the reader may be a thread that already holds a
  // ReadTxn, which the remap is waiting for.
  if (remaps_waiting_ > 0) {
    const auto deadline = std::chrono::steady_clock::now() + kReaderYield;
    while (remaps_waiting_ > 0) {
      if (!gate_cv_.WaitUntil(gate_mu_, deadline)) break;
    }
  }
  ++map_users_;
}

void Store::LeaveMap() {
  MutexLock lock(gate_mu_);
  if (--map_users_ == 0) gate_cv_.NotifyAll();
}

namespace {
constexpr size_t kMaxSpareReads = 4;
}  // namespace

void Store::EndRead(MDB_txn* txn) {
  // Reset before leaving the gate: a waiting Remap must find no snapshot.
  mdb_txn_reset(txn);
  {
    MutexLock lock(gate_mu_);
    if (spare_reads_.size() < kMaxSpareReads) {
      spare_reads_.push_back(txn);
      txn = nullptr;
    }
    if (--map_users_ == 0) gate_cv_.NotifyAll();
  }
  if (txn) mdb_txn_abort(txn);
}

int Store::Remap(uint64_t size) {
  MutexLock lock(gate_mu_);
  ++remaps_waiting_;
  while (map_users_ != 0) gate_cv_.Wait(gate_mu_);
  // gate_mu_ stays held, so no reader can start while the map moves.
  int rc = mdb_env_set_mapsize(env_, size);
  --remaps_waiting_;
  gate_cv_.NotifyAll();
  return rc;
}

Result<ReadTxn> Store::BeginRead() {
  EnterMap();
  MDB_txn* txn = nullptr;
  {
    MutexLock lock(gate_mu_);
    if (!spare_reads_.empty()) {
      txn = spare_reads_.back();
      spare_reads_.pop_back();
    }
  }
  if (txn && mdb_txn_renew(txn) != 0) {
    // E.g. MDB_MAP_RESIZED: drop it and take the general path below.
    mdb_txn_abort(txn);
    txn = nullptr;
  }
  if (txn) return ReadTxn(this, txn, true);
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc == MDB_MAP_RESIZED) {
    // Another process grew the map; adopt its size.
    LeaveMap();
    Remap(0);
    EnterMap();
    rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  }
  if (rc != 0) {
    LeaveMap();
    return FromMdb(rc, "mdb_txn_begin(read)");
  }
  return ReadTxn(this, txn, true);
}

Result<WriteTxn> Store::BeginWrite() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc == MDB_MAP_RESIZED) {
    Remap(0);
    rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  }
  if (rc != 0) return FromMdb(rc, "mdb_txn_begin(write)");
  return WriteTxn(this, txn, /*nested=*/false);
}

void Store::NoteCommit(uint64_t id, uint64_t txid) {
  // LMDB skips a commit that wrote nothing: no sync, no meta page, and the
  // environment's last transaction stays the one before. The meta pages
  // live in the map, which only this (the writer) thread ever remaps.
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  if (info.me_last_txnid != id) return;
  const uint64_t n = commits_.load(std::memory_order_relaxed) + 1;
  if (options_.sync_mode == SyncMode::kTwo) {
    // Data pages synced, then the meta page written through the O_DSYNC
    // descriptor: this commit is on disk.
    syncs_.fetch_add(2, std::memory_order_relaxed);
    commits_.store(n, std::memory_order_release);
    durable_txid_.store(txid, std::memory_order_release);
    durable_commits_.store(n, std::memory_order_release);
  } else {
    // This commit's data sync also flushed the previous commit's meta page
    // (written, unsynced, before it): that one is on disk, this one is not.
    syncs_.fetch_add(1, std::memory_order_relaxed);
    commits_.store(n, std::memory_order_release);
    durable_txid_.store(committed_txid_, std::memory_order_release);
    durable_commits_.store(n - 1, std::memory_order_release);
  }
  committed_txid_ = txid;
}

Status Store::Sync() {
  const uint64_t n = commits_.load(std::memory_order_relaxed);
  if (durable_commits_.load(std::memory_order_relaxed) == n) return Status::Ok();
  int rc = mdb_env_sync(env_, 1);
  if (rc != 0) return FromMdb(rc, "mdb_env_sync");
  syncs_.fetch_add(1, std::memory_order_relaxed);
  durable_txid_.store(committed_txid_, std::memory_order_release);
  durable_commits_.store(n, std::memory_order_release);
  return Status::Ok();
}

Status Store::Grow() {
  MDB_envinfo info{};
  EnterMap();  // mdb_env_info reads the meta pages inside the map
  mdb_env_info(env_, &info);
  LeaveMap();
  uint64_t current = info.me_mapsize;
  uint64_t max = max_map_size_.load();
  if (current >= max) {
    return Status::MapFull("store is at store.max_map_size_mib (" + std::to_string(current >> 20) + " MiB)");
  }
  uint64_t next = std::min<uint64_t>(current * 2, max);
  int rc = Remap(next);
  if (rc != 0) return FromMdb(rc, "mdb_env_set_mapsize");
  LogInfo("grew store map", {{"from_mib", std::to_string(current >> 20)}, {"to_mib", std::to_string(next >> 20)}});
  return Status::Ok();
}

Result<BackupInfo> Store::Backup(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p(path);
  // Created 0700 whatever the umask says: the copy holds every user.
  for (std::filesystem::path at; const auto& part : p) {
    at /= part;
    if (::mkdir(at.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::IOError("cannot create backup directory " + at.string() + ": " + std::strerror(errno));
  }
  int dir = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Status::IOError("cannot open backup directory " + path + ": " + std::strerror(errno));
  auto info = Backup(dir, path);
  ::close(dir);
  return info;
}

Result<BackupInfo> Store::Backup(int dir_fd, const std::string& shown) {
  // Our own file, 0600 from the first byte: mdb_env_copy2 would create it
  // 0666 less the umask (0644 outside systemd), and follow a symlink.
  int fd = ::openat(dir_fd, "data.mdb", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST || errno == ELOOP)
      return Status::InvalidArgument("backup directory already holds a data.mdb: " + shown);
    return Status::IOError("cannot create " + shown + "/data.mdb: " + std::strerror(errno));
  }
  auto fail = [&](Status st) -> Result<BackupInfo> {
    ::close(fd);
    ::unlinkat(dir_fd, "data.mdb", 0);
    return st;
  };
  if (::fchmod(fd, 0600) != 0) return fail(Status::IOError("chmod " + shown + "/data.mdb: " + std::strerror(errno)));
  int rc;
  {
    // mdb_env_copyfd2 runs its own read transaction: it is a reader of the map.
    EnterMap();
    rc = mdb_env_copyfd2(env_, fd, MDB_CP_COMPACT);
    LeaveMap();
  }
  if (rc != 0) return fail(FromMdb(rc, "backing up the store to " + shown));
  // The copy's snapshot may be a commit whose meta page is not on disk yet
  // (SyncMode::kOne): make it durable here too, or a power cut could hand
  // the copy's transactionId to another change. fdatasync may run beside
  // the writer's commits; the durable watermark catches up at its next one.
  if (options_.sync_mode == SyncMode::kOne) {
    rc = mdb_env_sync(env_, 1);
    if (rc != 0) return fail(FromMdb(rc, "syncing the store after the backup"));
    syncs_.fetch_add(1, std::memory_order_relaxed);
  }
  // LMDB writes the copy without syncing it; a backup must survive a crash.
  if (::fsync(fd) != 0) return fail(Status::IOError("cannot sync backup " + shown + ": " + std::strerror(errno)));
  // And its directory entry, or a crash could lose the file.
  if (::fsync(dir_fd) != 0)
    return fail(Status::IOError("cannot sync backup directory " + shown + ": " + std::strerror(errno)));
  BackupInfo info;
  struct stat fst{};
  if (::fstat(fd, &fst) == 0) info.bytes = uint64_t(fst.st_size);
  // mdb_env_copy2 picks its snapshot itself, so the copy's transactionId is
  // read from the copy, through this descriptor (no path to race with).
  auto txid = LastTxidOfCopy("/proc/self/fd/" + std::to_string(fd));
  if (!txid.ok()) return fail(txid.status());
  info.txid = *txid;
  ::close(fd);
  return info;
}

StoreStats Store::Stats() {
  StoreStats s;
  {
    // The environment's info reads the map, which Grow may be moving.
    EnterMap();
    MDB_envinfo info{};
    MDB_stat st{};
    mdb_env_info(env_, &info);
    mdb_env_stat(env_, &st);
    LeaveMap();
    s.map_size_bytes = info.me_mapsize;
    s.used_bytes = (info.me_last_pgno + 1) * uint64_t(st.ms_psize);
  }
  unsigned int maxr = 0;
  mdb_env_get_maxreaders(env_, &maxr);
  s.max_readers = maxr;
  struct stat fst{};
  if (::stat((options_.path + "/data.mdb").c_str(), &fst) == 0) s.file_bytes = uint64_t(fst.st_size);
  auto txn = BeginRead();
  if (txn.ok()) {
    s.users = txn->CountEntries(Table::kUsers);
    s.outbox_depth = txn->CountEntries(Table::kOutbox);
    s.dead_letters = txn->CountEntries(Table::kDead);
  }
  return s;
}

void Store::ExportMetrics(Metrics& m) {
  m.Describe("usersd_store_map_bytes", "gauge", "Size of the LMDB map.");
  m.Describe("usersd_store_used_bytes", "gauge", "Bytes of the LMDB map in use.");
  m.Describe("usersd_users", "gauge", "Users in the store (live and deleted).");
  m.Describe("usersd_outbox_depth", "gauge", "Jobs waiting for WorkOS.");
  m.Describe("usersd_dead_letters", "gauge", "Jobs WorkOS refused for good.");
  m.Describe("usersd_last_transaction_id", "gauge", "The store's last transactionId.");
  m.Describe("usersd_store_file_bytes", "gauge", "Size of data.mdb on disk.");
  m.Describe("usersd_store_max_map_bytes", "gauge", "Largest map size the store may grow to (store.max_map_size_mib).");
  m.Describe("usersd_outbox_oldest_age_seconds", "gauge", "Age of the oldest job waiting for WorkOS (0 when empty).");
  m.Describe("usersd_store_commits_total", "counter", "LMDB write transactions committed that wrote pages.");
  m.Describe("usersd_store_syncs_total", "counter",
             "Syncs of data.mdb (fdatasync, or a meta page written through LMDB's O_DSYNC descriptor); "
             "divided by usersd_store_commits_total: syncs per commit.");
  m.Describe("usersd_store_sync_mode", "gauge", "store.sync_mode in use: 1 (one sync per commit) or 2.");
  m.Set("usersd_store_commits_total", {}, static_cast<double>(commits()));
  m.Set("usersd_store_syncs_total", {}, static_cast<double>(syncs()));
  m.Set("usersd_store_sync_mode", {}, options_.sync_mode == SyncMode::kTwo ? 2.0 : 1.0);
  StoreStats s = Stats();
  m.Set("usersd_store_map_bytes", {}, static_cast<double>(s.map_size_bytes));
  m.Set("usersd_store_used_bytes", {}, static_cast<double>(s.used_bytes));
  m.Set("usersd_users", {}, static_cast<double>(s.users));
  m.Set("usersd_outbox_depth", {}, static_cast<double>(s.outbox_depth));
  m.Set("usersd_dead_letters", {}, static_cast<double>(s.dead_letters));
  {
    auto txn = BeginRead();
    if (txn.ok()) {
      m.Set("usersd_last_transaction_id", {}, static_cast<double>(txn->LastTxid()));
      auto oldest = txn->ListJobs(1);
      double age = 0;
      if (oldest.ok() && !oldest->empty())
        age = std::max<int64_t>(0, clock().NowMs() - oldest->front().created_at_ms) / 1000.0;
      m.Set("usersd_outbox_oldest_age_seconds", {}, age);
    }
  }
  struct stat st{};
  if (::stat((options_.path + "/data.mdb").c_str(), &st) == 0)
    m.Set("usersd_store_file_bytes", {}, static_cast<double>(st.st_size));
  m.Set("usersd_store_max_map_bytes", {}, static_cast<double>(max_map_size_.load()));
}

Status WriteUserChange(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
                       int64_t now_ms) {
  auto txid = t.NextTxid();
  if (!txid.ok()) return txid.status();
  after.txid = *txid;
  USERSD_RETURN_IF_ERROR(t.PutUser(after, before));
  Change c;
  c.txid = *txid;
  c.op = op;
  c.user = after;
  c.at_ms = now_ms;
  return t.AppendChange(c);
}

}  // namespace usersd::store
