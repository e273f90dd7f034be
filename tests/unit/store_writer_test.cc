// Tests of store/writer.h: group commit on the writer thread, results handed
// back on the loop thread through a Poster, rollback of one failing op, map
// growth and the map-size ceiling. Each test uses its own temporary directory
// and its own uv loop, which must close cleanly at the end.
#include <stdlib.h>
#include <uv.h>

#include <atomic>
#include <catch2/catch.hpp>

#include "tests/unit/temp_dir.h"
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/poster.h"
#include "store/store.h"
#include "store/writer.h"

namespace usersd::store {
namespace {

namespace fs = std::filesystem;

using usersd::testing::TempDir;

// A store, a uv loop with a Poster, and a Writer, torn down in the order the
// headers require: writer stopped, its last dones delivered, the Poster
// closed, the loop closed (and checked to close cleanly).
struct Rig {
  explicit Rig(uint64_t map = 4ull << 20, uint64_t max_map = 64ull << 20, size_t max_batch = 512,
               SyncMode mode = SyncMode::kOne) {
    StoreOptions o;
    o.path = dir.path();
    o.map_size_bytes = map;
    o.max_map_size_bytes = max_map;
    o.sync_mode = mode;
    auto s = Store::Open(o);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    store = std::move(s).value();
    REQUIRE(uv_loop_init(&loop) == 0);
    poster = std::make_unique<Poster>(&loop);
    writer = std::make_unique<Writer>(store.get(), poster.get(), max_batch);
    loop_thread = std::this_thread::get_id();
  }
  ~Rig() {
    if (!closed) Close();
  }

  // Runs the loop until pred() holds (dones arrive through the Poster).
  template <class Pred>
  void RunUntil(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!pred()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      uv_run(&loop, UV_RUN_ONCE);
    }
  }

  // Submits and waits for the result.
  Status SubmitSync(WriteOp op) {
    bool done = false;
    Status result;
    writer->Submit(std::move(op), [&](Status st) {
      done = true;
      result = std::move(st);
    });
    RunUntil([&] { return done; });
    return result;
  }

  void Close() {
    closed = true;
    writer->Stop();
    poster->Close();
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    writer.reset();
    poster.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }

