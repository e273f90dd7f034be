// Shared rig for the sync unit tests (sync_outbox_test.cc, sync_events_test.cc):
// a fake WorkosApi whose calls wait until the test answers them, a FakeClock,
// a real store in a temporary directory with its Writer, and a uv loop that
// must close cleanly at the end. No sleeps: time moves only when a test
// advances the FakeClock; the loop is spun only to collect writer results.
#pragma once

#include <stdlib.h>
#include <uv.h>

#include <catch2/catch.hpp>

#include "tests/unit/temp_dir.h"
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/poster.h"
#include "store/store.h"
#include "store/writer.h"
#include "sync/workos_client.h"

namespace usersd::sync::testing {

namespace fs = std::filesystem;

using usersd::testing::TempDir;

inline HttpResponse Reply(int status, std::string body = "{}", std::optional<int64_t> retry_after_ms = std::nullopt) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.retry_after_ms = retry_after_ms;
  if (status == 0) r.error = "Connection refused";
  return r;
}

// Every call is recorded and left pending until the test answers it, with
// `responder` (default: 200 "{}") or an explicit response. Upstream state
// follows WorkosClient's rule: offline after a transport error, 5xx or 429,
// unauthorized after 401 or 403, online after anything else.
class FakeWorkos : public WorkosApi {
 public:
  struct Call {
    std::string method;  // PUT, DELETE, GET, EVENTS, USERS
    std::string workos_id;
    Json fields;
    std::optional<std::string> after, range_start;
    int limit = 0;
    int64_t at_ms = 0;
  };

  explicit FakeWorkos(const Clock& clock) : clock_(clock) {}

  bool Configured() const override { return configured; }
  UpstreamState state() const override { return configured ? state_ : UpstreamState::kUnconfigured; }
  void PutUser(const std::string& id, const Json& fields, HttpCallback cb) override {
    Add({"PUT", id, fields, {}, {}, 0, clock_.NowMs()}, std::move(cb));
  }
  void DeleteUser(const std::string& id, HttpCallback cb) override {
    Add({"DELETE", id, nullptr, {}, {}, 0, clock_.NowMs()}, std::move(cb));
  }
  void GetUserRaw(const std::string& id, HttpCallback cb) override {
    Add({"GET", id, nullptr, {}, {}, 0, clock_.NowMs()}, std::move(cb));
  }
  void ListEvents(const std::optional<std::string>& after, const std::optional<std::string>& range_start, int limit,
                  HttpCallback cb) override {
    Add({"EVENTS", {}, nullptr, after, range_start, limit, clock_.NowMs()}, std::move(cb));
  }
  void ListUsers(const std::optional<std::string>& after, int limit, HttpCallback cb) override {
    Add({"USERS", {}, nullptr, after, {}, limit, clock_.NowMs()}, std::move(cb));
  }

  // Answers the calls pending now (not those their answers start).
  size_t Deliver() {
    size_t n = pending_.size();
    for (size_t i = 0; i < n; ++i) {
      auto [call, cb] = std::move(pending_.front());
      pending_.pop_front();
      HttpResponse r = responder ? responder(call) : Reply(200);
      Observe(r);
      cb(std::move(r));
    }
    return n;
  }
  // Answers the oldest pending call with `r`.
  void Answer(HttpResponse r) {
    REQUIRE(!pending_.empty());
    auto [call, cb] = std::move(pending_.front());
    pending_.pop_front();
    Observe(r);
    cb(std::move(r));
  }
  // Pending callbacks are dropped without running, as after a crash.
  void DropPending() { pending_.clear(); }

  size_t pending() const { return pending_.size(); }
  const Call& pending_call(size_t i) const { return pending_.at(i).first; }

  bool configured = true;
  std::function<HttpResponse(const Call&)> responder;
  std::vector<Call> calls;  // every call ever made, in order

 private:
  void Observe(const HttpResponse& r) {
    if (r.status == 0 || r.status == 429 || r.status >= 500) state_ = UpstreamState::kOffline;
    else if (r.status == 401 || r.status == 403) state_ = UpstreamState::kUnauthorized;
    else state_ = UpstreamState::kOnline;
  }
  void Add(Call c, HttpCallback cb) {
    calls.push_back(c);
    pending_.emplace_back(std::move(c), std::move(cb));
  }
  const Clock& clock_;
  std::deque<std::pair<Call, HttpCallback>> pending_;
  UpstreamState state_ = UpstreamState::kOnline;
};

