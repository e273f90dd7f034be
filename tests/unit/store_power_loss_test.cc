// Power-loss test of the store (issue 24): what a power cut leaves on disk,
// not what `kill -9` leaves (the page cache survives a kill).
//
// This executable interposes the file I/O that LMDB does on data.mdb: it
// defines open, close, pwrite, write, writev, pwritev, fdatasync, fsync,
// msync and ftruncate, which the dynamic linker binds liblmdb's calls to
// before libc's (the same mechanism as an LD_PRELOAD shim; it also works
// under ASan, whose interceptors come next through RTLD_NEXT). While
// recording, every write to the store's data.mdb (offset and bytes) and
// every sync of it is logged in order, together with each acknowledgement
// the Writer delivers on the loop thread.
//
// From the log, crash images are built. A crash point is a position in the
// log; the image holds everything made durable before it (every write
// before the last completed fdatasync/fsync, every write through an O_DSYNC
// descriptor) plus, per 512-byte sector touched since, any one of the
// versions written since, or none: a random subset of the later writes,
// reordered, torn at sector boundaries. Sector writes are taken as atomic,
// as LMDB does for its meta records. Each image must:
//   - open with LMDB (Store::Open);
//   - hold every write acknowledged before the crash point (the user's
//     record at or past that transactionId, and the change-feed entry);
//   - hand out, after reopening and writing, a transactionId above every
//     one acknowledged or shown to readers before the crash point;
//   - read back whole (every user and change-feed entry decodes).
// Run in both store.sync_mode values, and once with the Writer's test-only
// switch that acknowledges one commit too early, which the test must catch.
//
// Environment: USERSD_POWER_LOSS_POINTS (crash points per mode, default
// 1000), USERSD_POWER_LOSS_OPS (acknowledged writes per workload, 300),
// USERSD_POWER_LOSS_SEED (24). docs/RELIABILITY.md has the long run.
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/poster.h"
#include "store/store.h"
#include "store/writer.h"

// ------------------------------------------------------------ the I/O log

namespace iolog {

struct Event {
  enum Kind : uint8_t { kWrite, kSync, kAck };
  Kind kind = kWrite;
  bool dsync = false;  // kWrite through an O_DSYNC descriptor: durable on return
  uint64_t off = 0;    // kWrite
  std::string data;    // kWrite
  // kAck: one acknowledged write, and the highest transactionId readers
  // could see at that moment (Store::durable_txid).
  std::string user;
  std::string value;
  uint64_t txid = 0;
  uint64_t visible_txid = 0;
};

struct Log {
  std::mutex mu;
  bool recording = false;
  std::string target;       // the data.mdb path to record
  std::map<int, bool> fds;  // open descriptors of target -> O_DSYNC
  std::vector<Event> events;
  int unexpected = 0;  // msync or ftruncate of the target: the model would not hold
};

Log& L() {
  static Log* log = new Log;  // never destroyed: interposed calls may come late
  return *log;
}

template <class F>
F Real(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  if (!p) abort();
  return reinterpret_cast<F>(p);
}

// Whether fd is a recorded descriptor (and through O_DSYNC). Caller holds mu.
std::optional<bool> Tracked(int fd) {
  Log& l = L();
  if (!l.recording) return std::nullopt;
  auto it = l.fds.find(fd);
  if (it == l.fds.end()) return std::nullopt;
  return it->second;
}

void RecordWrite(int fd, uint64_t off, const void* buf, size_t n) {
  Log& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  auto t = Tracked(fd);
  if (!t) return;
  Event e;
  e.kind = Event::kWrite;
  e.dsync = *t;
  e.off = off;
  e.data.assign(static_cast<const char*>(buf), n);
  l.events.push_back(std::move(e));
}

void Start(const std::string& target) {
  Log& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  l.recording = true;
  l.target = target;
  l.fds.clear();
  l.events.clear();
  l.unexpected = 0;
}

std::vector<Event> Stop(int* unexpected) {
  Log& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  l.recording = false;
  l.fds.clear();
  *unexpected = l.unexpected;
  return std::move(l.events);
}

size_t Size() {
  std::lock_guard<std::mutex> lock(L().mu);
  return L().events.size();
}

void Ack(std::string user, std::string value, uint64_t txid, uint64_t visible) {
  Log& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  if (!l.recording) return;
  Event e;
  e.kind = Event::kAck;
  e.user = std::move(user);
  e.value = std::move(value);
  e.txid = txid;
  e.visible_txid = visible;
  l.events.push_back(std::move(e));
}

}  // namespace iolog