  TempDir dir;
  std::unique_ptr<Store> store;
  uv_loop_t loop{};
  std::unique_ptr<Poster> poster;
  std::unique_ptr<Writer> writer;
  std::thread::id loop_thread;
  bool closed = false;
};

UserRecord MakeUser(const std::string& id, const std::string& email = "") {
  UserRecord u;
  u.id = id;
  u.workos_id = "w-" + id;
  u.email = email;
  u.first_name = "Ada";
  u.last_name = "Lovelace";
  return u;
}

// A write op that stores a user the way the domain does: read the stored
// version, take a transactionId, write user + change together.
WriteOp PutUserOp(UserRecord u, std::string pad = {}) {
  return [u = std::move(u), pad = std::move(pad)](WriteTxn& t) mutable -> Status {
    auto prev = t.GetUser(u.id);
    if (!prev.ok()) return prev.status();
    auto tx = t.NextTxid();
    if (!tx.ok()) return tx.status();
    u.txid = *tx;
    if (!pad.empty()) u.settings = Json{{"pad", pad}};
    USERSD_RETURN_IF_ERROR(t.PutUser(u, *prev));
    Change c;
    c.txid = *tx;
    c.user = u;
    return t.AppendChange(c);
  };
}

std::optional<UserRecord> Get(Store& s, const std::string& id) {
  auto r = s.BeginRead();
  REQUIRE(r.ok());
  auto u = r->GetUser(id);
  REQUIRE(u.ok());
  return *u;
}

TEST_CASE("writer: group commit of 1000 ops from several threads, dones on the loop thread in order", "[writer]") {
  Rig rig;
  rig.writer->Start();

  // The first op holds the writer thread until every thread has submitted,
  // so the rest must be grouped: the test does not depend on timing.
  std::promise<void> all_submitted;
  std::shared_future<void> gate = all_submitted.get_future().share();
  bool gate_done = false;
  rig.writer->Submit(
      [gate](WriteTxn&) {
        gate.wait();
        return Status::Ok();
      },
      [&](Status st) {
        CHECK(st.ok());
        gate_done = true;
      });

  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::vector<std::vector<int>> seen(kThreads);  // touched on the loop thread only
  std::vector<std::vector<uint64_t>> txids(kThreads);
  std::atomic<int> wrong_thread{0};
  std::atomic<int> not_durable{0};
  int done = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto txid = std::make_shared<uint64_t>(0);
        UserRecord u = MakeUser(id, id + "@example.com");
        WriteOp put = PutUserOp(u);
        rig.writer->Submit(
            [put, txid](WriteTxn& txn) {
              Status st = put(txn);
              if (st.ok()) *txid = txn.LastTxid();  // overwritten on replay
              return st;
            },
            [&, t, i, id, txid](Status st) {
              if (std::this_thread::get_id() != rig.loop_thread) wrong_thread++;
              CHECK(st.ok());
              // The change is committed (visible to a new reader) before
              // the done runs.
              auto r = rig.store->BeginRead();
              if (!r.ok() || !r->GetUser(id).ok() || !r->GetUser(id)->has_value()) not_durable++;
              seen[t].push_back(i);
              txids[t].push_back(*txid);
              ++done;
            });
      }
    });
  }
  for (auto& th : threads) th.join();
  all_submitted.set_value();
  rig.RunUntil([&] { return done == kThreads * kPerThread && gate_done; });

  CHECK(wrong_thread == 0);
  CHECK(not_durable == 0);
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(seen[t].size() == kPerThread);
    for (int i = 0; i < kPerThread; ++i) CHECK(seen[t][i] == i);
    for (int i = 1; i < kPerThread; ++i) CHECK(txids[t][i] > txids[t][i - 1]);
  }
  CHECK(rig.writer->ops() == kThreads * kPerThread + 1);
  CHECK(rig.writer->batches() < rig.writer->ops());
  CHECK(rig.writer->batches() <= 4);  // gate alone, then batches of at most 512
  CHECK(rig.writer->queued() == 0);
  auto r = rig.store->BeginRead();
  CHECK(r->LastTxid() == kThreads * kPerThread);
  CHECK(r->CountEntries(Table::kUsers) == kThreads * kPerThread);
  CHECK(r->CountEntries(Table::kByEmail) == kThreads * kPerThread);
  CHECK(r->CountEntries(Table::kChanges) == kThreads * kPerThread);
}

TEST_CASE("writer: an op that fails rolls back alone and its neighbours commit", "[writer]") {
  Rig rig;
  // Queued before Start, so all of them run in one batch.
  std::map<std::string, Status> results;
  auto record = [&](std::string name) { return [&results, name](Status st) { results[name] = st; }; };
  rig.writer->Submit(PutUserOp(MakeUser("a", "a@example.com")), record("a"));
  rig.writer->Submit(
      [](WriteTxn& t) -> Status {
        USERSD_RETURN_IF_ERROR(PutUserOp(MakeUser("b", "b@example.com"))(t));
        return Status::InvalidArgument("firstName: too long");
      },
      record("b"));
  rig.writer->Submit(PutUserOp(MakeUser("c", "c@example.com")), record("c"));
  // Takes a's email: refused by the store, rolled back alone.
  rig.writer->Submit(PutUserOp(MakeUser("d", "A@example.com")), record("d"));
  rig.writer->Submit(PutUserOp(MakeUser("e", "b@example.com")), record("e"));  // b's email is free
  rig.writer->Start();
  rig.RunUntil([&] { return results.size() == 5; });

  CHECK(results["a"].ok());
  CHECK(results["b"].code() == Code::kInvalidArgument);
  CHECK(results["b"].message() == "firstName: too long");
  CHECK(results["c"].ok());
  CHECK(results["d"].message() == "email already in use");
  CHECK(results["e"].ok());
  CHECK(rig.writer->batches() == 1);
  CHECK(rig.writer->replays() == 1);  // the batch ran again op by op, once
  CHECK(Get(*rig.store, "a"));
  CHECK_FALSE(Get(*rig.store, "b"));
  CHECK(Get(*rig.store, "c"));
  CHECK_FALSE(Get(*rig.store, "d"));
  CHECK(Get(*rig.store, "e"));
  auto r = rig.store->BeginRead();
  // Failed ops did not consume transactionIds: a, c, e got 1, 2, 3.
  CHECK(r->LastTxid() == 3);
  CHECK(r->GetUser("e")->value_or(UserRecord{}).txid == 3);
  CHECK(r->ChangesSince(0, 10)->size() == 3);
}

