// Tests of sync/reconciler.h against a fake WorkosApi listing users, with a
// real store: a full run repairs silent renames and silent deletes, keeps
// pending local changes, paces its requests, retries, resumes after a
// restart, and hands the feed position back to the events poller; one user
// can be resynced on its own.
#include <catch2/catch.hpp>

#include "common/timefmt.h"
#include "store/meta_keys.h"
#include "sync/events_poller.h"
#include "sync/reconciler.h"
#include "sync_fake_workos.h"

namespace usersd::sync {
namespace {

using testing::FakeWorkos;
using testing::Reply;
using testing::StoreRig;

// WorkOS users, listed oldest first the way GET /user_management/users
// answers order=asc: after = user id, list_metadata.after = the last id
// returned when more follow, null at the end.
struct Directory {
  std::vector<Json> users;

  void Add(const std::string& id, const std::string& email, const std::string& first) {
    users.push_back(Json{{"object", "user"},
                         {"id", id},
                         {"email", email},
                         {"first_name", first},
                         {"last_name", "L"},
                         {"profile_picture_url", nullptr},
                         {"created_at", "2026-01-01T00:00:00.000Z"},
                         {"updated_at", "2026-01-01T00:00:00.000Z"}});
  }
  HttpResponse List(const FakeWorkos::Call& c) const {
    Json data = Json::array();
    size_t i = 0;
    if (c.after) {
      while (i < users.size() && users[i]["id"].get<std::string>() <= *c.after) ++i;
    }
    for (; i < users.size() && static_cast<int>(data.size()) < c.limit; ++i) data.push_back(users[i]);
    bool more = i < users.size();
    Json after = more ? data.back()["id"] : Json(nullptr);
    return Reply(200, Json{{"object", "list"}, {"data", data}, {"list_metadata", {{"after", after}}}}.dump());
  }
  HttpResponse Get(const std::string& id) const {
    for (const auto& u : users)
      if (u["id"] == id) return Reply(200, u.dump());
    return Reply(404, R"({"code":"entity_not_found"})");
  }
};

struct Rig {
  Rig() {
    base.before_shutdown = [this] {
      if (rec) rec->Close();
    };
    base.workos.responder = [this](const FakeWorkos::Call& c) {
      if (c.method == "USERS") return dir.List(c);
      if (c.method == "GET") return dir.Get(c.workos_id);
      return Reply(200, "{}");
    };
    opt.requests_per_second = 1000;  // 1 ms apart unless a test says otherwise
    opt.interval_ms = 0;
    opt.page_limit = 2;
    opt.sweep_batch = 2;
  }
  ~Rig() {
    base.Shutdown();
    rec.reset();
  }
  void Start() {
    rec = std::make_unique<Reconciler>(&base.loop, &base.workos, base.store.get(), base.writer.get(), base.clock, opt);
    rec->SetOnFinished([this] { ++finished; });
    rec->Start();
  }
  void Restart() {
    rec->Close();
    base.workos.DropPending();
    uv_run(&base.loop, UV_RUN_NOWAIT);
    base.SpinUntil([] { return true; });
    rec.reset();
    Start();
  }
  // Answers requests (moving the fake clock past each pacing gap) until the
  // run is over.
  void RunToEnd() {
    base.SpinUntil([&] {
      if (base.workos.Deliver() == 0) base.clock.Advance(1);
      return !rec->running();
    });
  }
  std::optional<store::UserRecord> ByWorkosId(const std::string& wid) {
    auto txn = base.store->BeginRead();
    REQUIRE(txn.ok());
    auto u = txn->FindByWorkosId(wid);
    REQUIRE(u.ok());
    return *u;
  }
  std::optional<std::string> Meta(std::string_view key) {
    auto txn = base.store->BeginRead();
    REQUIRE(txn.ok());
    auto v = txn->GetMeta(key);
    REQUIRE(v.ok());
    return *v;
  }
  size_t Calls(const std::string& method) {
    size_t n = 0;
    for (const auto& c : base.workos.calls) n += c.method == method;
    return n;
  }