// The interposed calls. Each forwards to the next definition (libc's, or a
// sanitizer's interceptor) and records what concerns the target file.
extern "C" {

int open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    va_end(ap);
  }
  static auto real = iolog::Real<int (*)(const char*, int, ...)>("open");
  int fd = real(path, flags, mode);
  if (fd >= 0) {
    iolog::Log& l = iolog::L();
    std::lock_guard<std::mutex> lock(l.mu);
    if (l.recording && l.target == path) l.fds[fd] = (flags & O_DSYNC) == O_DSYNC;
  }
  return fd;
}

int close(int fd) {
  static auto real = iolog::Real<int (*)(int)>("close");
  {
    iolog::Log& l = iolog::L();
    std::lock_guard<std::mutex> lock(l.mu);
    l.fds.erase(fd);
  }
  return real(fd);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  static auto real = iolog::Real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  ssize_t r = real(fd, buf, n, off);
  if (r > 0) iolog::RecordWrite(fd, uint64_t(off), buf, size_t(r));
  return r;
}

ssize_t write(int fd, const void* buf, size_t n) {
  static auto real = iolog::Real<ssize_t (*)(int, const void*, size_t)>("write");
  off_t off = ::lseek(fd, 0, SEEK_CUR);
  ssize_t r = real(fd, buf, n);
  if (r > 0 && off >= 0) iolog::RecordWrite(fd, uint64_t(off), buf, size_t(r));
  return r;
}

static void RecordVector(int fd, uint64_t off, const struct iovec* iov, int cnt, ssize_t r) {
  std::string all;
  for (int i = 0; i < cnt && all.size() < size_t(r); ++i)
    all.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  all.resize(size_t(r));
  iolog::RecordWrite(fd, off, all.data(), all.size());
}

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  static auto real = iolog::Real<ssize_t (*)(int, const struct iovec*, int)>("writev");
  off_t off = ::lseek(fd, 0, SEEK_CUR);
  ssize_t r = real(fd, iov, cnt);
  if (r > 0 && off >= 0) RecordVector(fd, uint64_t(off), iov, cnt, r);
  return r;
}

ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) {
  static auto real = iolog::Real<ssize_t (*)(int, const struct iovec*, int, off_t)>("pwritev");
  ssize_t r = real(fd, iov, cnt, off);
  if (r > 0) RecordVector(fd, uint64_t(off), iov, cnt, r);
  return r;
}

static int RecordSync(int fd, int r) {
  if (r != 0) return r;
  iolog::Log& l = iolog::L();
  bool tracked;
  {
    std::lock_guard<std::mutex> lock(l.mu);
    tracked = iolog::Tracked(fd).has_value();
    if (tracked) {
      iolog::Event e;
      e.kind = iolog::Event::kSync;
      l.events.push_back(std::move(e));
    }
  }
  // A sync takes as long as a disk's would (the store may be on tmpfs, where
  // it costs nothing), so that writes arrive while a commit syncs, as they
  // do under load, and commits follow each other.
  if (tracked) std::this_thread::sleep_for(std::chrono::microseconds(400));
  return r;
}

int fdatasync(int fd) {
  static auto real = iolog::Real<int (*)(int)>("fdatasync");
  return RecordSync(fd, real(fd));
}