TEST_CASE("writer: an op that throws becomes Internal and rolls back alone", "[writer]") {
  Rig rig;
  std::map<std::string, Status> results;
  auto record = [&](std::string name) { return [&results, name](Status st) { results[name] = st; }; };
  rig.writer->Submit(PutUserOp(MakeUser("a")), record("a"));
  rig.writer->Submit(
      [](WriteTxn& t) -> Status {
        USERSD_RETURN_IF_ERROR(PutUserOp(MakeUser("b"))(t));
        throw std::runtime_error("boom");
      },
      record("b"));
  // Regression: an exception not derived from std::exception escaped the
  // writer thread and terminated the process.
  rig.writer->Submit(
      [](WriteTxn& t) -> Status {
        USERSD_RETURN_IF_ERROR(PutUserOp(MakeUser("c"))(t));
        throw 42;
      },
      record("c"));
  rig.writer->Submit(PutUserOp(MakeUser("d")), record("d"));
  rig.writer->Start();
  rig.RunUntil([&] { return results.size() == 4; });
  CHECK(results["a"].ok());
  CHECK(results["b"].code() == Code::kInternal);
  CHECK_THAT(results["b"].message(), Catch::Contains("boom"));
  CHECK(results["c"].code() == Code::kInternal);
  CHECK(results["d"].ok());
  CHECK(Get(*rig.store, "a"));
  CHECK_FALSE(Get(*rig.store, "b"));
  CHECK_FALSE(Get(*rig.store, "c"));
  CHECK(Get(*rig.store, "d"));
}

TEST_CASE("writer: Stop drains queued ops and later submits get Unavailable", "[writer]") {
  Rig rig;
  int ok = 0;
  for (int i = 0; i < 100; ++i)
    rig.writer->Submit(PutUserOp(MakeUser("u" + std::to_string(i))), [&](Status st) { ok += st.ok(); });
  rig.writer->Start();
  rig.writer->Stop();
  // Everything was committed before Stop returned; the dones are posted.
  CHECK(rig.store->Stats().users == 100);
  CHECK(rig.writer->ops() == 100);
  rig.RunUntil([&] { return ok == 100; });

  bool called = false;
  Status late;
  rig.writer->Submit(PutUserOp(MakeUser("late")), [&](Status st) {
    called = true;
    late = st;
    CHECK(std::this_thread::get_id() == rig.loop_thread);
  });
  rig.RunUntil([&] { return called; });
  CHECK(late.code() == Code::kUnavailable);
  CHECK_FALSE(Get(*rig.store, "late"));
  rig.writer->Stop();  // stopping twice is fine
}

TEST_CASE("writer: Stop without Start fails the queued ops with Unavailable", "[writer]") {
  // Regression: their dones were silently dropped, so a caller waiting for a
  // reply never heard back.
  Rig rig;
  int unavailable = 0;
  for (int i = 0; i < 3; ++i)
    rig.writer->Submit(PutUserOp(MakeUser("u" + std::to_string(i))),
                       [&](Status st) { unavailable += st.code() == Code::kUnavailable; });
  rig.writer->Stop();
  rig.RunUntil([&] { return unavailable == 3; });
  CHECK(rig.store->Stats().users == 0);
}

TEST_CASE("writer: a max_batch of 0 still makes progress", "[writer]") {
  // Regression: the writer took empty batches forever and never ran an op.
  Rig rig(4ull << 20, 64ull << 20, /*max_batch=*/0);
  rig.writer->Start();
  CHECK(rig.SubmitSync(PutUserOp(MakeUser("a"))).ok());
  CHECK(Get(*rig.store, "a"));
}

