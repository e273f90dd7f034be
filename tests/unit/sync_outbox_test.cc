// Tests of sync/outbox_sender.h: the backoff formula, and the sender's
// scheduling against a fake WorkosApi on a FakeClock with a real store.
// Time moves only when a test advances the clock and calls Tick(); the loop
// is spun only to collect the writer's commits.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>

#include "sync/outbox_sender.h"
#include "sync_fake_workos.h"

namespace usersd::sync {
namespace {

using store::JobOp;
using testing::FakeWorkos;
using testing::Reply;
using testing::StoreRig;

OutboxOptions Opts(int64_t initial = 1000, int64_t max = 30000) {
  OutboxOptions o;
  o.initial_backoff_ms = initial;
  o.max_backoff_ms = max;
  o.max_age_ms = 7LL * 24 * 3600 * 1000;
  o.max_in_flight = 8;
  return o;
}

// A sender on a StoreRig, closed and destroyed in the order the headers
// require. `rnd` is what Random returns (0.5 unless a test changes it).
struct Rig {
  explicit Rig(OutboxOptions o = Opts()) : options(o) {
    base.before_shutdown = [this] {
      if (sender) sender->Close();
    };
  }
  ~Rig() {
    base.Shutdown();
    sender.reset();
  }

  void Start() {
    sender = std::make_unique<OutboxSender>(&base.loop, &base.workos, base.store.get(), base.writer.get(), base.clock,
                                            options, [this] { return rnd; });
    sender->Start();
    Settle();
  }
  // A restart of the daemon: the sender goes away (its calls never answer)
  // and a new one reads the store again.
  void Restart() {
    sender->Close();
    base.workos.DropPending();
    Settle();
    sender.reset();
    Start();
  }
  // Lets the writer commit what the sender submitted and the loop deliver it.
  void Settle() {
    base.SpinUntil([&] { return !sender || sender->stats().pending_writes == 0; });
    uv_run(&base.loop, UV_RUN_NOWAIT);
  }
  // Answers pending calls and settles, until nothing more is pending.
  void DeliverAll() {
    for (int i = 0; i < 100000 && base.workos.pending() > 0; ++i) {
      base.workos.Deliver();
      Settle();
    }
  }
  void Advance(int64_t ms) {
    base.clock.Advance(ms);
    sender->Tick();
    Settle();
  }
  void Kick() {
    sender->Kick();
    sender->Tick();  // what the 0 ms timer would do
    Settle();
  }
  size_t Calls(const std::string& method) {
    size_t n = 0;
    for (const auto& c : base.workos.calls) n += c.method == method;
    return n;
  }