int fsync(int fd) {
  static auto real = iolog::Real<int (*)(int)>("fsync");
  return RecordSync(fd, real(fd));
}

// The store never writes through its map (no MDB_WRITEMAP); if it ever did,
// the writes would bypass this log, so the test fails.
int msync(void* addr, size_t len, int flags) {
  static auto real = iolog::Real<int (*)(void*, size_t, int)>("msync");
  {
    iolog::Log& l = iolog::L();
    std::lock_guard<std::mutex> lock(l.mu);
    if (l.recording) l.unexpected++;
  }
  return real(addr, len, flags);
}

int ftruncate(int fd, off_t len) noexcept {
  static auto real = iolog::Real<int (*)(int, off_t)>("ftruncate");
  {
    iolog::Log& l = iolog::L();
    std::lock_guard<std::mutex> lock(l.mu);
    if (iolog::Tracked(fd)) l.unexpected++;
  }
  return real(fd, len);
}

}  // extern "C"

namespace usersd::store {
namespace {

namespace fs = std::filesystem;

uint64_t EnvU64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : def;
}

// A directory removed at the end; in /dev/shm when there is one, since the
// test syncs thousands of times and tmpfs makes that free (what is measured
// is the order of writes and syncs, not the disk).
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    fs::path base = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm")
                                                                                        : fs::temp_directory_path();
    std::string tmpl = (base / "usersd-powerloss-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ------------------------------------------------------------ the workload

struct Recording {
  std::vector<iolog::Event> events;
  size_t base = 0;             // crash points start here: the store was open and synced
  uint64_t store_syncs = 0;    // Store::syncs() during the recorded writes
  uint64_t store_commits = 0;  // Store::commits() during the recorded writes
  int unexpected = 0;
  size_t acks = 0;
};

UserRecord NewUser(int n) {
  UserRecord u;
  u.id = "user-" + std::to_string(n);
  u.workos_id = "user_wos_" + std::to_string(n);
  u.email = "u" + std::to_string(n) + "@example.com";
  u.first_name = "First";
  u.last_name = "Last";
  return u;
}

// Writes through a real Writer until `ops` writes are acknowledged: users
// created, then their first names set to values of random length (so pages
// split, merge and are freed and reused), with 1 to 8 writes in flight
// (one at a time makes the writer sync when idle; several make commits
// follow each other, each covering the one before).
Recording RunWorkload(SyncMode mode, bool ack_early, uint64_t seed, size_t ops) {
  ScratchDir dir;
  std::mt19937_64 rng(seed);
  Recording rec;
  iolog::Start(dir.path() + "/data.mdb");
  {
    StoreOptions o;
    o.path = dir.path();
    o.map_size_bytes = 256 << 10;  // grows during the run
    o.max_map_size_bytes = 64 << 20;
    o.sync_mode = mode;
    auto opened = Store::Open(o);
    INFO(opened.status().ToString());
    REQUIRE(opened.ok());
    std::unique_ptr<Store> store = std::move(*opened);
    rec.base = iolog::Size();
    const uint64_t syncs0 = store->syncs(), commits0 = store->commits();

    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    {
      Poster poster(&loop);
      Writer writer(store.get(), &poster);
      writer.set_ack_early_for_testing(ack_early);
      writer.Start();

      const int users = 40;
      size_t submitted = 0, acked = 0, inflight = 0, failed = 0;
      size_t want_inflight = 1;
      auto submit = [&] {
        const int n = int(rng() % users);
        std::string value(1 + rng() % 700, char('a' + rng() % 26));
        auto txid = std::make_shared<uint64_t>(0);
        const int64_t now = 1700000000000 + int64_t(submitted);
        Store* s = store.get();
        writer.Submit(
            [n, value, txid, now](WriteTxn& t) -> Status {
              auto cur = t.GetUser(NewUser(n).id);
              if (!cur.ok()) return cur.status();
              UserRecord after = cur->has_value() ? **cur : NewUser(n);
              after.first_name = value;
              USERSD_RETURN_IF_ERROR(WriteUserChange(t, after, *cur, ChangeOp::kUpsert, now));
              *txid = after.txid;
              return Status::Ok();
            },
            [&, n, value, txid, s](Status st) {
              inflight--;
              if (!st.ok()) {
                failed++;
                return;
              }
              acked++;
              iolog::Ack(NewUser(n).id, value, *txid, s->durable_txid());
            });
        submitted++;
        inflight++;
      };
      // Phases: closed loop (1 to 8 writers, each waiting for its reply)
      // or open loop (a write every 0-300 us, whatever the replies, up to
      // 32 in flight), so commits come both alone and back to back.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
      bool open_loop = false;
      size_t phase_end = 0;
      while (acked < ops) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        if (acked >= phase_end) {
          phase_end = acked + 20 + rng() % 40;
          open_loop = rng() % 2 == 0;
          want_inflight = 1 + rng() % 8;
        }
        if (open_loop) {
          if (inflight < 32 && submitted < ops + 64) submit();
          uv_run(&loop, UV_RUN_NOWAIT);
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
        } else {
          while (inflight < want_inflight && submitted < ops + 64) submit();
          uv_run(&loop, UV_RUN_ONCE);
        }
      }
      writer.Stop();
      poster.Close();
      uv_run(&loop, UV_RUN_DEFAULT);
      CHECK(failed == 0);
      rec.acks = acked;
    }
    CHECK(uv_loop_close(&loop) == 0);
    rec.store_syncs = store->syncs() - syncs0;
    rec.store_commits = store->commits() - commits0;
  }
  rec.events = iolog::Stop(&rec.unexpected);
  return rec;
}

// ------------------------------------------------------- the crash images

constexpr uint64_t kSector = 512;

struct CrashStats {
  size_t points = 0;
  size_t pending_writes = 0;  // writes after the last sync, over all points
  size_t torn_writes = 0;     // of which only some sectors reached the image
  size_t kept_writes = 0;     // of which all sectors reached the image
  size_t acked_checked = 0;   // acknowledged writes checked, over all points
  size_t bad_points = 0;      // crash points with at least one problem
  std::vector<std::string> problems;
};

// The file as the page cache and the disk see it while the log is replayed
// up to a position.
class Replayer {
 public:
  explicit Replayer(const std::vector<iolog::Event>& ev) : ev_(ev) {}