TEST_CASE("writer: the map grows past its initial size while readers run", "[writer]") {
  Rig rig(1ull << 20, 64ull << 20);
  rig.writer->Start();
  uint64_t initial = rig.store->Stats().map_size_bytes;
  CHECK(initial == 1ull << 20);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<int> read_errors{0};
  std::vector<std::thread> readers;
  for (int k = 0; k < 2; ++k) {
    readers.emplace_back([&, k] {
      while (!stop) {
        if (k == 0) {
          auto r = rig.store->BeginRead();
          if (!r.ok()) {
            read_errors++;
            continue;
          }
          auto users = r->ListUsers("", 5);
          if (!users.ok()) read_errors++;
          for (auto& u : users.value())
            if (!u.settings || (*u.settings)["pad"].get<std::string>().size() != 8000) read_errors++;
        } else {
          // Stats reads the environment's map; it must not race with a grow.
          StoreStats st = rig.store->Stats();
          if (st.map_size_bytes < (1ull << 20)) read_errors++;
        }
        reads++;
      }
    });
  }

  // ~3 MiB of users, in many batches so that readers run between them.
  constexpr int kUsers = 400;
  int ok = 0, failed = 0;
  for (int i = 0; i < kUsers; ++i) {
    rig.writer->Submit(PutUserOp(MakeUser("u" + std::to_string(i)), std::string(8000, 'x')), [&](Status st) {
      if (st.ok())
        ok++;
      else {
        failed++;
        UNSCOPED_INFO(st.ToString());
      }
    });
    if (i % 20 == 0) rig.RunUntil([&] { return ok + failed == i + 1; });
  }
  rig.RunUntil([&] { return ok + failed == kUsers; });
  stop = true;
  for (auto& t : readers) t.join();

  CHECK(failed == 0);
  CHECK(ok == kUsers);
  CHECK(read_errors == 0);
  CHECK(reads > 0);
  StoreStats st = rig.store->Stats();
  CHECK(st.map_size_bytes > initial);
  CHECK(st.used_bytes > initial);
  CHECK(st.users == kUsers);
  for (int i = 0; i < kUsers; i += 37) CHECK(Get(*rig.store, "u" + std::to_string(i)));
}