  StoreRig base;
  OutboxOptions options;
  double rnd = 0.5;
  std::unique_ptr<OutboxSender> sender;
};

TEST_CASE("outbox: backoff is full jitter under a doubling cap, Retry-After is a floor", "[sync][outbox]") {
  OutboxOptions o = Opts(1000, 300000);
  // attempt, random, retry-after -> delay
  struct Row {
    uint32_t attempt;
    double r;
    std::optional<int64_t> retry_after;
    int64_t want;
  };
  std::vector<Row> rows = {
      {0, 0.0, {}, 0},
      {0, 0.5, {}, 500},
      {0, 0.9999999, {}, 999},  // strictly below the ceiling
      {1, 0.5, {}, 1000},
      {3, 0.5, {}, 4000},
      {8, 0.5, {}, 128000},
      {9, 0.5, {}, 150000},  // 512 s capped at 300 s
      {30, 0.5, {}, 150000},
      {4000000000u, 0.999, {}, 299700},     // no overflow however many attempts
      {0, 0.5, 7000, 7000},                 // Retry-After above the jitter wins
      {5, 0.5, 100, 16000},                 // below it, the jitter stands
      {0, 0.5, int64_t{1} << 50, 3600000},  // absurd Retry-After is bounded
      {0, 1.0, {}, 999},                    // out-of-range random is clamped
      {0, -3.0, {}, 0},
      {0, std::nan(""), {}, 0},
  };
  for (const auto& row : rows) {
    INFO("attempt " << row.attempt << " r " << row.r);
    CHECK(BackoffDelayMs(o, row.attempt, row.r, row.retry_after) == row.want);
  }
  // Every delay lies in [0, ceiling).
  for (uint32_t a = 0; a < 20; ++a) {
    int64_t ceiling = std::min<int64_t>(300000, int64_t{1000} << a);
    for (double r : {0.0, 0.25, 0.5, 0.75, 0.999999}) {
      int64_t d = BackoffDelayMs(o, a, r, std::nullopt);
      CHECK(d >= 0);
      CHECK(d < ceiling);
    }
  }
  // A max below the initial backoff is the ceiling.
  CHECK(BackoffDelayMs(Opts(1000, 200), 0, 0.5, std::nullopt) == 100);
}

TEST_CASE("outbox: retries a 503 with backoff, then succeeds and deletes the job", "[sync][outbox]") {
  Rig rig;
  uint64_t id = rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "Ada"}});
  int n = 0;
  rig.base.workos.responder = [&](const FakeWorkos::Call&) { return ++n <= 2 ? Reply(503) : Reply(200); };
  int64_t t0 = rig.base.clock.NowMs();
  rig.Start();
  REQUIRE(rig.base.workos.pending() == 1);
  rig.DeliverAll();  // first 503
  REQUIRE(rig.base.workos.calls.size() == 1);
  auto jobs = rig.base.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].id == id);
  CHECK(jobs[0].attempts == 1);
  CHECK(jobs[0].next_attempt_at_ms == t0 + 500);  // attempt 0: 0.5 * 1000
  CHECK(jobs[0].last_error.find("503") != std::string::npos);
  CHECK(rig.sender->stats().next_wakeup_ms == t0 + 500);

  rig.Advance(499);
  CHECK(rig.base.workos.pending() == 0);
  rig.Advance(1);
  REQUIRE(rig.base.workos.pending() == 1);
  rig.DeliverAll();  // second 503
  jobs = rig.base.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].attempts == 2);
  CHECK(jobs[0].next_attempt_at_ms == t0 + 500 + 1000);  // attempt 1: 0.5 * 2000

  rig.Advance(999);
  CHECK(rig.base.workos.pending() == 0);
  rig.Advance(1);
  rig.DeliverAll();  // 200
  CHECK(rig.base.workos.calls.size() == 3);
  CHECK(rig.base.Jobs().empty());
  CHECK(rig.base.DeadLetters().empty());
  auto s = rig.sender->stats();
  CHECK(s.delivered == 1);
  CHECK(s.sends_by_status[503] == 2);
  CHECK(s.sends_by_status[200] == 1);
  CHECK_FALSE(s.paused);
}

TEST_CASE("outbox: honours Retry-After for the job and for everything else", "[sync][outbox]") {
  Rig rig;
  rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "Ada"}});
  rig.base.workos.responder = [&](const FakeWorkos::Call&) { return Reply(429, "{}", 5000); };
  int64_t t0 = rig.base.clock.NowMs();
  rig.Start();
  rig.DeliverAll();
  REQUIRE(rig.base.workos.calls.size() == 1);
  CHECK(rig.base.Jobs()[0].next_attempt_at_ms == t0 + 5000);

  // Another user's job arrives; it waits for the Retry-After too.
  rig.base.workos.responder = nullptr;
  rig.base.Enqueue("u2", JobOp::kDelete);
  rig.Kick();
  CHECK(rig.base.workos.pending() == 0);
  CHECK(rig.sender->stats().paused_until_ms >= t0 + 5000);
  rig.Advance(4999);
  CHECK(rig.base.workos.pending() == 0);
  rig.Advance(1);
  CHECK(rig.base.workos.pending() >= 1);
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
  for (size_t i = 1; i < rig.base.workos.calls.size(); ++i) CHECK(rig.base.workos.calls[i].at_ms >= t0 + 5000);
}

