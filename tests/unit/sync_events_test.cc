// Tests of sync/events_poller.h against a fake WorkosApi serving pages of
// events, with a real store: cursor handling and paging, upsert by WorkOS
// id, soft delete, fields held by pending outbox changes, idempotence, email
// conflicts and the avatar rule.
#include <catch2/catch.hpp>

#include "common/timefmt.h"
#include "sync/events_poller.h"
#include "sync_fake_workos.h"

namespace usersd::sync {
namespace {

using testing::FakeWorkos;
using testing::Reply;
using testing::StoreRig;

Json WorkosUser(const std::string& id, const std::string& email, const std::string& first, const std::string& last,
                Json picture = nullptr) {
  return Json{{"object", "user"},
              {"id", id},
              {"email", email},
              {"email_verified", true},
              {"first_name", first},
              {"last_name", last},
              {"profile_picture_url", picture},
              {"created_at", "2026-01-02T03:04:05.678Z"},
              {"updated_at", "2026-01-02T03:04:05.678Z"}};
}

// Events are stamped after the StoreRig's store was created (its FakeClock
// starts at 1,790,000,000,000 ms), one millisecond apart.
constexpr int64_t kFeedStartMs = 1'790'000'001'000;

// A WorkOS events feed: the fake answers EVENTS calls from it the way the
// API does with order=asc (after = event id, at most `limit`,
// list_metadata.after = the last id returned). With newest_first it behaves
// like a server that ignores `order` (and, with ignore_after, `after` too):
// newest first, `after` moving to older events.
struct Feed {
  std::vector<Json> events;
  int next = 1;
  bool newest_first = false;
  bool ignore_after = false;
  // created_at as WorkOS's data-syncing guide shows it: "2023-04-28
  // 20:05:31.093", a space and no zone.
  bool naive_times = false;

  std::string Add(const std::string& type, Json data, std::optional<int64_t> at_ms = std::nullopt) {
    char id[40];
    snprintf(id, sizeof id, "event_%08d", next);
    int64_t at = at_ms.value_or(kFeedStartMs + next);
    ++next;
    events.push_back(Json{{"object", "event"},
                          {"id", id},
                          {"event", type},
                          {"data", std::move(data)},
                          {"created_at", naive_times ? NaiveTime(at) : FormatIso8601Ms(at)}});
    return id;
  }

  static std::string NaiveTime(int64_t at) {
    std::string t = FormatIso8601Ms(at);
    t[10] = ' ';
    t.pop_back();  // the Z
    return t;
  }

  HttpResponse Page(const FakeWorkos::Call& c) const {
    Json data = Json::array();
    std::vector<Json> order = events;
    if (newest_first) std::reverse(order.begin(), order.end());
    for (const auto& e : order) {
      if (c.after && !ignore_after) {
        const std::string id = e["id"].get<std::string>();
        if (newest_first ? id >= *c.after : id <= *c.after) continue;
      }
      if (static_cast<int>(data.size()) >= c.limit) break;
      data.push_back(e);
    }
    Json after = data.empty() ? Json(nullptr) : data.back()["id"];
    return Reply(200, Json{{"object", "list"}, {"data", data}, {"list_metadata", {{"after", after}}}}.dump());
  }
};

struct Rig {
  Rig() {
    base.before_shutdown = [this] {
      if (poller) poller->Close();
    };
    base.workos.responder = [this](const FakeWorkos::Call& c) { return feed.Page(c); };
  }
  ~Rig() {
    base.Shutdown();
    poller.reset();
  }

  void Start(int64_t poll_seconds = 0) {
    EventsOptions o;
    o.poll_seconds = poll_seconds;
    o.max_cursor_age_ms = max_cursor_age_ms;
    poller = std::make_unique<EventsPoller>(&base.loop, &base.workos, base.store.get(), base.writer.get(), base.clock,
                                            o);
    poller->SetReconcileHooks(
        [this](const std::string& reason) {
          reconcile_requests.push_back(reason);
          return reconcile_answer;
        },
        [this] { return reconciling; });
    poller->Start();
  }

  void Restart() {
    poller->Close();
    uv_run(&base.loop, UV_RUN_NOWAIT);
    poller.reset();
    Start();
  }