  // Replays events [pos_, to).
  void AdvanceTo(size_t to) {
    for (; pos_ < to; ++pos_) {
      const iolog::Event& e = ev_[pos_];
      switch (e.kind) {
        case iolog::Event::kWrite: {
          Apply(cache_, e.off, e.data);
          // The sectors this write leaves, as they are right after it.
          Written w;
          w.index = pos_;
          w.first = e.off / kSector;
          uint64_t last = (e.off + e.data.size() - 1) / kSector;
          w.after = cache_.substr(w.first * kSector, (last - w.first + 1) * kSector);
          if (e.dsync) {
            // O_DSYNC: these sectors are on disk when the call returns.
            Apply(disk_, w.first * kSector, w.after);
            for (uint64_t s = w.first; s <= last; ++s) durable_at_[s] = pos_;
          } else {
            pending_.push_back(std::move(w));
          }
          break;
        }
        case iolog::Event::kSync:
          // fdatasync/fsync: every write to the file before it is on disk.
          for (const Written& w : pending_) Apply(disk_, w.first * kSector, w.after);
          pending_.clear();
          break;
        case iolog::Event::kAck: acks_.push_back(&e); break;
      }
    }
  }

  // The disk after a power cut at the current position: the durable image
  // plus, for each pending write, all, none or some of its sectors.
  std::string Image(std::mt19937_64& rng, CrashStats& stats) const {
    std::string img = disk_;
    // How this cut treats the writes since the last sync: none reached the
    // disk, all did, or each write independently none/all/some sectors.
    const int scenario = int(rng() % 4);
    for (const Written& w : pending_) {
      const size_t n = w.after.size() / kSector;
      int how = scenario == 0 ? 0 : scenario == 1 ? 1 : int(rng() % 3);  // 0 none, 1 all, 2 torn
      stats.pending_writes++;
      if (how == 0) continue;
      size_t kept = 0;
      for (size_t i = 0; i < n; ++i) {
        if (how == 2 && rng() % 2) continue;
        auto it = durable_at_.find(w.first + i);
        if (it != durable_at_.end() && it->second > w.index) continue;  // a newer O_DSYNC write is on disk
        Apply(img, (w.first + i) * kSector, std::string_view(w.after).substr(i * kSector, kSector));
        kept++;
      }
      if (kept == n) stats.kept_writes++;
      else if (kept > 0) stats.torn_writes++;
    }
    return img;
  }