TEST_CASE("outbox: a 400 dead-letters the job and the user's next job proceeds", "[sync][outbox]") {
  Rig rig;
  uint64_t bad = rig.base.Enqueue("u1", JobOp::kUpdate, {{"email", "taken@example.com"}});
  rig.base.Enqueue("u1", JobOp::kDelete);
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    return c.method == "PUT" ? Reply(400, R"({"code":"email_not_available"})") : Reply(200, "");
  };
  rig.Start();
  rig.DeliverAll();
  REQUIRE(rig.base.workos.calls.size() == 2);
  CHECK(rig.base.workos.calls[0].method == "PUT");
  CHECK(rig.base.workos.calls[1].method == "DELETE");
  CHECK(rig.base.Jobs().empty());
  auto dead = rig.base.DeadLetters();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].job.id == bad);
  CHECK(dead[0].status == 400);
  CHECK(dead[0].body.find("email_not_available") != std::string::npos);
  CHECK(rig.sender->stats().dead_lettered == 1);
}

TEST_CASE("outbox: a PUT answered 200 without taking a field becomes a dead letter naming the field",
          "[sync][outbox]") {
  Rig rig;
  uint64_t job = rig.base.Enqueue("u1", JobOp::kUpdate, {{"email", "New@Example.com"}, {"first_name", "Ada"}});
  rig.base.Enqueue("u2", JobOp::kUpdate, {{"email", "Two@Example.com"}});
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    // u1: the server kept the old email (took the name); u2: it lower-cased
    // the email, which is the same address.
    if (c.workos_id == "user_u1")
      return Reply(200, R"({"object":"user","id":"user_u1","email":"old@example.com","first_name":"Ada"})");
    return Reply(200, R"({"object":"user","id":"user_u2","email":"two@example.com","first_name":"T"})");
  };
  rig.Start();
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
  auto dead = rig.base.DeadLetters();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].job.id == job);
  CHECK(dead[0].status == 200);
  Json body = Json::parse(dead[0].body);
  REQUIRE(body["fields"].size() == 1);
  CHECK(body["fields"][0]["field"] == "email");
  CHECK(body["fields"][0]["sent"] == "New@Example.com");
  CHECK(body["fields"][0]["answered"] == "old@example.com");
  CHECK(body["error"].get<std::string>().find("email") != std::string::npos);
  CHECK(rig.sender->stats().not_taken == 1);
  CHECK(rig.sender->stats().delivered == 1);  // u2's
}

TEST_CASE("outbox: DELETE answered 404 counts as delivered", "[sync][outbox]") {
  Rig rig;
  rig.base.Enqueue("u1", JobOp::kDelete);
  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(404, R"({"code":"entity_not_found"})"); };
  rig.Start();
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
  CHECK(rig.base.DeadLetters().empty());
}

TEST_CASE("outbox: consecutive updates of a user merge into one PUT, later fields win", "[sync][outbox]") {
  Rig rig;
  std::vector<uint64_t> ids;
  ids.push_back(rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "A"}}));
  ids.push_back(rig.base.Enqueue("u1", JobOp::kUpdate, {{"last_name", "B"}}));
  ids.push_back(rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "C"}}));
  ids.push_back(rig.base.Enqueue("u1", JobOp::kDelete));
  ids.push_back(rig.base.Enqueue("u1", JobOp::kUpdate, {{"email", "e@example.com"}}));
  rig.Start();
  REQUIRE(rig.base.workos.pending() == 1);
  rig.DeliverAll();
  const auto& calls = rig.base.workos.calls;
  REQUIRE(calls.size() == 3);
  CHECK(calls[0].method == "PUT");
  CHECK(calls[0].workos_id == "user_u1");
  CHECK(calls[0].fields == Json{{"first_name", "C"}, {"last_name", "B"}});
  CHECK(calls[1].method == "DELETE");
  CHECK(calls[2].method == "PUT");
  CHECK(calls[2].fields == Json{{"email", "e@example.com"}});
  CHECK(rig.base.Jobs().empty());
  CHECK(rig.sender->stats().delivered == 5);
}