  // One complete poll: every page fetched and applied.
  Status Poll() {
    bool done = false;
    Status result;
    poller->PollNow([&](Status st) {
      result = st;
      done = true;
    });
    base.SpinUntil([&] {
      base.workos.Deliver();
      return done;
    });
    return result;
  }

  std::optional<store::UserRecord> ByWorkosId(const std::string& wid) {
    auto txn = base.store->BeginRead();
    REQUIRE(txn.ok());
    auto u = txn->FindByWorkosId(wid);
    REQUIRE(u.ok());
    return *u;
  }

  uint64_t LastTxid() {
    auto txn = base.store->BeginRead();
    REQUIRE(txn.ok());
    return txn->LastTxid();
  }

  StoreRig base;
  Feed feed;
  int64_t max_cursor_age_ms = 25LL * 86400 * 1000;
  std::vector<std::string> reconcile_requests;
  Status reconcile_answer;  // what request_reconcile says (Ok: a run started)
  bool reconciling = false;
  std::unique_ptr<EventsPoller> poller;
};

TEST_CASE("events: the first poll starts at the store's creation time, then follows the cursor page by page",
          "[sync][events]") {
  Rig rig;
  for (int i = 0; i < 150; ++i) {
    std::string wid = "user_" + std::to_string(1000 + i);
    rig.feed.Add("user.created", WorkosUser(wid, wid + "@example.com", "F", "L"));
  }
  rig.Start();
  REQUIRE(rig.Poll().ok());
  const auto& calls = rig.base.workos.calls;
  REQUIRE(calls.size() == 2);  // a full page of 100, then 50
  CHECK(calls[0].method == "EVENTS");
  CHECK_FALSE(calls[0].after.has_value());
  CHECK(calls[0].range_start == std::optional<std::string>(FormatIso8601Ms(rig.base.store->created_at_ms())));
  CHECK(calls[0].limit == 100);
  CHECK(calls[1].after == std::optional<std::string>("event_00000100"));
  CHECK_FALSE(calls[1].range_start.has_value());
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000150"));
  {
    auto txn = rig.base.store->BeginRead();
    REQUIRE(txn.ok());
    auto c = txn->GetMeta("events_cursor");
    REQUIRE(c.ok());
    CHECK(*c == std::optional<std::string>("event_00000150"));
    CHECK(txn->CountEntries(store::Table::kUsers) == 150);
  }
  CHECK(rig.poller->stats().applied == 150);

  // The next poll asks only for what came after; an empty page changes nothing.
  uint64_t txid = rig.LastTxid();
  REQUIRE(rig.Poll().ok());
  REQUIRE(calls.size() == 3);
  CHECK(calls[2].after == std::optional<std::string>("event_00000150"));
  CHECK(rig.LastTxid() == txid);
}

TEST_CASE("events: the cursor survives a restart", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "A"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  rig.poller->Close();
  uv_run(&rig.base.loop, UV_RUN_NOWAIT);
  rig.poller.reset();
  rig.Start();
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000001"));
  REQUIRE(rig.Poll().ok());
  CHECK(rig.base.workos.calls.back().after == std::optional<std::string>("event_00000001"));
}

TEST_CASE("events: creates, updates and soft-deletes users by WorkOS id; other types are ignored", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "Ada", "Lovelace", "https://img/a.png"));
  rig.feed.Add("organization.created", Json{{"id", "org_1"}});
  rig.feed.Add("user.created", WorkosUser("user_b", "b@example.com", "Bob", "B"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  auto a = rig.ByWorkosId("user_a");
  REQUIRE(a);
  CHECK(a->email == "a@example.com");
  CHECK(a->first_name == "Ada");
  CHECK(a->role == "member");
  CHECK_FALSE(a->organization_id.has_value());
  CHECK(a->avatar_url == std::optional<std::string>("https://img/a.png"));
  CHECK(a->profile_picture_url == std::optional<std::string>("https://img/a.png"));
  CHECK(a->created_at_ms == *ParseIso8601Ms("2026-01-02T03:04:05.678Z"));
  CHECK(a->live());
  CHECK(a->id.size() == 36);
  CHECK(rig.poller->stats().ignored >= 1);

  rig.feed.Add("user.updated", WorkosUser("user_a", "ada@example.com", "Augusta", "King"));
  rig.feed.Add("user.deleted", WorkosUser("user_b", "b@example.com", "Bob", "B"));
  rig.feed.Add("user.deleted", WorkosUser("user_unknown", "u@example.com", "U", "U"));
  REQUIRE(rig.Poll().ok());
  a = rig.ByWorkosId("user_a");
  CHECK(a->email == "ada@example.com");
  CHECK(a->first_name == "Augusta");
  CHECK(a->last_name == "King");
  CHECK(a->avatar_url == std::nullopt);  // it showed the WorkOS picture, which is gone
  CHECK(a->profile_picture_url == std::optional<std::string>(""));
  auto b = rig.ByWorkosId("user_b");
  REQUIRE(b);
  CHECK_FALSE(b->live());
  CHECK_FALSE(rig.ByWorkosId("user_unknown").has_value());

  // A deleted user stays deleted, whatever WorkOS says next.
  rig.feed.Add("user.updated", WorkosUser("user_b", "b2@example.com", "Bob", "B"));
  REQUIRE(rig.Poll().ok());
  CHECK_FALSE(rig.ByWorkosId("user_b")->live());
  CHECK(rig.ByWorkosId("user_b")->email == "b@example.com");

  // The change feed carries every change, the delete as a delete.
  auto txn = rig.base.store->BeginRead();
  REQUIRE(txn.ok());
  auto changes = txn->ChangesSince(0, 100);
  REQUIRE(changes.ok());
  int deletes = 0;
  for (const auto& c : *changes) deletes += c.op == store::ChangeOp::kDelete;
  CHECK(deletes == 1);
}

TEST_CASE("events: applying the same events again changes nothing", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "Ada", "L", "https://img/a.png"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "Ada", "Lovelace", "https://img/a.png"));
  rig.feed.Add("user.deleted", WorkosUser("user_x", "x@example.com", "X", "X"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  uint64_t txid = rig.LastTxid();
  auto a = rig.ByWorkosId("user_a");
  // Replay the whole feed from the start (as a lost cursor would).
  REQUIRE(rig.base
              .Write([](store::WriteTxn& t) -> Status {
                USERSD_RETURN_IF_ERROR(t.PutMeta("events_cursor", "event_00000000"));
                return t.PutMeta("events_cursor_at", "0");
              })
              .ok());
  rig.poller->Close();
  uv_run(&rig.base.loop, UV_RUN_NOWAIT);
  rig.poller.reset();
  rig.Start();
  REQUIRE(rig.Poll().ok());
  CHECK(rig.LastTxid() == txid);
  auto again = rig.ByWorkosId("user_a");
  CHECK(again->id == a->id);
  CHECK(again->txid == a->txid);
}

TEST_CASE("events: a field with an undelivered outbox change keeps its local value", "[sync][events]") {
  Rig rig;
  auto u = rig.base.MakeUser("local-1", "user_a");
  u.first_name = "LocalFirst";
  rig.base.PutUser(u);
  rig.base.Enqueue("local-1", store::JobOp::kUpdate, {{"first_name", "LocalFirst"}});
  rig.feed.Add("user.updated", WorkosUser("user_a", "new@example.com", "RemoteFirst", "RemoteLast"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  auto after = rig.base.GetUser("local-1");
  CHECK(after->first_name == "LocalFirst");  // pending in the outbox
  CHECK(after->last_name == "RemoteLast");
  CHECK(after->email == "new@example.com");

  // Once delivered (the job gone), WorkOS's value applies again.
  REQUIRE(rig.base
              .Write([](store::WriteTxn& t) -> Status {
                auto jobs = t.ListJobs(0);
                if (!jobs.ok()) return jobs.status();
                for (const auto& j : *jobs) USERSD_RETURN_IF_ERROR(t.DeleteJob(j.id));
                return Status::Ok();
              })
              .ok());
  rig.feed.Add("user.updated", WorkosUser("user_a", "new@example.com", "Remote2", "RemoteLast"));
  REQUIRE(rig.Poll().ok());
  CHECK(rig.base.GetUser("local-1")->first_name == "Remote2");
}

TEST_CASE("events: an email held by another live user is not taken; the rest of the event applies", "[sync][events]") {
  Rig rig;
  auto other = rig.base.MakeUser("other", "user_other");
  other.email = "shared@example.com";
  rig.base.PutUser(other);
  auto mine = rig.base.MakeUser("mine", "user_mine");
  rig.base.PutUser(mine);
  rig.feed.Add("user.updated", WorkosUser("user_mine", "SHARED@example.com", "New", "Name"));
  rig.feed.Add("user.created", WorkosUser("user_new", "shared@example.com", "Newcomer", "N"));
  rig.feed.Add("user.created", WorkosUser("user_later", "later@example.com", "Later", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  auto m = rig.base.GetUser("mine");
  CHECK(m->email == "mine@example.com");
  CHECK(m->first_name == "New");
  auto n = rig.ByWorkosId("user_new");
  REQUIRE(n);
  CHECK(n->email.empty());
  CHECK(n->first_name == "Newcomer");
  CHECK(rig.ByWorkosId("user_later"));  // later events of the page still applied
}

TEST_CASE("events: the avatar follows the WorkOS picture only while it still shows it", "[sync][events]") {
  Rig rig;
  auto follows = rig.base.MakeUser("f", "user_f");
  follows.avatar_url = "https://img/old.png";
  follows.profile_picture_url = "https://img/old.png";
  rig.base.PutUser(follows);
  auto chosen = rig.base.MakeUser("c", "user_c");
  chosen.avatar_url = "https://mine/avatar.png";
  chosen.profile_picture_url = "https://img/old-c.png";
  rig.base.PutUser(chosen);
  rig.feed.Add("user.updated", WorkosUser("user_f", "f@example.com", "First", "Last", " https://img/new.png "));
  rig.feed.Add("user.updated", WorkosUser("user_c", "c@example.com", "First", "Last", "https://img/new-c.png"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  CHECK(rig.base.GetUser("f")->avatar_url == std::optional<std::string>("https://img/new.png"));
  CHECK(rig.base.GetUser("f")->profile_picture_url == std::optional<std::string>("https://img/new.png"));
  CHECK(rig.base.GetUser("c")->avatar_url == std::optional<std::string>("https://mine/avatar.png"));
  CHECK(rig.base.GetUser("c")->profile_picture_url == std::optional<std::string>("https://img/new-c.png"));
}

TEST_CASE("events: a failed poll keeps the cursor and reports the failure", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "A"));
  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(503); };
  rig.Start();
  CHECK_FALSE(rig.Poll().ok());
  CHECK_FALSE(rig.poller->cursor().has_value());
  CHECK(rig.poller->stats().failures == 1);
  rig.base.workos.responder = [&](const FakeWorkos::Call& c) { return rig.feed.Page(c); };
  REQUIRE(rig.Poll().ok());
  CHECK(rig.ByWorkosId("user_a"));
  // An unreadable page is a failure too, and moves nothing.
  rig.base.workos.responder = [](const FakeWorkos::Call&) { return Reply(200, "not json"); };
  CHECK_FALSE(rig.Poll().ok());
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000001"));
}

TEST_CASE("events: the timer polls every poll_seconds once started", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "A"));
  rig.Start(1);  // first poll at once (0 ms timer), on the real loop
  rig.base.SpinUntil([&] {
    rig.base.workos.Deliver();
    return rig.ByWorkosId("user_a").has_value();
  });
  CHECK(rig.poller->stats().polls == 1);
}

TEST_CASE("events: a page served newest first is applied oldest first; the newest state wins", "[sync][events]") {
  Rig rig;
  rig.base.PutUser(rig.base.MakeUser("local-b", "user_b"));
  rig.feed.newest_first = true;  // a server that ignores order=asc
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A1", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A2", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A3", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_b", "b@example.com", "B2", "L"));
  rig.feed.Add("user.deleted", WorkosUser("user_b", "b@example.com", "B2", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  REQUIRE(rig.ByWorkosId("user_a"));
  CHECK(rig.ByWorkosId("user_a")->first_name == "A3");
  REQUIRE(rig.ByWorkosId("user_b"));
  CHECK_FALSE(rig.ByWorkosId("user_b")->live());  // not brought back by its older user.updated
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000005"));
  CHECK(rig.poller->stats().newest_first_pages == 1);
  CHECK_FALSE(rig.poller->stats().stuck);
}

TEST_CASE("events: a user state older than the stored one is not applied, whatever its place in the feed",
          "[sync][events]") {
  Rig rig;
  Json newer = WorkosUser("user_a", "a@example.com", "Newer", "L");
  newer["updated_at"] = "2026-10-01T00:00:00.000Z";
  rig.feed.Add("user.updated", newer);
  rig.Start();
  REQUIRE(rig.Poll().ok());
  uint64_t txid = rig.LastTxid();
  // A later event carrying an earlier state of the user (delivered late).
  Json older = WorkosUser("user_a", "a@example.com", "Older", "L");
  older["updated_at"] = "2026-09-30T00:00:00.000Z";
  rig.feed.Add("user.updated", older);
  REQUIRE(rig.Poll().ok());
  CHECK(rig.ByWorkosId("user_a")->first_name == "Newer");
  CHECK(rig.LastTxid() == txid);
  CHECK(rig.poller->stats().stale == 1);
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000002"));  // read past it all the same
  // A state as new or newer applies.
  Json newest = WorkosUser("user_a", "a@example.com", "Newest", "L");
  newest["updated_at"] = "2026-10-02T00:00:00.000Z";
  rig.feed.Add("user.updated", newest);
  REQUIRE(rig.Poll().ok());
  CHECK(rig.ByWorkosId("user_a")->first_name == "Newest");
}

TEST_CASE("events: a server that ignores order and after leaves the cursor stuck, visibly, and changes nothing",
          "[sync][events]") {
  Rig rig;
  rig.feed.newest_first = true;
  rig.feed.ignore_after = true;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A2", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  CHECK(rig.ByWorkosId("user_a")->first_name == "A2");
  uint64_t txid = rig.LastTxid();
  REQUIRE(rig.Poll().ok());  // the same page again: all of it at or before the cursor
  CHECK(rig.poller->stats().stuck);
  CHECK(rig.poller->stats().behind_cursor == 2);
  CHECK(rig.LastTxid() == txid);
  Metrics m;
  rig.poller->ExportMetrics(m);
  CHECK(m.Render().find("usersd_events_stuck 1") != std::string::npos);
  // A server that serves the feed properly again clears it.
  rig.feed.newest_first = false;
  rig.feed.ignore_after = false;
  REQUIRE(rig.Poll().ok());
  CHECK_FALSE(rig.poller->stats().stuck);
}

TEST_CASE("events: without a cursor, events before range_start are skipped (a server that ignores it)",
          "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_old", "old@example.com", "Old", "L"), 1'700'000'000'000);
  rig.feed.Add("user.created", WorkosUser("user_new", "new@example.com", "New", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  CHECK_FALSE(rig.ByWorkosId("user_old"));
  CHECK(rig.ByWorkosId("user_new"));
  CHECK(rig.poller->stats().behind_cursor == 1);
}

TEST_CASE("events: a rejected cursor asks for a reconciliation; none is polled while it runs", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    return c.after ? Reply(400, R"({"code":"invalid_cursor"})") : Reply(200, R"({"data":[]})");
  };
  CHECK_FALSE(rig.Poll().ok());
  CHECK(rig.reconcile_requests == std::vector<std::string>{"cursor_rejected"});
  rig.reconciling = true;
  size_t calls = rig.base.workos.calls.size();
  CHECK_FALSE(rig.Poll().ok());
  CHECK(rig.base.workos.calls.size() == calls);  // no request while reconciling
}

TEST_CASE("events: a rejected cursor is not sent again until a reconciliation replaced it, also while one is refused",
          "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  auto feed_answers = rig.base.workos.responder;
  rig.base.workos.responder = [](const FakeWorkos::Call& c) {
    return c.after ? Reply(400, R"({"code":"invalid_cursor"})") : Reply(200, R"({"data":[]})");
  };
  rig.reconcile_answer = Status::Unavailable("the last reconciliation failed (HTTP 403)");
  CHECK_FALSE(rig.Poll().ok());
  size_t calls = rig.base.workos.calls.size();
  for (int i = 0; i < 3; ++i) CHECK_FALSE(rig.Poll().ok());
  CHECK(rig.base.workos.calls.size() == calls);  // the refused cursor is not polled again
  CHECK(rig.reconcile_requests == std::vector<std::string>(4, "cursor_rejected"));

  // The reconciliation ran and replaced the position: polling resumes.
  rig.base.workos.responder = feed_answers;
  rig.feed.Add("user.created", WorkosUser("user_b", "b@example.com", "B", "L"));
  rig.poller->Reload();
  REQUIRE(rig.Poll().ok());
  CHECK(rig.base.workos.calls.size() > calls);
  CHECK(rig.ByWorkosId("user_b"));
  CHECK(rig.reconcile_requests.size() == 4);
}

TEST_CASE("events: a feed position older than max_cursor_age is reconciled instead of read, also after a restart",
          "[sync][events]") {
  Rig rig;
  rig.max_cursor_age_ms = 3 * 3600 * 1000;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  CHECK(rig.reconcile_requests.empty());
  rig.base.clock.Advance(30 * 60 * 1000);
  REQUIRE(rig.Poll().ok());  // caught up again: the age restarts
  rig.base.clock.Advance(50 * 60 * 1000);
  rig.Restart();  // the position's time was persisted with the page (and hourly after)
  REQUIRE(rig.Poll().ok());
  CHECK(rig.reconcile_requests.empty());
  rig.base.clock.Advance(4 * 3600 * 1000);
  size_t calls = rig.base.workos.calls.size();
  CHECK_FALSE(rig.Poll().ok());
  CHECK(rig.reconcile_requests == std::vector<std::string>{"cursor_too_old"});
  CHECK(rig.base.workos.calls.size() == calls);
}

TEST_CASE("events: times without a zone (WorkOS's own samples) are UTC, so the first poll keeps them",
          "[sync][events]") {
  Rig rig;
  rig.feed.naive_times = true;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "Ann", "L"));
  rig.Start();  // no cursor yet: events before range_start would be skipped
  REQUIRE(rig.Poll().ok());
  auto a = rig.ByWorkosId("user_a");
  REQUIRE(a);
  CHECK(a->first_name == "Ann");
  CHECK(rig.poller->stats().behind_cursor == 0);
  CHECK_FALSE(rig.poller->stats().stuck);
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000002"));
}