  const std::vector<const iolog::Event*>& acks() const { return acks_; }

 private:
  struct Written {
    size_t index;
    uint64_t first;     // first sector
    std::string after;  // its sectors right after the write
  };
  static void Apply(std::string& file, uint64_t off, std::string_view data) {
    if (file.size() < off + data.size()) file.resize(off + data.size(), '\0');
    std::memcpy(file.data() + off, data.data(), data.size());
  }

  const std::vector<iolog::Event>& ev_;
  size_t pos_ = 0;
  std::string cache_, disk_;
  std::vector<Written> pending_;
  std::map<uint64_t, size_t> durable_at_;  // sector -> index of the O_DSYNC write that made it durable
  std::vector<const iolog::Event*> acks_;
};

// Opens one crash image and checks it; appends what is wrong to `problems`.
void CheckImage(const std::string& image, const std::vector<const iolog::Event*>& acks, SyncMode mode, size_t point,
                CrashStats& stats) {
  ScratchDir dir;
  {
    std::ofstream f(dir.path() + "/data.mdb", std::ios::binary);
    f.write(image.data(), std::streamsize(image.size()));
    REQUIRE(f.good());
  }
  auto where = [&](const std::string& what) { return "crash point " + std::to_string(point) + ": " + what; };
  StoreOptions o;
  o.path = dir.path();
  o.map_size_bytes = 16 << 20;  // room for the write below without a Grow
  o.max_map_size_bytes = 64 << 20;
  o.sync_mode = mode;
  auto opened = Store::Open(o);
  if (!opened.ok()) {
    stats.problems.push_back(where("LMDB did not open the image: " + opened.status().ToString()));
    return;
  }
  std::unique_ptr<Store> store = std::move(*opened);
  uint64_t last = 0, visible = 0, max_acked = 0;
  {
    auto r = store->BeginRead();
    REQUIRE(r.ok());
    last = r->LastTxid();
    // Every acknowledged write is there: the user at or past it, and its
    // change-feed entry with the value.
    std::map<uint64_t, const iolog::Event*> acked;
    for (const iolog::Event* a : acks) {
      acked[a->txid] = a;
      visible = std::max(visible, a->visible_txid);
      max_acked = std::max(max_acked, a->txid);
    }
    stats.acked_checked += acked.size();
    std::map<std::string, uint64_t> newest;  // user -> newest acked txid
    for (const auto& [txid, a] : acked) newest[a->user] = txid;
    for (const auto& [user, txid] : newest) {
      auto u = r->GetUser(user);
      if (!u.ok() || !u->has_value()) {
        stats.problems.push_back(
            where("acknowledged user " + user + " (transactionId " + std::to_string(txid) + ") is missing"));
        continue;
      }
      if ((*u)->txid < txid)
        stats.problems.push_back(where("acknowledged write lost: " + user + " is at transactionId " +
                                       std::to_string((*u)->txid) + ", acknowledged " + std::to_string(txid)));
      else if ((*u)->txid == txid && (*u)->first_name != acked[txid]->value)
        stats.problems.push_back(
            where("user " + user + " holds another value under transactionId " + std::to_string(txid)));
    }
    // The whole change feed reads back, and holds each acknowledged change.
    auto changes = r->ChangesSince(1, 1000000);
    if (!changes.ok()) {
      stats.problems.push_back(where("change feed unreadable: " + changes.status().ToString()));
    } else {
      std::map<uint64_t, const Change*> by_txid;
      for (const Change& c : *changes) by_txid[c.txid] = &c;
      for (const auto& [txid, a] : acked) {
        auto it = by_txid.find(txid);
        if (it == by_txid.end() || it->second->user.id != a->user || it->second->user.first_name != a->value) {
          stats.problems.push_back(where("acknowledged change " + std::to_string(txid) + " missing from the feed"));
          break;
        }
      }
    }
    auto all = r->ListUsers("", 1000000);
    if (!all.ok()) stats.problems.push_back(where("users unreadable: " + all.status().ToString()));
  }
  if (last < max_acked)
    stats.problems.push_back(where("last transactionId " + std::to_string(last) + " is below the acknowledged " +
                                   std::to_string(max_acked)));
  // After reopening, a new write gets a transactionId above every one that
  // was acknowledged or shown to a reader before the cut.
  {
    auto t = store->BeginWrite();
    REQUIRE(t.ok());
    UserRecord u = NewUser(100000);
    Status st = WriteUserChange(*t, u, std::nullopt, ChangeOp::kUpsert, 1);
    if (st.ok()) st = t->Commit();
    if (!st.ok()) {
      stats.problems.push_back(where("writing after reopening failed: " + st.ToString()));
    } else if (u.txid <= std::max(max_acked, visible)) {
      stats.problems.push_back(where("transactionId " + std::to_string(u.txid) + " reused (acknowledged up to " +
                                     std::to_string(max_acked) + ", shown up to " + std::to_string(visible) + ")"));
    }
  }
}

// Builds `points` crash images from the recording (positions drawn at
// random, in order) and checks each; stops after `max_problems` problems.
CrashStats CrashTest(const Recording& rec, SyncMode mode, size_t points, uint64_t seed, size_t max_problems = 20) {
  CrashStats stats;
  std::mt19937_64 rng(seed);
  const size_t n = rec.events.size();
  REQUIRE(n > rec.base);
  // The store was open and synced at base: its last event is a sync.
  REQUIRE(rec.base > 0);
  REQUIRE(rec.events[rec.base - 1].kind == iolog::Event::kSync);
  std::vector<size_t> at(points);
  for (auto& p : at) p = rec.base + rng() % (n - rec.base + 1);
  std::sort(at.begin(), at.end());
  Replayer replay(rec.events);
  for (size_t p : at) {
    replay.AdvanceTo(p);
    std::string img = replay.Image(rng, stats);
    const size_t before = stats.problems.size();
    CheckImage(img, replay.acks(), mode, p, stats);
    stats.points++;
    if (stats.problems.size() > before) stats.bad_points++;
    if (stats.problems.size() >= max_problems) break;
  }
  return stats;
}

void Report(const char* name, const Recording& rec, const CrashStats& s, double seconds) {
  size_t syncs = 0, dsync = 0, writes = 0;
  for (const auto& e : rec.events) {
    if (e.kind == iolog::Event::kSync) syncs++;
    if (e.kind == iolog::Event::kWrite) (e.dsync ? dsync : writes)++;
  }
  std::printf(
      "power loss [%s]: %zu acknowledged writes, %zu events (%zu writes, %zu O_DSYNC writes, %zu syncs); store: %llu "
      "commits, %llu syncs (%.2f per commit); %zu crash points, %zu pending writes (%zu whole, %zu torn), %zu "
      "acknowledged writes checked, %zu problems at %zu crash points, %.1f s\n",
      name, rec.acks, rec.events.size(), writes, dsync, syncs, (unsigned long long)rec.store_commits,
      (unsigned long long)rec.store_syncs,
      rec.store_commits ? double(rec.store_syncs) / double(rec.store_commits) : 0.0, s.points, s.pending_writes,
      s.kept_writes, s.torn_writes, s.acked_checked, s.problems.size(), s.bad_points, seconds);
  for (size_t i = 0; i < s.problems.size() && i < 5; ++i) std::printf("  %s\n", s.problems[i].c_str());
  std::fflush(stdout);
}

// The syncs the store counts are the syncs the I/O log saw.
void CheckSyncCount(const Recording& rec, SyncMode mode) {
  size_t syncs = 0, dsync = 0;
  for (size_t i = rec.base; i < rec.events.size(); ++i) {
    const auto& e = rec.events[i];
    if (e.kind == iolog::Event::kSync) syncs++;
    if (e.kind == iolog::Event::kWrite && e.dsync) dsync++;
  }
  CHECK(rec.unexpected == 0);
  if (mode == SyncMode::kOne) CHECK(dsync == 0);
  else CHECK(dsync == rec.store_commits);
  CHECK(syncs + dsync == rec.store_syncs);
  // sync_mode one: the workload made commits follow each other (each one's
  // data sync acknowledging the one before), not only idle syncs.
  if (mode == SyncMode::kOne) CHECK(double(rec.store_syncs) < 1.8 * double(rec.store_commits));
}

void RunMode(SyncMode mode, const char* name) {
  const uint64_t seed = EnvU64("USERSD_POWER_LOSS_SEED", 24);
  const size_t points = EnvU64("USERSD_POWER_LOSS_POINTS", 1000);
  const size_t ops = EnvU64("USERSD_POWER_LOSS_OPS", 300);
  auto t0 = std::chrono::steady_clock::now();
  Recording rec = RunWorkload(mode, /*ack_early=*/false, seed, ops);
  CheckSyncCount(rec, mode);
  CrashStats s = CrashTest(rec, mode, points, seed + 1);
  Report(name, rec, s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  INFO("seed " << seed << "; first problem: " << (s.problems.empty() ? "" : s.problems.front()));
  CHECK(s.problems.empty());
  CHECK(s.points == points);
}

TEST_CASE("power loss: sync_mode one loses no acknowledged write at any crash point", "[store][power_loss]") {
  RunMode(SyncMode::kOne, "one");
}

TEST_CASE("power loss: sync_mode two loses no acknowledged write at any crash point", "[store][power_loss]") {
  RunMode(SyncMode::kTwo, "two");
}

// The test has teeth: acknowledging each commit right after it returns, one
// sync too early in sync_mode one, loses acknowledged writes at some crash
// points (the meta page of the last commit never reached the disk).
TEST_CASE("power loss: acknowledging one commit too early is caught", "[store][power_loss]") {
  const uint64_t seed = EnvU64("USERSD_POWER_LOSS_SEED", 24);
  Recording rec = RunWorkload(SyncMode::kOne, /*ack_early=*/true, seed, 200);
  auto t0 = std::chrono::steady_clock::now();
  // All 400 points, to count how many lose an acknowledged write.
  CrashStats s = CrashTest(rec, SyncMode::kOne, 400, seed + 2, /*max_problems=*/SIZE_MAX);
  Report("one, acknowledged early", rec, s,
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  REQUIRE_FALSE(s.problems.empty());
  bool lost = false;
  for (const auto& p : s.problems) lost = lost || p.find("acknowledged") != std::string::npos;
  CHECK(lost);
}

}  // namespace
}  // namespace usersd::store