TEST_CASE("outbox: never two requests of one user in flight; users go in parallel up to the limit", "[sync][outbox]") {
  OutboxOptions o = Opts();
  o.max_in_flight = 4;
  Rig rig(o);
  rig.base.Enqueue("a", JobOp::kUpdate, {{"first_name", "1"}});
  rig.base.Enqueue("a", JobOp::kDelete);
  rig.base.Enqueue("a", JobOp::kUpdate, {{"first_name", "2"}});
  for (int i = 0; i < 10; ++i) rig.base.Enqueue("u" + std::to_string(i), JobOp::kDelete);
  rig.Start();
  size_t max_pending = 0;
  bool one_per_user = true;
  for (int round = 0; round < 100 && rig.base.workos.pending() > 0; ++round) {
    max_pending = std::max(max_pending, rig.base.workos.pending());
    std::set<std::string> users;
    for (size_t i = 0; i < rig.base.workos.pending(); ++i) {
      one_per_user = users.insert(rig.base.workos.pending_call(i).workos_id).second && one_per_user;
    }
    rig.base.workos.Answer(Reply(200, ""));  // one at a time
    rig.Settle();
  }
  CHECK(one_per_user);
  CHECK(max_pending == 4);
  std::vector<std::string> a_calls;
  for (const auto& c : rig.base.workos.calls) {
    if (c.workos_id == "user_a") a_calls.push_back(c.method);
  }
  CHECK(a_calls == std::vector<std::string>{"PUT", "DELETE", "PUT"});
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: jobs of one WorkOS user queued under two local ids (a re-key) go one at a time, in order",
          "[sync][outbox][identity]") {
  // A re-key moves a user's stored jobs to the new id in one transaction,
  // but jobs already in the sender's window still carry the old id, and
  // jobs written after it carry the new one.
  Rig rig;
  rig.base.Enqueue("old-id", JobOp::kUpdate, {{"first_name", "A"}}, "user_w");
  rig.base.Enqueue("new-id", JobOp::kDelete, Json::object(), "user_w");
  rig.base.Enqueue("new-id", JobOp::kUpdate, {{"first_name", "B"}}, "user_w");
  rig.base.Enqueue("other", JobOp::kDelete);
  rig.Start();
  size_t max_for_w = 0;
  for (int round = 0; round < 100 && rig.base.workos.pending() > 0; ++round) {
    size_t for_w = 0;
    for (size_t i = 0; i < rig.base.workos.pending(); ++i)
      for_w += rig.base.workos.pending_call(i).workos_id == "user_w";
    max_for_w = std::max(max_for_w, for_w);
    rig.base.workos.Answer(Reply(200, ""));
    rig.Settle();
  }
  CHECK(max_for_w == 1);
  std::vector<std::string> w_calls;
  for (const auto& c : rig.base.workos.calls) {
    if (c.workos_id == "user_w") w_calls.push_back(c.method + (c.fields.is_object() ? c.fields.dump() : ""));
  }
  CHECK(w_calls == std::vector<std::string>{R"(PUT{"first_name":"A"})", "DELETE", R"(PUT{"first_name":"B"})"});
  CHECK(rig.Calls("DELETE") == 2);  // "other" went in parallel
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: pauses as a whole while WorkOS is unreachable, one probe at a time, then drains", "[sync][outbox]") {
  Rig rig(Opts(1000, 30000));
  for (int i = 0; i < 200; ++i) rig.base.Enqueue("u" + std::to_string(i), JobOp::kUpdate, {{"first_name", "x"}});
  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(0); };
  rig.Start();
  CHECK(rig.base.workos.pending() == 8);
  rig.DeliverAll();  // the 8 in flight fail; the sender pauses
  CHECK(rig.sender->stats().paused);
  // Ten minutes of outage, looked at every 100 ms.
  size_t max_pending = 0;
  for (int step = 0; step < 6000; ++step) {
    rig.base.clock.Advance(100);
    rig.sender->Tick();
    max_pending = std::max(max_pending, rig.base.workos.pending());
    rig.base.workos.Deliver();
    rig.Settle();
  }
  size_t during = rig.base.workos.calls.size();
  CHECK(max_pending == 1);  // probes only, one at a time
  // 8 at first, then one probe per pause of 0.5, 1, 2, 4, 8 and then 15 s
  // (half of 30 s at random 0.5): 5 + 39 probes over ten minutes, where
  // retrying each job on its own would have cost thousands of requests.
  CHECK(during <= 8 + 46);
  CHECK(during >= 8 + 40);
  CHECK(rig.sender->stats().paused);
  CHECK(rig.base.Jobs().size() == 200);

  // WorkOS is back: the next probe succeeds and everything is delivered.
  rig.base.workos.responder = nullptr;
  for (int step = 0; step < 600 && !rig.base.Jobs().empty(); ++step) {
    rig.base.clock.Advance(100);
    rig.sender->Tick();
    rig.DeliverAll();
  }
  CHECK(rig.base.Jobs().empty());
  CHECK_FALSE(rig.sender->stats().paused);
  CHECK(rig.sender->stats().delivered == 200);
}