TEST_CASE("events: the wait between polls is shortened by up to a tenth, never lengthened", "[sync][events]") {
  CHECK(PollDelayMs(10, 0.0) == 10'000);
  CHECK(PollDelayMs(10, 0.5) == 9'500);
  CHECK(PollDelayMs(10, 0.999999) == 9'001);
  CHECK(PollDelayMs(10, 1.0) == 9'000);
  CHECK(PollDelayMs(10, -3.0) == 10'000);  // out of range is clamped
  CHECK(PollDelayMs(1, 0.25) == 975);
  CHECK(PollDelayMs(86'400, 0.999) > 86'400'000 * 9 / 10);
}

TEST_CASE("events: events are counted by type in the metrics", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.feed.Add("user.created", WorkosUser("user_b", "b@example.com", "B", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  rig.feed.Add("user.deleted", WorkosUser("user_b", "b@example.com", "B", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a2@example.com", "A", "L"));
  rig.feed.Add("user.deleted", WorkosUser("user_never", "n@example.com", "N", "L"));  // changes nothing
  REQUIRE(rig.Poll().ok());
  Metrics m;
  rig.poller->ExportMetrics(m);
  std::string text = m.Render();
  CHECK(text.find("usersd_events_applied_total{type=\"user.created\"} 2") != std::string::npos);
  CHECK(text.find("usersd_events_applied_total{type=\"user.updated\"} 1") != std::string::npos);
  CHECK(text.find("usersd_events_applied_total{type=\"user.deleted\"} 1") != std::string::npos);
}

TEST_CASE("events: with no cursor, a server that ignores range_start does not leave the feed stuck behind old events",
          "[sync][events]") {
  // Issue 22: with 100 or more user events older than the store, the first
  // page held only events before range_start; they were skipped, the cursor
  // never moved and the same page came back forever (STUCK).
  Rig rig;
  rig.max_cursor_age_ms = 3 * 3600 * 1000;
  const int64_t old_at = 1'700'000'000'000;
  for (int i = 0; i < 150; ++i) {
    std::string wid = "user_old" + std::to_string(i);
    rig.feed.Add("user.created", WorkosUser(wid, wid + "@example.com", "Old", "L"), old_at + i);
  }
  rig.Start();
  REQUIRE(rig.Poll().ok());
  const auto& calls = rig.base.workos.calls;
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].range_start.has_value());
  CHECK(calls[1].after == std::optional<std::string>("event_00000100"));  // read on after the skipped page
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000150"));
  CHECK_FALSE(rig.poller->stats().stuck);
  CHECK(rig.poller->stats().behind_cursor == 150);
  CHECK(rig.poller->stats().applied == 0);
  CHECK_FALSE(rig.ByWorkosId("user_old0"));

  // The position survives a restart, and its age is counted from range_start
  // (not from the skipped events' times): no reconciliation is asked for.
  rig.Restart();
  rig.feed.Add("user.created", WorkosUser("user_new", "new@example.com", "New", "L"));
  REQUIRE(rig.Poll().ok());
  CHECK(rig.reconcile_requests.empty());
  REQUIRE(rig.ByWorkosId("user_new"));
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000151"));
  CHECK_FALSE(rig.poller->stats().stuck);
}

TEST_CASE("events: a mixed first page applies only what is after range_start, then follows the cursor",
          "[sync][events]") {
  Rig rig;
  for (int i = 0; i < 60; ++i) {
    std::string wid = "user_old" + std::to_string(i);
    rig.feed.Add("user.created", WorkosUser(wid, wid + "@example.com", "Old", "L"), 1'700'000'000'000 + i);
  }
  for (int i = 0; i < 60; ++i) {
    std::string wid = "user_new" + std::to_string(i);
    rig.feed.Add("user.created", WorkosUser(wid, wid + "@example.com", "New", "L"));
  }
  rig.Start();
  REQUIRE(rig.Poll().ok());
  CHECK(rig.poller->stats().applied == 60);
  CHECK(rig.poller->cursor() == std::optional<std::string>("event_00000120"));
  CHECK_FALSE(rig.ByWorkosId("user_old59"));
  CHECK(rig.ByWorkosId("user_new59"));
}

TEST_CASE("events: stuck means the feed cannot move, not that nothing is new", "[sync][events]") {
  Rig rig;
  rig.feed.ignore_after = true;  // a short history, served whole whatever `after` says
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A2", "L"));
  rig.Start();
  REQUIRE(rig.Poll().ok());
  REQUIRE(rig.Poll().ok());  // the same short page: nothing new yet, and a new event would be on it
  CHECK_FALSE(rig.poller->stats().stuck);
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A3", "L"));
  REQUIRE(rig.Poll().ok());
  CHECK(rig.ByWorkosId("user_a")->first_name == "A3");
  // A full page of old events: what is newer is never served.
  for (int i = 0; i < 100; ++i) rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A3", "L"));
  REQUIRE(rig.Poll().ok());
  rig.feed.Add("user.updated", WorkosUser("user_a", "a@example.com", "A4", "L"));
  REQUIRE(rig.Poll().ok());
  CHECK(rig.poller->stats().stuck);
}

TEST_CASE("events: a refused API key backs the polls off, quietly, until the key works", "[sync][events]") {
  Rig rig;
  rig.feed.Add("user.created", WorkosUser("user_a", "a@example.com", "A", "L"));
  rig.base.workos.responder = [](const FakeWorkos::Call&) {
    return Reply(401, R"({"code":"unauthorized","message":"Invalid API key"})");
  };
  rig.Start();
  std::vector<int64_t> waits;
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(rig.Poll().ok());
    waits.push_back(rig.poller->stats().next_poll_delay_ms);
  }
  CHECK(waits == std::vector<int64_t>{2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000});
  CHECK(rig.base.workos.state() == UpstreamState::kUnauthorized);
  CHECK(rig.reconcile_requests.empty());  // not mistaken for a rejected cursor
  CHECK_FALSE(rig.poller->cursor());

  // The key works again: the next poll reads the feed and the wait is the
  // poll interval again.
  rig.base.workos.responder = [&rig](const FakeWorkos::Call& c) { return rig.feed.Page(c); };
  REQUIRE(rig.Poll().ok());
  CHECK(rig.ByWorkosId("user_a"));
  CHECK(rig.poller->stats().next_poll_delay_ms == PollDelayMs(0, 0.0));
  CHECK(rig.base.workos.state() == UpstreamState::kOnline);
}

}  // namespace
}  // namespace usersd::sync