  StoreRig base;
  Directory dir;
  ReconcileOptions opt;
  int finished = 0;
  std::unique_ptr<Reconciler> rec;
};

TEST_CASE("reconcile: a full run applies renames, creates missing users and soft-deletes what WorkOS lost",
          "[sync][reconcile]") {
  Rig rig;
  // Local: a user renamed in WorkOS without an event, one deleted in WorkOS
  // without an event, and one with an undelivered local change.
  auto renamed = rig.base.MakeUser("local-renamed", "user_1");
  renamed.first_name = "OldName";
  rig.base.PutUser(renamed);
  auto gone = rig.base.MakeUser("local-gone", "user_gone");
  rig.base.PutUser(gone);
  auto pending = rig.base.MakeUser("local-pending", "user_3");
  pending.first_name = "LocalFirst";
  rig.base.PutUser(pending);
  rig.base.Enqueue("local-pending", store::JobOp::kUpdate, {{"first_name", "LocalFirst"}});
  rig.base.clock.Advance(1000);  // the run starts after these users existed

  rig.dir.Add("user_1", "one@example.com", "NewName");
  rig.dir.Add("user_2", "two@example.com", "Two");  // never seen here
  rig.dir.Add("user_3", "three@example.com", "RemoteFirst");
  rig.dir.Add("user_4", "four@example.com", "Four");
  rig.dir.Add("user_5", "five@example.com", "Five");

  rig.Start();
  auto run = rig.rec->StartAll("admin");
  REQUIRE(run.ok());
  CHECK(rig.rec->running());
  rig.RunToEnd();

  CHECK(rig.ByWorkosId("user_1")->first_name == "NewName");
  CHECK(rig.ByWorkosId("user_1")->id == "local-renamed");
  REQUIRE(rig.ByWorkosId("user_2"));
  CHECK(rig.ByWorkosId("user_2")->email == "two@example.com");
  CHECK(rig.ByWorkosId("user_3")->first_name == "LocalFirst");  // pending change wins until delivered
  CHECK(rig.ByWorkosId("user_3")->email == "three@example.com");
  CHECK_FALSE(rig.ByWorkosId("user_gone")->live());
  CHECK(rig.ByWorkosId("user_5")->live());

  ReconcileStatus s = rig.rec->status();
  CHECK_FALSE(s.running);
  CHECK(s.users_seen == 5);
  CHECK(s.users_deleted == 1);
  CHECK(s.users_not_listed == 0);
  // The one user the listing did not show was asked for before its delete.
  CHECK(rig.Calls("GET") == 1);
  CHECK(s.pages == 3);  // 2 + 2 + 1
  CHECK(s.finished_at_ms >= s.started_at_ms);
  CHECK(rig.finished == 1);
  // Every list request asks for oldest first, after the last id.
  CHECK(rig.Calls("USERS") == 3);
  CHECK(rig.base.workos.calls[1].after == std::optional<std::string>("user_2"));
  // The feed goes on from the run's start; the per-user marks are gone.
  CHECK(rig.Meta(store::kMetaEventsCursor) == std::optional<std::string>(""));
  CHECK(rig.Meta(store::kMetaEventsRangeStart) == std::optional<std::string>(std::to_string(s.started_at_ms)));
  CHECK_FALSE(rig.Meta("rcs:user_1").has_value());

  // A second run finds nothing to do.
  uint64_t txid;
  {
    auto txn = rig.base.store->BeginRead();
    txid = txn->LastTxid();
  }
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  auto txn = rig.base.store->BeginRead();
  CHECK(txn->LastTxid() == txid);
}

TEST_CASE("reconcile: a listing that ends early deletes nobody WorkOS still has", "[sync][reconcile]") {
  // A server that answers the page after a user deleted meanwhile with the
  // end of the list: everyone after that point is missing from the listing.
  Rig rig;
  for (int i = 0; i < 6; ++i) {
    rig.base.PutUser(rig.base.MakeUser("local-" + std::to_string(i), "user_" + std::to_string(i)));
    rig.dir.Add("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com", "Remote");
  }
  rig.base.PutUser(rig.base.MakeUser("local-gone", "user_gone"));  // WorkOS really lost this one
  rig.base.clock.Advance(1000);
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    if (c.method == "USERS" && c.after && *c.after >= "user_1") {
      return Reply(200, R"({"object":"list","data":[],"list_metadata":{"after":null}})");
    }
    if (c.method == "USERS") return rig.dir.List(c);
    return rig.dir.Get(c.workos_id);
  };
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();