TEST_CASE("outbox: a pause ends early when other traffic finds WorkOS online", "[sync][outbox]") {
  Rig rig(Opts(1000, 300000));
  for (int i = 0; i < 3; ++i) rig.base.Enqueue("u" + std::to_string(i), JobOp::kDelete);
  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(503); };
  rig.Start();
  rig.DeliverAll();
  // Grow the pause with failing probes.
  for (int i = 0; i < 8; ++i) {
    rig.base.clock.Advance(200000);
    rig.sender->Tick();
    rig.DeliverAll();
  }
  REQUIRE(rig.sender->stats().paused);
  // The events poller (say) gets an answer: the upstream state is online.
  rig.base.workos.responder = nullptr;
  rig.base.workos.ListEvents(std::nullopt, std::nullopt, 100, [](HttpResponse&&) {});
  rig.base.workos.Deliver();
  rig.Advance(1000);  // the once-a-second check
  CHECK_FALSE(rig.sender->stats().paused);
}

TEST_CASE("outbox: a job older than max_age goes to the dead letters without another request", "[sync][outbox]") {
  OutboxOptions o = Opts(1000, 5000);
  o.max_age_ms = 60000;
  Rig rig(o);
  rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "x"}});
  rig.base.Enqueue("u2", JobOp::kDelete);
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    return c.workos_id == "user_u1" ? Reply(503, "busy") : Reply(200, "");
  };
  rig.Start();
  rig.DeliverAll();
  for (int i = 0; i < 70; ++i) {
    rig.Advance(1000);
    rig.DeliverAll();
  }
  CHECK(rig.base.Jobs().empty());
  auto dead = rig.base.DeadLetters();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].job.user_id == "u1");
  CHECK(dead[0].status == 503);  // the last status seen
  CHECK(dead[0].body.find("max_age") != std::string::npos);
  size_t sent = rig.Calls("PUT");
  rig.Advance(100000);
  CHECK(rig.Calls("PUT") == sent);
}

TEST_CASE("outbox: a job already too old at start is dead-lettered with no request", "[sync][outbox]") {
  OutboxOptions o = Opts();
  o.max_age_ms = 60000;
  Rig rig(o);
  rig.base.Enqueue("u1", JobOp::kDelete);
  rig.base.clock.Advance(61000);
  rig.Start();
  CHECK(rig.base.workos.calls.empty());
  CHECK(rig.base.Jobs().empty());
  REQUIRE(rig.base.DeadLetters().size() == 1);
  CHECK(rig.base.DeadLetters()[0].status == 0);
}