TEST_CASE("writer: a grow waits for open readers, and a reader holding one can open another", "[writer]") {
  Rig rig(1ull << 20, 64ull << 20);
  rig.writer->Start();
  auto held = rig.store->BeginRead();
  REQUIRE(held.ok());
  // Too big for the initial map: the writer must grow it, which waits for
  // `held` to end.
  bool done = false;
  Status result;
  rig.writer->Submit(PutUserOp(MakeUser("big"), std::string(2 << 20, 'b')), [&](Status st) {
    done = true;
    result = st;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  uv_run(&rig.loop, UV_RUN_NOWAIT);
  CHECK_FALSE(done);
  CHECK(rig.store->Stats().map_size_bytes == 1ull << 20);
  // The same thread opens a second reader while the grow waits: it must not
  // deadlock (it waits only briefly), and both see the old snapshot.
  auto second = rig.store->BeginRead();
  REQUIRE(second.ok());
  CHECK_FALSE(second->GetUser("big")->has_value());
  CHECK_FALSE(held->GetUser("big")->has_value());
  {
    ReadTxn a = std::move(held).value();
    ReadTxn b = std::move(second).value();
  }
  rig.RunUntil([&] { return done; });
  INFO(result.ToString());
  CHECK(result.ok());
  CHECK(rig.store->Stats().map_size_bytes >= 4ull << 20);
  CHECK(Get(*rig.store, "big"));
}

// Submits big outbox jobs until one fails; returns how many succeeded.
int FillUntilFull(Rig& rig, Status* failure) {
  for (int i = 0; i < 10'000; ++i) {
    Status st = rig.SubmitSync([](WriteTxn& t) -> Status {
      OutboxJob j;
      j.user_id = "filler";
      j.fields = Json{{"pad", std::string(20'000, 'f')}};
      return t.EnqueueJob(j).status();
    });
    if (!st.ok()) {
      *failure = st;
      return i;
    }
  }
  return -1;
}

TEST_CASE("writer: at the maximum map size writes fail with MapFull, reads and data stay", "[writer]") {
  Rig rig(1ull << 20, 2ull << 20);
  rig.writer->Start();
  for (int i = 0; i < 10; ++i) REQUIRE(rig.SubmitSync(PutUserOp(MakeUser("u" + std::to_string(i)))).ok());

  Status failure;
  int filled = FillUntilFull(rig, &failure);
  REQUIRE(filled > 0);
  CHECK(failure.code() == Code::kMapFull);
  CHECK(rig.store->Stats().map_size_bytes == 2ull << 20);

  // Still full for the next write; reads work and the data is intact.
  CHECK(rig.SubmitSync(PutUserOp(MakeUser("x"), std::string(50'000, 'x'))).code() == Code::kMapFull);
  for (int i = 0; i < 10; ++i) CHECK(Get(*rig.store, "u" + std::to_string(i)));
  {
    auto r = rig.store->BeginRead();
    REQUIRE(r.ok());
    CHECK(r->ListJobs(0)->size() == size_t(filled));
    CHECK(r->LastTxid() == 10);
  }

  // Deleting data makes room again.
  Status del = rig.SubmitSync([](WriteTxn& t) -> Status {
    auto jobs = t.ListJobs(0);
    if (!jobs.ok()) return jobs.status();
    for (size_t i = 0; i < jobs->size() / 2; ++i) USERSD_RETURN_IF_ERROR(t.DeleteJob((*jobs)[i].id));
    return Status::Ok();
  });
  INFO(del.ToString());
  REQUIRE(del.ok());
  // Regression: pages freed by the delete stay reserved until a later
  // commit, so the next big write failed with MapFull although half the map
  // was free.
  Status after = rig.SubmitSync(PutUserOp(MakeUser("after-delete"), std::string(20'000, 'y')));
  INFO(after.ToString());
  CHECK(after.ok());
  CHECK(Get(*rig.store, "after-delete"));
}

TEST_CASE("writer: raising the maximum map size lets writes continue", "[writer]") {
  Rig rig(1ull << 20, 2ull << 20);
  rig.writer->Start();
  Status failure;
  int filled = FillUntilFull(rig, &failure);
  REQUIRE(filled > 0);
  REQUIRE(failure.code() == Code::kMapFull);
  rig.store->set_max_map_size(8ull << 20);
  Status failure2;
  int more = FillUntilFull(rig, &failure2);
  CHECK(more > filled);
  CHECK(failure2.code() == Code::kMapFull);
  CHECK(rig.store->Stats().map_size_bytes == 8ull << 20);
}

TEST_CASE("writer: an op too big for the maximum map fails alone in its batch", "[writer]") {
  Rig rig(1ull << 20, 2ull << 20);
  std::map<std::string, Status> results;
  auto record = [&](std::string name) { return [&results, name](Status st) { results[name] = st; }; };
  rig.writer->Submit(PutUserOp(MakeUser("a")), record("a"));
  rig.writer->Submit(PutUserOp(MakeUser("huge"), std::string(3 << 20, 'h')), record("huge"));
  rig.writer->Submit(PutUserOp(MakeUser("b")), record("b"));
  rig.writer->Start();
  rig.RunUntil([&] { return results.size() == 3; });
  CHECK(results["a"].ok());
  CHECK(results["huge"].code() == Code::kMapFull);
  CHECK(results["b"].ok());
  CHECK(Get(*rig.store, "a"));
  CHECK_FALSE(Get(*rig.store, "huge"));
  CHECK(Get(*rig.store, "b"));
  auto r = rig.store->BeginRead();
  CHECK(r->LastTxid() == 2);
  CHECK(r->GetUser("b")->value_or(UserRecord{}).txid == 2);
}

// Fills a 1 MiB store (at its maximum) with outbox jobs of about 1 KiB.
void FillWithJobs(Rig& rig) {
  int filled = 0;
  for (;; ++filled) {
    Status st = rig.SubmitSync([](WriteTxn& t) -> Status {
      OutboxJob j;
      j.user_id = "filler";
      j.fields = Json{{"pad", std::string(1000, 'f')}};
      return t.EnqueueJob(j).status();
    });
    if (!st.ok()) {
      REQUIRE(st.code() == Code::kMapFull);
      break;
    }
  }
  REQUIRE(filled > 100);
}

// Deletes the oldest `fraction` of the outbox in one op.
WriteOp PurgeOp(double fraction) {
  return [fraction](WriteTxn& t) -> Status {
    auto jobs = t.ListJobs(0);
    if (!jobs.ok()) return jobs.status();
    size_t n = size_t(double(jobs->size()) * fraction);
    for (size_t i = 0; i < n; ++i) USERSD_RETURN_IF_ERROR(t.DeleteJob((*jobs)[i].id));
    return Status::Ok();
  };
}

// Submits `ops` so that they form one batch: a first op holds the writer
// until all are queued. Returns the results by name.
std::map<std::string, Status> RunAsOneBatch(Rig& rig, std::vector<std::pair<std::string, WriteOp>> ops) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::map<std::string, Status> results;
  rig.writer->Submit(
      [gate](WriteTxn&) {
        gate.wait();
        return Status::Ok();
      },
      [&](Status st) { results["gate"] = st; });
  for (auto& [name, op] : ops)
    rig.writer->Submit(std::move(op), [&results, name = name](Status st) { results[name] = st; });
  release.set_value();
  size_t want = ops.size() + 1;
  rig.RunUntil([&] { return results.size() == want; });
  return results;
}

TEST_CASE("writer: at the maximum map size, ops after a purge in the same batch use the room it made", "[writer]") {
  // Regression: the first op that hit MapFull in a batch was refused, even
  // when it failed only because of the ops before it in the same
  // transaction; run one by one (the contract), it fits.
  Rig rig(1ull << 20, 1ull << 20);
  rig.writer->Start();
  FillWithJobs(rig);
  auto results = RunAsOneBatch(rig, {{"purge", PurgeOp(1.0)},
                                     {"a", PutUserOp(MakeUser("a"), std::string(3000, 'a'))},
                                     {"b", PutUserOp(MakeUser("b"))}});
  for (auto& [name, st] : results) {
    INFO(name << ": " << st.ToString());
    CHECK(st.ok());
  }
  CHECK(Get(*rig.store, "a"));
  CHECK(Get(*rig.store, "b"));
  CHECK(rig.store->Stats().outbox_depth == 0);
}

TEST_CASE("writer: a batch whose commit overflows the maximum map commits its ops one by one", "[writer]") {
  // Deleting many records needs room at commit for the list of freed pages:
  // with the map full, the batch's commit itself fails although each op ran.
  // No op can be blamed, so each is committed alone (before, all failed).
  Rig rig(1ull << 20, 1ull << 20);
  rig.writer->Start();
  FillWithJobs(rig);
  size_t before = rig.store->Stats().outbox_depth;
  auto results =
      RunAsOneBatch(rig, {{"meta", [](WriteTxn& t) { return t.PutMeta("note", "x"); }}, {"purge", PurgeOp(0.5)}});
  for (auto& [name, st] : results) {
    INFO(name << ": " << st.ToString());
    CHECK(st.ok());
  }
  CHECK(rig.store->Stats().outbox_depth == before - before / 2);
  auto r = rig.store->BeginRead();
  CHECK(r->GetMeta("note")->value_or("") == "x");
}

TEST_CASE("writer: ops trickling in while a batch gathers give the results of one by one", "[writer]") {
  // The writer runs ops as they arrive, before the batch is complete; a
  // failing op sends the batch back to the replay. Both stores get the same
  // stream of ops, one store a batch of one op at a time (the reference):
  // results and contents must match.
  struct Spec {
    std::string id, email;
    bool fail = false;
  };
  std::vector<Spec> specs;
  for (int i = 0; i < 240; ++i) {
    Spec sp;
    sp.id = "u" + std::to_string(i % 60);  // revisits users: updates
    sp.email = "e" + std::to_string((i * 7) % 50) + "@example.com";  // conflicts: refused by the store
    sp.fail = i % 13 == 5;
    specs.push_back(sp);
  }
  auto op_for = [](const Spec& sp) -> WriteOp {
    return [sp](WriteTxn& t) -> Status {
      USERSD_RETURN_IF_ERROR(PutUserOp(MakeUser(sp.id, sp.email))(t));
      if (sp.fail) return Status::InvalidArgument("refused by the op");
      return Status::Ok();
    };
  };
  auto run = [&](Rig& rig, bool trickle) {
    std::vector<std::optional<Status>> results(specs.size());
    rig.writer->Start();
    std::thread producer([&] {
      for (size_t i = 0; i < specs.size(); ++i) {
        rig.writer->Submit(op_for(specs[i]), [&results, i](Status st) { results[i] = std::move(st); });
        // Waves of 40 with pauses inside them: the writer sees partial batches.
        if (trickle && i % 40 != 39) std::this_thread::sleep_for(std::chrono::microseconds(i % 3 == 0 ? 30 : 0));
        if (trickle && i % 40 == 39) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    rig.RunUntil([&] {
      for (auto& r : results)
        if (!r) return false;
      return true;
    });
    producer.join();
    return results;
  };
  Rig batched;
  Rig reference(4ull << 20, 64ull << 20, /*max_batch=*/1);
  auto got = run(batched, true);
  auto want = run(reference, false);
  for (size_t i = 0; i < specs.size(); ++i) {
    INFO("op " << i);
    CHECK(got[i]->code() == want[i]->code());
    CHECK(got[i]->message() == want[i]->message());
  }
  auto a = batched.store->BeginRead();
  auto b = reference.store->BeginRead();
  CHECK(a->LastTxid() == b->LastTxid());
  for (int i = 0; i < 60; ++i) {
    std::string id = "u" + std::to_string(i);
    auto ua = a->GetUser(id);
    auto ub = b->GetUser(id);
    REQUIRE(ua.ok());
    REQUIRE(ub.ok());
    REQUIRE(ua->has_value() == ub->has_value());
    if (ua->has_value()) {
      CHECK((*ua)->email == (*ub)->email);
      CHECK((*ua)->txid == (*ub)->txid);
    }
  }
  // Far fewer commits than ops: the batches did gather.
  CHECK(batched.writer->batches() < specs.size() / 2);
}

// Two commits back to back: op 1 holds the writer thread until op 2 is
// queued, so op 2 is waiting when commit 1 returns. Returns what the store
// counted (syncs, commits) and the store's commits() when each done ran.
struct BackToBack {
  uint64_t syncs = 0, commits = 0;
  uint64_t commits_at_done1 = 0, commits_at_done2 = 0;
  uint64_t durable_txid_at_done1 = 0;
};
BackToBack RunBackToBack(SyncMode mode) {
  Rig rig(4ull << 20, 64ull << 20, 512, mode);
  const uint64_t syncs0 = rig.store->syncs(), commits0 = rig.store->commits();
  rig.writer->Start();
  std::promise<void> running, queued;
  std::shared_future<void> second = queued.get_future().share();
  BackToBack r;
  bool done1 = false, done2 = false;
  auto first = PutUserOp(MakeUser("a"));
  rig.writer->Submit(
      [&running, second, first](WriteTxn& t) {
        running.set_value();
        second.wait();
        return first(t);
      },
      [&](Status st) {
        CHECK(st.ok());
        done1 = true;
        r.commits_at_done1 = rig.store->commits();
        r.durable_txid_at_done1 = rig.store->durable_txid();
      });
  running.get_future().wait();
  rig.writer->Submit(PutUserOp(MakeUser("b")), [&](Status st) {
    CHECK(st.ok());
    CHECK(done1);  // in order
    done2 = true;
    r.commits_at_done2 = rig.store->commits();
  });
  queued.set_value();
  rig.RunUntil([&] { return done2; });
  r.syncs = rig.store->syncs() - syncs0;
  r.commits = rig.store->commits() - commits0;
  CHECK(rig.store->durable_commits() == rig.store->commits());
  CHECK(rig.store->BeginRead()->LastTxid() == 2);
  return r;
}

TEST_CASE("writer: sync_mode one acknowledges a commit after the next one's data sync, or an idle sync", "[writer]") {
  BackToBack r = RunBackToBack(SyncMode::kOne);
  CHECK(r.commits == 2);
  // Commit 1 (data sync), commit 2 (data sync, which also made commit 1's
  // meta page durable), then an idle sync for commit 2: three, not four.
  CHECK(r.syncs == 3);
  // Op 1's done ran only after commit 2, when its transactionId was durable.
  CHECK(r.commits_at_done1 == 2);
  CHECK(r.durable_txid_at_done1 >= 1);
  CHECK(r.commits_at_done2 == 2);
}

TEST_CASE("writer: sync_mode two syncs twice per commit and acknowledges each at once", "[writer]") {
  BackToBack r = RunBackToBack(SyncMode::kTwo);
  CHECK(r.commits == 2);
  CHECK(r.syncs == 4);
  CHECK(r.durable_txid_at_done1 >= 1);
}

TEST_CASE("writer: sync_mode one, a lone write is synced at once (two syncs, no wait for a next commit)", "[writer]") {
  Rig rig;
  const uint64_t syncs0 = rig.store->syncs();
  rig.writer->Start();
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(rig.SubmitSync(PutUserOp(MakeUser("u" + std::to_string(i)))).ok());
    // Acknowledged without waiting for another write (none comes).
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
    CHECK(rig.store->durable_commits() == rig.store->commits());
    CHECK(rig.store->BeginRead()->LastTxid() == uint64_t(i + 1));
  }
  CHECK(rig.store->syncs() - syncs0 == 10);
}

}  // namespace
}  // namespace usersd::store