  for (int i = 0; i < 6; ++i) {
    INFO(i);
    auto u = rig.ByWorkosId("user_" + std::to_string(i));
    REQUIRE(u);
    CHECK(u->live());
    CHECK(u->first_name == "Remote");  // applied from the GET as from the listing
  }
  CHECK_FALSE(rig.ByWorkosId("user_gone")->live());
  ReconcileStatus s = rig.rec->status();
  CHECK(s.users_seen == 2);
  CHECK(s.users_not_listed == 4);
  CHECK(s.users_deleted == 1);
  CHECK(rig.Calls("GET") == 5);
  CHECK(rig.finished == 1);
}

TEST_CASE("reconcile: a failed confirmation is retried, or ends the run without deleting", "[sync][reconcile]") {
  Rig rig;
  rig.opt.initial_backoff_ms = 50;
  rig.base.PutUser(rig.base.MakeUser("local-a", "user_a"));
  rig.base.PutUser(rig.base.MakeUser("local-b", "user_b"));
  rig.base.clock.Advance(1000);
  int unavailable = 1;
  bool forbidden = false;
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    if (c.method == "USERS") return rig.dir.List(c);  // lists nobody
    if (forbidden) return Reply(400, R"({"code":"bad_request"})");
    if (unavailable-- > 0) return Reply(503);
    return rig.dir.Get(c.workos_id);  // 404: both are gone
  };
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().users_deleted == 2);
  CHECK(rig.rec->status().last_error.empty());  // the 503 was retried away
  CHECK(rig.Calls("GET") == 3);                 // the 503, then one GET per user
  CHECK(rig.finished == 1);

  rig.base.PutUser(rig.base.MakeUser("local-c", "user_c"));
  rig.base.clock.Advance(1000);
  forbidden = true;
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  CHECK(rig.ByWorkosId("user_c")->live());
  CHECK(rig.rec->status().last_error.find("400") != std::string::npos);
  CHECK(rig.finished == 1);
}

TEST_CASE("reconcile: users created after the run started are not swept", "[sync][reconcile]") {
  Rig rig;
  rig.dir.Add("user_1", "one@example.com", "One");
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  // Provisioned here while the listing ran (WorkOS will list it next time).
  auto fresh = rig.base.MakeUser("local-fresh", "user_fresh");
  fresh.created_at_ms = rig.base.clock.NowMs() + 5;
  rig.base.PutUser(fresh);
  rig.RunToEnd();
  CHECK(rig.ByWorkosId("user_fresh")->live());
}