TEST_CASE("outbox: backoff state survives a restart, and pending jobs are delivered after it", "[sync][outbox]") {
  Rig rig;
  rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "x"}});
  rig.base.Enqueue("u2", JobOp::kUpdate, {{"first_name", "y"}});
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    return c.workos_id == "user_u1" ? Reply(503) : Reply(200);
  };
  int64_t t0 = rig.base.clock.NowMs();
  rig.Start();
  // u1 fails (due at t0 + 500); u2's request is lost in the "crash".
  REQUIRE(rig.base.workos.pending() == 2);
  rig.base.workos.Answer(Reply(503));
  rig.Settle();
  rig.Restart();
  // u2 goes out at once after the restart; u1 waits for its persisted time.
  REQUIRE(rig.base.workos.pending() == 1);
  CHECK(rig.base.workos.pending_call(0).workos_id == "user_u2");
  rig.base.workos.responder = nullptr;
  rig.DeliverAll();
  CHECK(rig.base.Jobs().size() == 1);
  rig.base.clock.Advance(499 - (rig.base.clock.NowMs() - t0));
  rig.sender->Tick();
  CHECK(rig.base.workos.pending() == 0);
  rig.Advance(1);
  REQUIRE(rig.base.workos.pending() == 1);
  CHECK(rig.base.workos.pending_call(0).workos_id == "user_u1");
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: Kick picks up jobs committed after start", "[sync][outbox]") {
  Rig rig;
  rig.Start();
  CHECK(rig.base.workos.calls.empty());
  rig.base.Enqueue("u1", JobOp::kDelete);
  rig.base.Enqueue("u2", JobOp::kDelete);
  rig.Kick();
  CHECK(rig.base.workos.pending() == 2);
  rig.DeliverAll();
  rig.base.Enqueue("u3", JobOp::kDelete);
  rig.Kick();
  rig.DeliverAll();
  CHECK(rig.base.workos.calls.size() == 3);
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: jobs beyond the in-memory window are read as it drains", "[sync][outbox]") {
  OutboxOptions o = Opts();
  o.max_in_flight = 256;  // fewer rounds of commits
  Rig rig(o);
  const int n = static_cast<int>(OutboxSender::kWindow) + 1500;
  REQUIRE(rig.base
              .Write([n, &rig](store::WriteTxn& t) -> Status {
                for (int i = 0; i < n; ++i) {
                  store::OutboxJob j;
                  j.user_id = "u" + std::to_string(i);
                  j.workos_id = "user_" + j.user_id;
                  j.op = JobOp::kDelete;
                  j.created_at_ms = rig.base.clock.NowMs();
                  auto r = t.EnqueueJob(j);
                  if (!r.ok()) return r.status();
                }
                return Status::Ok();
              })
              .ok());
  rig.Start();
  CHECK(rig.sender->stats().depth == OutboxSender::kWindow);
  size_t max_depth = 0;
  int i = 0;
  for (; i < 100000 && rig.sender->stats().delivered < static_cast<uint64_t>(n); ++i) {
    max_depth = std::max<size_t>(max_depth, rig.sender->stats().depth);
    rig.base.workos.Deliver();
    rig.Settle();
    rig.sender->Tick();  // the 0 ms refill timer
  }
  CHECK(max_depth <= OutboxSender::kWindow);
  CHECK(rig.base.workos.calls.size() == static_cast<size_t>(n));
  CHECK(rig.base.Jobs().empty());
  CHECK(i < 1000);
}

TEST_CASE("outbox: nothing is sent while WorkOS is unconfigured", "[sync][outbox]") {
  Rig rig;
  rig.base.workos.configured = false;
  rig.base.Enqueue("u1", JobOp::kDelete);
  rig.Start();
  rig.Advance(60000);
  CHECK(rig.base.workos.calls.empty());
  rig.base.workos.configured = true;
  rig.sender->SetOptions(rig.options);
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: a fetch job fills in what provisioning left empty", "[sync][outbox]") {
  Rig rig;
  auto u = rig.base.MakeUser("u1", "user_u1");
  u.email.clear();
  u.first_name.clear();
  u.last_name = "Chosen";  // set locally after provisioning (its job below): kept
  u.profile_pending = true;
  rig.base.PutUser(u);
  uint64_t before_txid = rig.base.GetUser("u1")->txid;
  rig.base.Enqueue("u1", JobOp::kFetch);
  rig.base.Enqueue("u1", JobOp::kUpdate, {{"last_name", "Chosen"}});
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    // The fetch, the user's update, then the job that publishes the id
    // (the fetch showed WorkOS without an external_id: no read first).
    CHECK((c.method == "GET" || c.method == "PUT"));
    std::string last = c.method == "GET" ? "Lovelace" : "Chosen";
    return Reply(200, R"({"object":"user","id":"user_u1","email":"ada@example.com","first_name":"Ada",
                          "last_name":")" +
                          last + R"(","profile_picture_url":"https://img.example.com/a.png"})");
  };
  rig.Start();
  rig.DeliverAll();
  auto after = rig.base.GetUser("u1");
  REQUIRE(after);
  CHECK(after->email == "ada@example.com");
  CHECK(after->first_name == "Ada");
  CHECK(after->last_name == "Chosen");
  CHECK(after->avatar_url == std::optional<std::string>("https://img.example.com/a.png"));
  CHECK(after->profile_picture_url == std::optional<std::string>("https://img.example.com/a.png"));
  CHECK_FALSE(after->profile_pending);
  CHECK(after->txid > before_txid);
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: a fetch of a user WorkOS does not know is a dead letter", "[sync][outbox]") {
  Rig rig;
  auto u = rig.base.MakeUser("u1", "user_u1");
  u.profile_pending = true;
  rig.base.PutUser(u);
  rig.base.Enqueue("u1", JobOp::kFetch);
  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(404, R"({"code":"entity_not_found"})"); };
  rig.Start();
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
  REQUIRE(rig.base.DeadLetters().size() == 1);
  CHECK(rig.base.DeadLetters()[0].status == 404);
}