// A store with its writer and a loop. Teardown: writer stopped, last dones
// delivered, Poster closed, loop closed with nothing left open.
struct StoreRig {
  StoreRig() {
    REQUIRE(uv_loop_init(&loop) == 0);
    Open();
  }
  ~StoreRig() { Shutdown(); }

  void Open() {
    store::StoreOptions o;
    o.path = dir.path();
    o.map_size_bytes = 16ull << 20;
    o.clock = &clock;
    auto s = store::Store::Open(o);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    store = std::move(s).value();
    poster = std::make_unique<Poster>(&loop);
    writer = std::make_unique<store::Writer>(store.get(), poster.get());
    writer->Start();
  }

  // Runs the loop until `pred` holds (the writer thread is real, so this may
  // take a few turns); fails after 20 s of wall time.
  void SpinUntil(const std::function<bool()>& pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      uv_run(&loop, UV_RUN_NOWAIT);
      if (pred()) return;
      if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting for the loop");
      std::this_thread::yield();
    }
  }

  // Runs `op` through the Writer and waits for its commit.
  Status Write(store::WriteOp op) {
    bool done = false;
    Status result;
    writer->Submit(std::move(op), [&](Status st) {
      result = st;
      done = true;
    });
    SpinUntil([&] { return done; });
    return result;
  }

  store::UserRecord MakeUser(const std::string& id, const std::string& workos_id) {
    store::UserRecord u;
    u.id = id;
    u.workos_id = workos_id;
    u.email = id + "@example.com";
    u.first_name = "First";
    u.last_name = "Last";
    u.created_at_ms = clock.NowMs();
    return u;
  }

  void PutUser(store::UserRecord u) {
    Status st = Write([u](store::WriteTxn& t) mutable {
      auto before = t.GetUser(u.id);
      if (!before.ok()) return before.status();
      return store::WriteUserChange(t, u, *before, store::ChangeOp::kUpsert, 0);
    });
    INFO(st.ToString());
    REQUIRE(st.ok());
  }

  std::optional<store::UserRecord> GetUser(const std::string& id) {
    auto txn = store->BeginRead();
    REQUIRE(txn.ok());
    auto u = txn->GetUser(id);
    REQUIRE(u.ok());
    return *u;
  }

  // The job's WorkOS id is "user_{user_id}" unless `workos_id` is given.
  uint64_t Enqueue(const std::string& user_id, store::JobOp op, Json fields = Json::object(),
                   const std::string& workos_id = "") {
    store::OutboxJob j;
    j.user_id = user_id;
    j.workos_id = workos_id.empty() ? "user_" + user_id : workos_id;
    j.op = op;
    j.fields = std::move(fields);
    j.created_at_ms = clock.NowMs();
    j.next_attempt_at_ms = clock.NowMs();
    uint64_t id = 0;
    Status st = Write([&id, j](store::WriteTxn& t) -> Status {
      auto r = t.EnqueueJob(j);
      if (!r.ok()) return r.status();
      id = *r;
      return Status::Ok();
    });
    REQUIRE(st.ok());
    return id;
  }

  std::vector<store::OutboxJob> Jobs() {
    auto txn = store->BeginRead();
    REQUIRE(txn.ok());
    auto j = txn->ListJobs(0);
    REQUIRE(j.ok());
    return *j;
  }

  std::vector<store::DeadLetter> DeadLetters() {
    auto txn = store->BeginRead();
    REQUIRE(txn.ok());
    auto d = txn->ListDeadLetters(0);
    REQUIRE(d.ok());
    return *d;
  }

  void Shutdown() {
    if (shut_down) return;
    shut_down = true;
    if (before_shutdown) before_shutdown();
    writer->Stop();
    poster->Close();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }

  TempDir dir;
  FakeClock clock;
  uv_loop_t loop{};
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Poster> poster;
  std::unique_ptr<store::Writer> writer;
  FakeWorkos workos{clock};
  std::function<void()> before_shutdown;  // closes the parts under test
  bool shut_down = false;
};

}  // namespace usersd::sync::testing