TEST_CASE("reconcile: list requests are paced at requests_per_second", "[sync][reconcile]") {
  Rig rig;
  rig.opt.requests_per_second = 10;  // 100 ms apart
  for (int i = 0; i < 6; ++i) rig.dir.Add("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com", "U");
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.base.SpinUntil([&] { return rig.base.workos.pending() == 1; });
  rig.base.workos.Deliver();
  // The page is applied, then the next request waits for the fake clock.
  rig.base.SpinUntil([&] { return rig.rec->status().pages == 1; });
  for (int i = 0; i < 20; ++i) uv_run(&rig.base.loop, UV_RUN_NOWAIT);
  CHECK(rig.base.workos.pending() == 0);
  rig.base.clock.Advance(99);
  for (int i = 0; i < 20; ++i) uv_run(&rig.base.loop, UV_RUN_NOWAIT);
  CHECK(rig.base.workos.pending() == 0);
  rig.base.clock.Advance(1);
  rig.base.SpinUntil([&] { return rig.base.workos.pending() == 1; });
  CHECK(rig.base.workos.pending_call(0).after == std::optional<std::string>("user_1"));
  rig.RunToEnd();
  // 3 requests over 200 ms of fake time at least.
  const auto& calls = rig.base.workos.calls;
  REQUIRE(calls.size() == 3);
  CHECK(calls[1].at_ms - calls[0].at_ms >= 100);
  CHECK(calls[2].at_ms - calls[1].at_ms >= 100);
}

TEST_CASE("reconcile: a 503 is retried with backoff on the same page; a 400 ends the run with the error",
          "[sync][reconcile]") {
  Rig rig;
  rig.opt.initial_backoff_ms = 50;
  for (int i = 0; i < 3; ++i) rig.dir.Add("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com", "U");
  int failures = 1;
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    if (c.after && failures-- > 0) return Reply(503);
    return rig.dir.List(c);
  };
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().users_seen == 3);
  CHECK(rig.Calls("USERS") == 3);
  CHECK(rig.base.workos.calls[1].after == rig.base.workos.calls[2].after);  // the same page again
  CHECK(rig.rec->status().last_error.empty());

  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(400, R"({"code":"bad_request"})"); };
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().last_error.find("400") != std::string::npos);
  CHECK(rig.finished == 1);  // only the first run completed
}

TEST_CASE("reconcile: a refused API key fails the run naming the key; once WorkOS takes it, triggers need not wait",
          "[sync][reconcile]") {
  // Issue 22: a 401/403 is the key's fault, not the listing's. The run ends
  // (the events poller does not poll while one runs, so it must not hang on
  // a key that may lack only this permission), automatic triggers back off as
  // after any failed run, and RetryNow (called when WorkOS takes the key
  // again) lifts that wait.
  Rig rig;
  rig.opt.failed_run_wait_ms = 60'000;
  rig.dir.Add("user_0", "u0@example.com", "U");
  int status = 401;
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    return status ? Reply(status, R"({"code":"unauthorized","message":"Invalid API key"})") : rig.dir.List(c);
  };
  rig.Start();
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  ReconcileStatus s = rig.rec->status();
  CHECK(s.runs_failed == 1);
  CHECK(s.last_error.find("WorkOS refuses the API key (HTTP 401)") != std::string::npos);
  CHECK(rig.base.workos.state() == UpstreamState::kUnauthorized);
  auto refused = rig.rec->StartAll("cursor_rejected");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("refuses the API key") != std::string::npos);

  // While the key is still refused, RetryNow changes nothing for a run that
  // failed for another reason.
  status = 400;
  rig.base.clock.Advance(60'000);
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  rig.rec->RetryNow();
  CHECK_FALSE(rig.rec->StartAll("cursor_rejected").ok());

  // A 403 (a key without the permission) is the key's too; once the key
  // works, the daemon's RetryNow lets the poller's trigger start at once.
  status = 403;
  rig.base.clock.Advance(120'000);
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().last_error.find("WorkOS refuses the API key (HTTP 403)") != std::string::npos);
  CHECK_FALSE(rig.rec->StartAll("cursor_rejected").ok());
  status = 0;
  rig.rec->RetryNow();
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  CHECK(rig.finished == 1);
  CHECK(rig.rec->status().last_error.empty());
}