// The user WorkOS would answer a PUT with: the body's fields over a base.
std::string Answer(const FakeWorkos::Call& c, Json base = Json::object()) {
  Json u = {{"object", "user"}, {"id", c.workos_id}, {"email", "e@example.com"},  {"first_name", "F"},
            {"last_name", "L"}, {"external_id", ""}, {"metadata", Json::object()}};
  u.update(base);
  if (c.fields.is_object()) {
    for (auto it = c.fields.begin(); it != c.fields.end(); ++it) {
      if (it.key() == "metadata") {
        for (auto m = it->begin(); m != it->end(); ++m) u["metadata"][m.key()] = *m;
      } else {
        u[it.key()] = *it;
      }
    }
  }
  return u.dump();
}

TEST_CASE("outbox: a shared-field write is one PUT of the versioned document, with no read first",
          "[sync][outbox][metadata]") {
  Rig rig;
  auto u = rig.base.MakeUser("u1", "user_u1");
  u.timezone = "UTC";
  u.shared_versions[0] = store::Version{1000, 0, 7};
  u.external_id = u.id;
  rig.base.PutUser(u);
  rig.base.Enqueue("u1", JobOp::kUpdate, {{"doc", true}, {"first_name", "Ada"}});
  rig.base.workos.responder = [](const FakeWorkos::Call& c) { return Reply(200, Answer(c)); };
  rig.Start();
  rig.DeliverAll();
  REQUIRE(rig.base.workos.calls.size() == 1);
  const auto& put = rig.base.workos.calls[0];
  CHECK(put.method == "PUT");
  CHECK(put.fields["first_name"] == "Ada");
  auto doc = domain::DecodeDocument(put.fields["metadata"], rig.options.sync->metadata);
  REQUIRE(doc.ok());
  CHECK((*doc)->values[0] == Json("UTC"));
  CHECK((*doc)->versions[0] == store::Version{1000, 0, 7});
  CHECK(rig.base.Jobs().empty());
  CHECK(rig.base.GetUser("u1")->workos_versions[0] == store::Version{1000, 0, 7});
  CHECK(rig.sender->stats().reads_first == 0);
}

TEST_CASE("outbox: a write during the flight is sent in the next request, never two at once",
          "[sync][outbox][metadata]") {
  Rig rig;
  auto u = rig.base.MakeUser("u1", "user_u1");
  u.external_id = u.id;
  rig.base.PutUser(u);
  uint64_t job = rig.base.Enqueue("u1", JobOp::kUpdate, {{"first_name", "Ada"}});
  rig.base.workos.responder = [](const FakeWorkos::Call& c) { return Reply(200, Answer(c)); };
  rig.Start();
  REQUIRE(rig.base.workos.pending() == 1);
  // The write merges into the job while its PUT is out.
  REQUIRE(rig.base
              .Write([job](store::WriteTxn& t) -> Status {
                auto j = t.GetJob(job);
                store::OutboxJob merged = **j;
                merged.fields["last_name"] = "Byron";
                return t.UpdateJob(merged);
              })
              .ok());
  rig.Kick();
  CHECK(rig.base.workos.pending() == 1);  // still one: the user is busy
  rig.base.workos.Deliver();
  rig.Settle();
  REQUIRE(rig.base.workos.pending() == 1);  // the rest, at once
  CHECK(rig.base.workos.pending_call(0).fields == Json{{"last_name", "Byron"}});
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
  CHECK(rig.sender->stats().kept == 1);
  CHECK(rig.base.GetUser("u1")->last_name == "Byron");
}