TEST_CASE("reconcile: after a failed run automatic triggers wait, doubling; an admin request starts at once",
          "[sync][reconcile]") {
  Rig rig;
  rig.opt.failed_run_wait_ms = 60'000;
  rig.opt.failed_run_max_wait_ms = 150'000;
  rig.dir.Add("user_0", "u0@example.com", "U");
  bool forbidden = true;
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    return forbidden ? Reply(400, R"({"code":"bad_request"})") : rig.dir.List(c);
  };
  rig.Start();
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().runs_failed == 1);
  const int64_t failed_at = rig.base.clock.NowMs();
  CHECK(rig.rec->status().next_auto_start_ms == failed_at + 60'000);

  // Within the wait the poller's and the timer's triggers are refused, with
  // the reason; no request goes out.
  size_t calls = rig.Calls("USERS");
  auto refused = rig.rec->StartAll("cursor_rejected");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("HTTP 400") != std::string::npos);
  CHECK(refused.status().message().find("60 s") != std::string::npos);
  CHECK_FALSE(rig.rec->StartAll("interval").ok());
  rig.base.clock.Advance(59'000);
  CHECK_FALSE(rig.rec->StartAll("cursor_too_old").ok());
  CHECK(rig.Calls("USERS") == calls);

  // After it, one attempt; it fails again and the wait doubles.
  rig.base.clock.Advance(1'000);
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().runs_failed == 2);
  CHECK(rig.rec->status().next_auto_start_ms == rig.base.clock.NowMs() + 120'000);
  rig.base.clock.Advance(119'000);
  CHECK_FALSE(rig.rec->StartAll("cursor_rejected").ok());

  // A third failure waits the maximum, not 240 s.
  rig.base.clock.Advance(1'000);
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().next_auto_start_ms == rig.base.clock.NowMs() + 150'000);

  // An operator's request does not wait; a completed run ends the waiting.
  forbidden = false;
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  CHECK(rig.finished == 1);
  CHECK(rig.rec->status().next_auto_start_ms == 0);
  REQUIRE(rig.rec->StartAll("cursor_rejected").ok());
  rig.RunToEnd();
  CHECK(rig.finished == 2);
}

TEST_CASE("reconcile: the timer waits the interval less this host's early share", "[sync][reconcile]") {
  Rig rig;
  rig.opt.interval_ms = 3600 * 1000;
  rig.opt.interval_early_ms = 6 * 60 * 1000;
  rig.dir.Add("user_0", "u0@example.com", "U");
  rig.base.clock.Advance(53 * 60 * 1000);  // not yet 54 minutes
  rig.Start();                             // the timer checks at once
  for (int i = 0; i < 20; ++i) uv_run(&rig.base.loop, UV_RUN_NOWAIT);
  CHECK_FALSE(rig.rec->running());
  CHECK(rig.Calls("USERS") == 0);

  rig.base.clock.Advance(60 * 1000);
  rig.Restart();
  rig.base.SpinUntil([&] { return rig.Calls("USERS") > 0; });
  CHECK(rig.rec->status().reason == "interval");
  rig.RunToEnd();
  CHECK(rig.finished == 1);
}

TEST_CASE("reconcile: a server that ignores after ends the run without sweeping anyone", "[sync][reconcile]") {
  Rig rig;
  auto local = rig.base.MakeUser("local-9", "user_9");  // not in the first page
  rig.base.PutUser(local);
  rig.base.clock.Advance(1000);
  for (int i = 0; i < 3; ++i) rig.dir.Add("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com", "U");
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) {
    FakeWorkos::Call first = c;
    first.after.reset();  // always the first page
    return rig.dir.List(first);
  };
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.RunToEnd();
  CHECK(rig.rec->status().last_error.find("ignores after") != std::string::npos);
  CHECK(rig.ByWorkosId("user_9")->live());
  CHECK(rig.finished == 0);
}

TEST_CASE("reconcile: a run interrupted by a restart resumes where it stopped", "[sync][reconcile]") {
  Rig rig;
  for (int i = 0; i < 5; ++i) rig.dir.Add("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com", "U");
  rig.Start();
  auto run = rig.rec->StartAll("cursor_too_old");
  REQUIRE(run.ok());
  rig.base.SpinUntil([&] { return rig.base.workos.pending() == 1; });
  rig.base.workos.Deliver();
  rig.base.SpinUntil([&] { return rig.rec->status().pages == 1; });
  rig.Restart();  // the next request was not answered
  CHECK(rig.rec->running());
  CHECK(rig.rec->status().run_id == *run);
  CHECK(rig.rec->status().reason == "cursor_too_old");
  rig.RunToEnd();
  const auto& calls = rig.base.workos.calls;
  // First request; then, after the restart, it went on after user_1.
  bool resumed = false;
  for (size_t i = 1; i < calls.size(); ++i) resumed |= calls[i].after == std::optional<std::string>("user_1");
  CHECK(resumed);
  for (size_t i = 1; i < calls.size(); ++i) CHECK(calls[i].after.has_value());  // never from the start again
  CHECK(rig.rec->status().users_seen == 5);
  for (int i = 0; i < 5; ++i) CHECK(rig.ByWorkosId("user_" + std::to_string(i)));
}

TEST_CASE("reconcile: a restart while unlisted users are being confirmed goes on with the rest", "[sync][reconcile]") {
  Rig rig;
  for (int i = 0; i < 3; ++i)
    rig.base.PutUser(rig.base.MakeUser("local-" + std::to_string(i), "user_" + std::to_string(i)));
  rig.base.clock.Advance(1000);
  // WorkOS lists nobody and has lost all three.
  rig.Start();
  REQUIRE(rig.rec->StartAll("admin").ok());
  rig.base.SpinUntil([&] {
    if (rig.Calls("GET") == 2 && rig.base.workos.pending() == 1) return true;
    if (rig.base.workos.Deliver() == 0) rig.base.clock.Advance(1);  // answers the listing and the first GET
    return false;
  });
  // The first GET answered and applied, the second in flight: a restart.
  CHECK(rig.rec->status().users_deleted == 1);
  rig.Restart();
  CHECK(rig.rec->running());
  CHECK(rig.rec->status().phase == "sweep");
  rig.RunToEnd();
  CHECK(rig.finished == 1);
  CHECK(rig.rec->status().users_deleted == 3);
  CHECK(rig.Calls("USERS") == 1);  // not listed again
  CHECK(rig.Calls("GET") == 4);    // the unanswered one is asked again
  for (int i = 0; i < 3; ++i) CHECK_FALSE(rig.ByWorkosId("user_" + std::to_string(i))->live());
}

TEST_CASE("reconcile: one user is resynced on its own; a 404 soft-deletes it", "[sync][reconcile]") {
  Rig rig;
  auto u = rig.base.MakeUser("local-1", "user_1");
  u.first_name = "Old";
  rig.base.PutUser(u);
  rig.base.PutUser(rig.base.MakeUser("local-2", "user_2"));
  rig.dir.Add("user_1", "one@example.com", "New");
  rig.Start();
  std::optional<Result<ResyncResult>> got;
  rig.rec->ResyncOne("user_1", [&](Result<ResyncResult> r) { got = std::move(r); });
  rig.base.SpinUntil([&] {
    rig.base.workos.Deliver();
    return got.has_value();
  });
  REQUIRE(got->ok());
  CHECK((*got)->outcome == domain::RemoteOutcome::kUpdated);
  CHECK((*got)->user->first_name == "New");

  got.reset();
  rig.rec->ResyncOne("user_2", [&](Result<ResyncResult> r) { got = std::move(r); });
  rig.base.SpinUntil([&] {
    rig.base.workos.Deliver();
    return got.has_value();
  });
  REQUIRE(got->ok());
  CHECK((*got)->outcome == domain::RemoteOutcome::kDeleted);
  CHECK_FALSE((*got)->in_workos);
  CHECK_FALSE(rig.ByWorkosId("user_2")->live());
}

}  // namespace
}  // namespace usersd::sync