TEST_CASE("outbox: 401 and 403 wait with backoff and pause the sender; nothing is dead-lettered", "[sync][outbox]") {
  Rig rig;
  rig.base.Enqueue("u1", JobOp::kFetch);
  rig.base.Enqueue("u2", JobOp::kUpdate, {{"first_name", "Ada"}});
  int status = 401;
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    return status == 200 ? Reply(200, Answer(c)) : Reply(status, R"({"message":"Unauthorized"})");
  };
  rig.Start();
  rig.DeliverAll();
  CHECK(rig.base.DeadLetters().empty());
  CHECK(rig.base.Jobs().size() == 2);
  CHECK(rig.sender->stats().paused);
  status = 403;
  rig.Advance(60 * 1000);
  rig.DeliverAll();
  CHECK(rig.base.DeadLetters().empty());
  size_t calls = rig.base.workos.calls.size();
  CHECK(calls <= 4);  // one probe at a time while the key is refused
  // A week and more with the key refused: still nothing dead-lettered
  // (max_age counts against the change, not against a refused key).
  for (int i = 0; i < 30; ++i) {
    rig.Advance(6 * 3600 * 1000LL);
    rig.DeliverAll();
  }
  CHECK(rig.base.DeadLetters().empty());
  CHECK(rig.base.Jobs().size() == 2);
  status = 200;        // the key was fixed
  rig.sender->Kick();  // what the daemon does when WorkOS accepts the key again
  for (int i = 0; i < 10 && !rig.base.Jobs().empty(); ++i) {
    rig.Advance(60 * 1000);
    rig.DeliverAll();
  }
  CHECK(rig.base.Jobs().empty());
  CHECK(rig.base.DeadLetters().empty());
}

TEST_CASE("outbox: a job queued without a Kick is still found, within ten seconds", "[sync][outbox]") {
  Rig rig;
  rig.Start();
  rig.base.Enqueue("u1", JobOp::kDelete);  // no Kick: a part that forgot to notify
  rig.Advance(9999);
  CHECK(rig.base.workos.pending() == 0);
  rig.Advance(1);
  CHECK(rig.base.workos.pending() == 1);
  rig.DeliverAll();
  CHECK(rig.base.Jobs().empty());
}

TEST_CASE("outbox: requests are paced by the host's budget", "[sync][outbox]") {
  OutboxOptions o = Opts();
  o.budget = std::make_shared<RequestBudget>(2);  // two a second
  Rig rig(o);
  for (int i = 0; i < 6; ++i) rig.base.Enqueue("u" + std::to_string(i), JobOp::kDelete);
  rig.Start();
  CHECK(rig.base.workos.pending() == 2);  // the burst a second holds
  rig.DeliverAll();
  CHECK(rig.base.workos.calls.size() == 2);
  rig.Advance(499);
  CHECK(rig.base.workos.calls.size() == 2);
  rig.Advance(1);
  CHECK(rig.base.workos.calls.size() == 3);
  rig.DeliverAll();
  rig.Advance(1500);  // the bucket holds a second's worth: two more
  rig.DeliverAll();
  CHECK(rig.base.workos.calls.size() == 5);
  rig.Advance(500);
  rig.DeliverAll();
  CHECK(rig.base.workos.calls.size() == 6);
  CHECK(rig.base.Jobs().empty());
}

}  // namespace
}  // namespace usersd::sync

// ------------------------------------------------ read-modify-write (4b)

namespace usersd::sync {
namespace {}  // namespace
}  // namespace usersd::sync
