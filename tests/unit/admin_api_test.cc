// Tests of AdminApi (admin/admin_api.h) in process: a real Store, Writer and
// ipc::Server on a temp socket, a blocking client, and the loop driven by the
// test. The sync workers are present but idle (no API key, no JWKS URL, no
// outbox sender), so dead letters and changes are seeded straight into the
// store. Every test closes every handle and checks the loop closes cleanly.
#include "admin/admin_api.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>

#include "tests/unit/temp_dir.h"
#include <chrono>
#include <filesystem>

#include "common/poster.h"
#include "domain/users_service.h"
#include "domain/versions.h"

namespace usersd::admin {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

using usersd::testing::TempDir;

// Everything AdminApi borrows, wired like daemon/app.cc does, and torn down
// in the order the headers require.
struct Rig {
  TempDir dir;
  FakeClock clock;
  uv_loop_t loop{};
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Poster> poster;
  std::unique_ptr<store::Writer> writer;
  std::unique_ptr<sync::HttpClient> http;
  std::unique_ptr<sync::WorkosClient> workos;
  std::unique_ptr<auth::Authenticator> auth;
  std::unique_ptr<sync::JwksManager> jwks;
  Metrics metrics;
  config::Config cfg;
  std::unique_ptr<AdminApi> api;
  std::unique_ptr<ipc::Server> server;
  std::vector<std::string> reload_reloaded{"log.level"}, reload_restart{"socket.path"};
  Status reload_status;
  bool closed = false;

  Rig() {
    // As the daemon does: a write to a vanished client is EPIPE, not death.
    signal(SIGPIPE, SIG_IGN);
    REQUIRE(uv_loop_init(&loop) == 0);
    store::StoreOptions so;
    so.path = dir / "store";
    so.clock = &clock;
    auto s = store::Store::Open(so);
    REQUIRE(s.ok());
    store = std::move(*s);
    poster = std::make_unique<Poster>(&loop);
    writer = std::make_unique<store::Writer>(store.get(), poster.get());
    writer->Start();
    http = std::make_unique<sync::HttpClient>(&loop, clock, 1);
    workos = std::make_unique<sync::WorkosClient>(http.get(), clock, sync::WorkosOptions{});
    auth = std::make_unique<auth::Authenticator>(clock, auth::VerifyOptions{});
    jwks = std::make_unique<sync::JwksManager>(&loop, workos.get(), store.get(), writer.get(), auth.get(), clock,
                                               sync::JwksOptions{});
    REQUIRE(jwks->Start().ok());
    AdminDeps deps;
    deps.loop = &loop;
    deps.version = "test";
    deps.started_at_ms = clock.NowMs();
    deps.clock = &clock;
    deps.config = &cfg;
    deps.store = store.get();
    deps.writer = writer.get();
    deps.metrics = &metrics;
    deps.workos = workos.get();
    deps.jwks = jwks.get();
    deps.reload = [this](std::vector<std::string>* r, std::vector<std::string>* n) {
      *r = reload_reloaded;
      *n = reload_restart;
      return reload_status;
    };
    api = std::make_unique<AdminApi>(std::move(deps));
    ipc::ServerOptions o;
    o.name = "admin";
    o.path = dir / "admin.sock";
    o.mode = 0600;
    server = std::make_unique<ipc::Server>(&loop, o, api.get());
    REQUIRE(server->Listen().ok());
  }

  ~Rig() {
    if (!closed) Close();
  }

  void Close() {
    closed = true;
    bool done = false;
    server->Close([&] { done = true; }, 100);
    jwks->Close();
    writer->Stop();
    poster->Close();
    http->Shutdown([] {});
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(done);
    CHECK(uv_loop_close(&loop) == 0);
    api.reset();
  }

  // Runs one store write through the writer and waits for it.
  void Write(store::WriteOp op) {
    bool done = false;
    Status result;
    writer->Submit(std::move(op), [&](Status st) {
      result = st;
      done = true;
    });
    while (!done) uv_run(&loop, UV_RUN_ONCE);
    INFO(result.ToString());
    REQUIRE(result.ok());
  }

  std::string SeedUser(const std::string& workos_id, const std::string& email, const std::string& first = "Ada") {
    std::string id = domain::NewUuid();
    Write([=, this](store::WriteTxn& t) -> Status {
      store::UserRecord u;
      u.id = id;
      u.workos_id = workos_id;
      u.email = email;
      u.first_name = first;
      u.last_name = "Test";
      u.created_at_ms = clock.NowMs();
      auto txid = t.NextTxid();
      if (!txid.ok()) return txid.status();
      u.txid = *txid;
      USERSD_RETURN_IF_ERROR(t.PutUser(u, std::nullopt));
      store::Change c;
      c.txid = u.txid;
      c.user = u;
      c.at_ms = u.created_at_ms;
      return t.AppendChange(c);
    });
    return id;
  }
};

// A blocking NDJSON client; the loop runs while it waits.
class Client {
 public:
  explicit Client(Rig& rig) : rig_(rig) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string p = rig.dir / "admin.sock";
    std::memcpy(a.sun_path, p.data(), p.size());
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  void Send(const Json& frame) {
    std::string line = frame.dump() + "\n";
    REQUIRE(send(fd_, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
  }

  // The next frame, or null when none arrives within `ms`.
  Json Next(int ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        Json j = Json::parse(buf_.substr(0, nl));
        buf_.erase(0, nl + 1);
        return j;
      }
      if (std::chrono::steady_clock::now() > deadline) return nullptr;
      uv_run(&rig_.loop, UV_RUN_NOWAIT);
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 2) > 0) {
        char tmp[65536];
        ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
        if (n > 0) buf_.append(tmp, static_cast<size_t>(n));
      }
    }
  }

  // Sends a request and returns its Exit frame.
  Json Call(const std::string& tag, Json payload = nullptr) {
    std::string id = std::to_string(next_++);
    Json req{{"_tag", "Request"}, {"id", id}, {"tag", tag}, {"headers", Json::array()}};
    if (!payload.is_null()) req["payload"] = payload;
    Send(req);
    for (;;) {
      Json f = Next();
      REQUIRE_FALSE(f.is_null());
      if (f["_tag"] == "Exit" && f["requestId"] == id) return f;
    }
  }

 private:
  Rig& rig_;
  int fd_ = -1;
  std::string buf_;
  int next_ = 1;
};

Json Ok(const Json& exit) {
  INFO(exit.dump());
  REQUIRE(exit["exit"]["_tag"] == "Success");
  return exit["exit"]["value"];
}

std::string DefectMessage(const Json& exit) {
  INFO(exit.dump());
  REQUIRE(exit["exit"]["_tag"] == "Failure");
  REQUIRE(exit["exit"]["cause"]["_tag"] == "Die");
  CHECK(exit["exit"]["cause"]["defect"]["name"] == "ValidationError");
  return exit["exit"]["cause"]["defect"]["message"].get<std::string>();
}

Json FailError(const Json& exit) {
  INFO(exit.dump());
  REQUIRE(exit["exit"]["_tag"] == "Failure");
  REQUIRE(exit["exit"]["cause"]["_tag"] == "Fail");
  return exit["exit"]["cause"]["error"];
}

TEST_CASE("admin api: status has the SPEC shape", "[admin]") {
  Rig rig;
  rig.SeedUser("user_1", "a@example.com");
  Client c(rig);
  Json s = Ok(c.Call("admin.status"));
  for (const char* k : {"version", "uptimeSeconds", "users", "lastTransactionId", "store", "outbox", "deadLetters",
                        "upstream", "eventsCursor", "jwks"})
    CHECK(s.contains(k));
  CHECK(s["version"] == "test");
  CHECK(s["users"] == 1);
  CHECK(s["lastTransactionId"] == 1);
  CHECK(s["store"]["path"] == rig.store->path());
  CHECK(s["store"]["sizeBytes"].get<uint64_t>() > 0);
  CHECK(s["store"]["mapSizeBytes"].get<uint64_t>() >= s["store"]["sizeBytes"].get<uint64_t>());
  CHECK(s["outbox"] == Json{{"depth", 0}, {"oldestAgeSeconds", nullptr}});
  CHECK(s["deadLetters"] == 0);
  CHECK(s["upstream"]["state"] == "unconfigured");
  CHECK(s["upstream"]["since"].is_null());
  CHECK(s["upstream"]["detail"].get<std::string>().find("set auth.client_id") != std::string::npos);
  CHECK(s["eventsCursor"].is_null());
  CHECK(s["jwks"] == Json{{"keys", 0}, {"ageSeconds", nullptr}});
  // SPEC 4b: the host's id for versions of shared fields, once it has one.
  CHECK(s["hostId"].is_null());
  rig.Write([&](store::WriteTxn& t) -> Status { return domain::EnsureHostId(t).status(); });
  s = Ok(c.Call("admin.status"));
  REQUIRE(s["hostId"].is_string());
  CHECK(s["hostId"].get<std::string>().size() == 16);
  CHECK(s["hostId"].get<std::string>().find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("admin api: unknown methods and non-object payloads are ValidationError defects", "[admin]") {
  Rig rig;
  Client c(rig);
  Json e = c.Call("admin.nope");
  CHECK(DefectMessage(e).find("unknown method") != std::string::npos);
  CHECK(DefectMessage(c.Call("admin.users.list", Json::array())) == "payload: must be an object");
  CHECK(DefectMessage(c.Call("admin.users.list", Json{{"limit", 0}})).rfind("limit:", 0) == 0);
  CHECK(DefectMessage(c.Call("admin.outbox.list", Json{{"limit", "5"}})).rfind("limit:", 0) == 0);
}

TEST_CASE("admin api: health reports each check; no JWKS key makes it not ok", "[admin]") {
  Rig rig;
  Client c(rig);
  Json h = Ok(c.Call("admin.health"));
  CHECK(h["ok"] == false);
  CHECK(h["checks"]["store"]["ok"] == true);
  CHECK(h["checks"]["writer"]["ok"] == true);
  CHECK(h["checks"]["jwks"]["ok"] == false);
  CHECK(h["checks"]["upstream"]["ok"] == true);
  CHECK(h["checks"]["deadLetters"]["ok"] == true);
  // Unconfigured: every application request is refused, so health fails,
  // saying what to set.
  CHECK(h["checks"]["configured"]["ok"] == false);
  CHECK(h["checks"]["configured"]["detail"].get<std::string>().find("auth.client_id") != std::string::npos);
}

TEST_CASE("admin api: a refused API key shows as unauthorized in status, health and metrics, naming its source",
          "[admin]") {
  Rig rig;
  rig.cfg.auth.client_id = "client_1";
  rig.cfg.workos.api_key = "sk_revoked";
  rig.cfg.workos.api_key_source = config::ApiKeySource::kFile;
  rig.cfg.workos.api_key_source_path = "/etc/usersd/key";
  sync::WorkosOptions o;
  o.api_key = "sk_revoked";
  o.client_id_set = true;
  o.api_key_source = config::DescribeApiKeySource(rig.cfg, "/etc/usersd/usersd.yaml");
  rig.workos->SetOptions(o);
  Client c(rig);
  Json s = Ok(c.Call("admin.status"));
  CHECK(s["upstream"]["state"] == "online");
  sync::HttpResponse refused;
  refused.status = 401;
  refused.body = R"({"code":"unauthorized","message":"Invalid API key"})";
  rig.workos->Observe(refused);
  s = Ok(c.Call("admin.status"));
  CHECK(s["upstream"]["state"] == "unauthorized");
  CHECK(s["upstream"]["keySource"] == "workos.api_key_file (/etc/usersd/key)");
  std::string detail = s["upstream"]["detail"].get<std::string>();
  CHECK(detail.find("HTTP 401") != std::string::npos);
  CHECK(detail.find("/etc/usersd/key") != std::string::npos);
  CHECK(detail.find("sk_revoked") == std::string::npos);
  Json h = Ok(c.Call("admin.health"));
  CHECK(h["checks"]["configured"]["ok"] == true);
  CHECK(h["checks"]["upstream"]["ok"] == false);
  CHECK(h["checks"]["upstream"]["state"] == "unauthorized");
  CHECK(h["checks"]["upstream"]["detail"] == s["upstream"]["detail"]);
  Metrics mine;  // the daemon adds the WorkOS client's series (App::RegisterMetrics)
  rig.workos->ExportMetrics(mine);
  std::string text = mine.Render();
  CHECK(text.find("usersd_upstream_state{state=\"unauthorized\"} 1\n") != std::string::npos);
  CHECK(text.find("usersd_upstream_state{state=\"online\"} 0\n") != std::string::npos);
  // Any other answer means the key was taken.
  sync::HttpResponse found;
  found.status = 404;
  rig.workos->Observe(found);
  s = Ok(c.Call("admin.status"));
  CHECK(s["upstream"]["state"] == "online");
  CHECK_FALSE(s["upstream"].contains("detail"));
}

TEST_CASE("admin api: users.get finds by id, workosId and email; else UserNotFoundError", "[admin]") {
  Rig rig;
  std::string id = rig.SeedUser("user_1", "Ada@Example.com");
  Client c(rig);
  Json u = Ok(c.Call("admin.users.get", Json{{"id", id}}));
  CHECK(u["workosId"] == "user_1");
  CHECK(u["role"] == "member");
  CHECK(u["organizationId"].is_null());
  CHECK(Ok(c.Call("admin.users.get", Json{{"workosId", "user_1"}}))["id"] == id);
  CHECK(Ok(c.Call("admin.users.get", Json{{"email", "ada@example.COM"}}))["id"] == id);
  Json nf = FailError(c.Call("admin.users.get", Json{{"workosId", "user_404"}}));
  CHECK(nf == Json{{"_tag", "UserNotFoundError"}, {"userId", "user_404"}});
  CHECK(DefectMessage(c.Call("admin.users.get", Json{{"id", id}, {"email", "a@b.c"}})).rfind("id:", 0) == 0);
  CHECK(DefectMessage(c.Call("admin.users.get", Json{{"id", "zzz"}})) == "id: must be a UUID");
  CHECK(DefectMessage(c.Call("admin.users.get")).rfind("id:", 0) == 0);
}

TEST_CASE("admin api: users.list pages in id order with next", "[admin]") {
  Rig rig;
  for (int i = 0; i < 5; ++i) rig.SeedUser("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com");
  Client c(rig);
  std::vector<std::string> ids;
  Json after = nullptr;
  int pages = 0;
  do {
    Json p{{"limit", 2}};
    if (!after.is_null()) p["after"] = after;
    Json r = Ok(c.Call("admin.users.list", p));
    for (const auto& u : r["users"]) ids.push_back(u["id"]);
    after = r["next"];
    pages++;
  } while (!after.is_null());
  CHECK(pages == 3);
  REQUIRE(ids.size() == 5);
  CHECK(std::is_sorted(ids.begin(), ids.end()));
}

TEST_CASE("admin api: users.import is one all-or-nothing transaction that names the bad entry", "[admin]") {
  Rig rig;
  rig.SeedUser("user_old", "taken@example.com");
  Client c(rig);
  Json bad{{"users", Json::array({Json{{"workosId", "user_a"}, {"email", "a@example.com"}},
                                  Json{{"workosId", "user_b"}, {"email", "taken@example.com"}}})}};
  CHECK(DefectMessage(c.Call("admin.users.import", bad)) == "users[1].email: email already in use");
  CHECK(Ok(c.Call("admin.users.list"))["users"].size() == 1);  // user_a was rolled back too

  Json invalid{{"users", Json::array({Json{{"workosId", "user_a"}}, Json{{"workosId", "user_c"}, {"timezone", "X/Y"}}})}};
  CHECK(DefectMessage(c.Call("admin.users.import", invalid)).rfind("users[1].timezone:", 0) == 0);

  Json good{{"users", Json::array({Json{{"workosId", "user_a"}, {"email", "a@example.com"}, {"role", "owner"}},
                                   Json{{"workosId", "user_old"}, {"firstName", "Renamed"}}})}};
  Json r = Ok(c.Call("admin.users.import", good));
  CHECK(r["count"] == 2);
  CHECK(r["transactionId"] == 3);  // seed = 1, then one per imported user
  Json old = Ok(c.Call("admin.users.get", Json{{"workosId", "user_old"}}));
  CHECK(old["firstName"] == "Renamed");
  CHECK(old["email"] == "taken@example.com");  // absent fields unchanged
  CHECK(!old["updatedAt"].is_null());
  CHECK(Ok(c.Call("admin.users.get", Json{{"workosId", "user_a"}}))["role"] == "owner");
  CHECK(DefectMessage(c.Call("admin.users.import", Json::object())) == "users: required");
}

TEST_CASE("admin api: deadLetters.retry re-enqueues the value requested, unless a newer local write replaced it",
          "[admin]") {
  Rig rig;
  std::string id = rig.SeedUser("user_1", "a@example.com", "Current");
  int64_t old = rig.clock.NowMs();
  rig.Write([&](store::WriteTxn& t) -> Status {
    store::OutboxJob j;
    j.user_id = id;
    j.workos_id = "user_1";
    j.op = store::JobOp::kUpdate;
    j.fields = Json{{"first_name", "Stale"}};
    j.created_at_ms = old;
    j.attempts = 9;
    j.last_error = "HTTP 400";
    auto jid = t.EnqueueJob(j);
    if (!jid.ok()) return jid.status();
    j.id = *jid;
    return t.MoveToDeadLetter(j, 400, "{\"code\":\"bad\"}", old);
  });
  rig.clock.Advance(10 * 86400 * 1000LL);  // older than outbox.max_age
  Client c(rig);
  Json dl = Ok(c.Call("admin.deadLetters.list"))["deadLetters"];
  REQUIRE(dl.size() == 1);
  CHECK(dl[0]["status"] == 400);
  CHECK(dl[0]["op"] == "update");
  CHECK(dl[0]["body"] == "{\"code\":\"bad\"}");
  uint64_t dl_id = dl[0]["id"];

  CHECK(DefectMessage(c.Call("admin.deadLetters.retry", Json{{"id", dl_id + 100}})) ==
        "id: no dead letter with id " + std::to_string(dl_id + 100));
  CHECK(DefectMessage(c.Call("admin.deadLetters.retry")) == "id: required (or all: true)");
  CHECK(Ok(c.Call("admin.deadLetters.retry", Json{{"id", dl_id}}))["count"] == 1);
  CHECK(Ok(c.Call("admin.deadLetters.list"))["deadLetters"].empty());

  auto txn = rig.store->BeginRead();
  REQUIRE(txn.ok());
  auto jobs = txn->ListJobs(0);
  REQUIRE(jobs.ok());
  REQUIRE(jobs->size() == 1);
  const auto& j = jobs->front();
  CHECK(j.attempts == 0);
  CHECK(j.last_error.empty());
  CHECK(j.created_at_ms == rig.clock.NowMs());
  CHECK(j.next_attempt_at_ms == rig.clock.NowMs());
  // The value that was asked for and refused (SPEC 4; issue: a retry sent
  // the current value, which had reverted to WorkOS's, and "succeeded").
  CHECK(j.fields == Json{{"first_name", "Stale"}});
  Json ob = Ok(c.Call("admin.outbox.list"))["jobs"];
  REQUIRE(ob.size() == 1);
  CHECK(ob[0]["attempts"] == 0);
  CHECK(ob[0]["lastError"].is_null());
  CHECK(ob[0]["userId"] == id);

  // Dead again, but this time the user wrote first_name once more since:
  // the newer value is what WorkOS gets, not the dead letter's.
  rig.Write([&](store::WriteTxn& t) -> Status {
    auto cur = t.GetJob(j.id);
    if (!cur.ok()) return cur.status();
    store::OutboxJob again = **cur;
    again.version = store::Version{5, 0, 1};
    USERSD_RETURN_IF_ERROR(t.MoveToDeadLetter(again, 400, "{}", rig.clock.NowMs()));
    auto u = t.GetUser(id);
    if (!u.ok()) return u.status();
    store::UserRecord after = **u;
    after.owned_versions[1] = store::Version{9, 0, 1};  // first_name, written later
    return t.PutUser(after, *u);
  });
  CHECK(Ok(c.Call("admin.deadLetters.retry", Json{{"all", true}}))["count"] == 1);
  auto txn2 = rig.store->BeginRead();
  REQUIRE(txn2.ok());
  CHECK(txn2->ListJobs(0)->empty());
}

TEST_CASE("admin api: deadLetters.discard {all: true} drops every dead letter and counts them", "[admin]") {
  Rig rig;
  std::string id = rig.SeedUser("user_1", "a@example.com");
  rig.Write([&](store::WriteTxn& t) -> Status {
    for (int i = 0; i < 3; ++i) {
      store::OutboxJob j;
      j.user_id = id;
      j.workos_id = "user_1";
      j.op = store::JobOp::kDelete;
      auto jid = t.EnqueueJob(j);
      if (!jid.ok()) return jid.status();
      j.id = *jid;
      USERSD_RETURN_IF_ERROR(t.MoveToDeadLetter(j, 403, "no", 0));
    }
    return Status::Ok();
  });
  Client c(rig);
  CHECK(DefectMessage(c.Call("admin.deadLetters.discard", Json{{"all", true}, {"id", 1}})).rfind("id:", 0) == 0);
  CHECK(Ok(c.Call("admin.deadLetters.discard", Json{{"all", true}}))["count"] == 3);
  CHECK(Ok(c.Call("admin.deadLetters.discard", Json{{"all", true}}))["count"] == 0);
  CHECK(Ok(c.Call("admin.outbox.list"))["jobs"].empty());
}

TEST_CASE("admin api: changes sends one chunk per Ack, then follows live commits until Interrupt", "[admin]") {
  Rig rig;
  for (int i = 0; i < 150; ++i) rig.SeedUser("user_" + std::to_string(i), "u" + std::to_string(i) + "@example.com");
  Client c(rig);
  c.Send(Json{{"_tag", "Request"}, {"id", "9"}, {"tag", "admin.changes"}, {"payload", {{"sinceTransactionId", 20}}},
              {"headers", Json::array()}});
  Json f = c.Next();
  REQUIRE(f["_tag"] == "Chunk");
  CHECK(f["requestId"] == "9");
  REQUIRE(f["values"].size() == 100);
  CHECK(f["values"][0]["transactionId"] == 21);  // sinceTransactionId is exclusive
  CHECK(f["values"][0]["op"] == "upsert");
  CHECK(f["values"][0]["user"]["workosId"] == "user_20");
  CHECK(f["values"][99]["transactionId"] == 120);
  // No Ack, no more chunks.
  CHECK(c.Next(300).is_null());
  c.Send(Json{{"_tag", "Ack"}, {"requestId", "9"}});
  f = c.Next();
  REQUIRE(f["_tag"] == "Chunk");
  REQUIRE(f["values"].size() == 30);
  CHECK(f["values"][29]["transactionId"] == 150);
  c.Send(Json{{"_tag", "Ack"}, {"requestId", "9"}});
  CHECK(c.Next(300).is_null());  // caught up

  // A commit after the stream caught up arrives live (the 100 ms poll).
  rig.writer->Submit(
      [](store::WriteTxn& t) -> Status {
        auto u = t.FindByWorkosId("user_3");
        if (!u.ok()) return u.status();
        store::UserRecord after = **u;
        after.deleted_at_ms = 1;
        auto txid = t.NextTxid();
        if (!txid.ok()) return txid.status();
        after.txid = *txid;
        USERSD_RETURN_IF_ERROR(t.PutUser(after, *u));
        store::Change ch;
        ch.txid = after.txid;
        ch.op = store::ChangeOp::kDelete;
        ch.user = after;
        return t.AppendChange(ch);
      },
      [](Status st) { REQUIRE(st.ok()); });
  f = c.Next();
  REQUIRE(f["_tag"] == "Chunk");
  REQUIRE(f["values"].size() == 1);
  CHECK(f["values"][0]["transactionId"] == 151);
  CHECK(f["values"][0]["op"] == "delete");
  CHECK(!f["values"][0]["user"]["deletedAt"].is_null());

  c.Send(Json{{"_tag", "Interrupt"}, {"requestId", "9"}});
  f = c.Next();
  CHECK(f["_tag"] == "Exit");
  CHECK(f["requestId"] == "9");
  CHECK(f["exit"]["_tag"] == "Success");
  CHECK(Ok(c.Call("admin.status"))["lastTransactionId"] == 151);
}

TEST_CASE("admin api: a changes stream ends once its closed connection is written to", "[admin]") {
  Rig rig;
  {
    Client c(rig);
    c.Send(Json{{"_tag", "Request"}, {"id", "1"}, {"tag", "admin.changes"}, {"headers", Json::array()}});
    CHECK(c.Next(300).is_null());  // empty store: nothing yet, polling
    c.Close();
  }
  // The server learns that a quiet stream's client is gone when it next
  // writes to it (a half-closed client may still be reading): commit one
  // change, which the stream tries to send.
  rig.SeedUser("user_1", "a@example.com");
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < until) {
    uv_run(&rig.loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  Client c2(rig);
  std::string text = Ok(c2.Call("admin.metrics"))["text"];
  CHECK(text.find("usersd_admin_streams 0") != std::string::npos);
  CHECK(DefectMessage(c2.Call("admin.changes", Json{{"sinceTransactionId", -1}})).rfind("sinceTransactionId:", 0) == 0);
}

TEST_CASE("admin api: backup refuses relative paths and writes a copy with its transactionId", "[admin]") {
  Rig rig;
  rig.cfg.admin_socket.backup_dir = rig.dir / "backups";
  rig.SeedUser("user_1", "a@example.com");
  rig.SeedUser("user_2", "b@example.com");
  Client c(rig);
  CHECK(DefectMessage(c.Call("admin.backup", Json{{"path", "relative/dir"}})).rfind("path: must be absolute", 0) == 0);
  CHECK(DefectMessage(c.Call("admin.backup")) == "path: required");
  // Outside admin_socket.backup_dir (issue 21): refused, nothing written.
  CHECK(DefectMessage(c.Call("admin.backup", Json{{"path", rig.dir / "elsewhere"}}))
            .rfind("path: must be below admin_socket.backup_dir", 0) == 0);
  CHECK(DefectMessage(c.Call("admin.backup", Json{{"path", rig.dir / "backups/../elsewhere"}}))
            .rfind("path: must be below admin_socket.backup_dir", 0) == 0);
  CHECK_FALSE(fs::exists(rig.dir / "elsewhere"));
  std::string dest = rig.dir / "backups/backup";
  Json r = Ok(c.Call("admin.backup", Json{{"path", dest + "/"}}));
  CHECK(r["path"] == dest);
  CHECK(r["transactionId"] == 2);
  CHECK(r["bytes"].get<uint64_t>() == fs::file_size(dest + "/data.mdb"));
  CHECK_FALSE(fs::exists(dest + "/lock.mdb"));
  // A second backup into the same directory is refused, not overwritten.
  CHECK(DefectMessage(c.Call("admin.backup", Json{{"path", dest}})).find("already holds a data.mdb") !=
        std::string::npos);

  store::StoreOptions so;
  so.path = dest;
  auto copy = store::Store::Open(so);
  REQUIRE(copy.ok());
  auto txn = (*copy)->BeginRead();
  REQUIRE(txn.ok());
  CHECK(txn->LastTxid() == 2);
  auto u = txn->FindByWorkosId("user_2");
  REQUIRE(u.ok());
  REQUIRE(u->has_value());
  CHECK((*u)->email == "b@example.com");
}

TEST_CASE("admin api: config.reload reports reloaded and needsRestart keys, or the failure", "[admin]") {
  Rig rig;
  Client c(rig);
  CHECK(Ok(c.Call("admin.config.reload")) ==
        Json{{"reloaded", Json::array({"log.level"})}, {"needsRestart", Json::array({"socket.path"})}});
  rig.reload_status = Status::InvalidArgument("log.level (line 3): must be one of error, warn, info, debug");
  Json e = FailError(c.Call("admin.config.reload"));
  CHECK(e["_tag"] == "InternalServerError");
  CHECK(e["detail"].get<std::string>().find("log.level (line 3)") != std::string::npos);
}

TEST_CASE("admin api: metrics include the admin request counters and store gauges", "[admin]") {
  Rig rig;
  Client c(rig);
  Ok(c.Call("admin.status"));
  std::string text = Ok(c.Call("admin.metrics"))["text"];
  CHECK(text.find("usersd_admin_requests_total{method=\"admin.status\",outcome=\"ok\"} 1") != std::string::npos);
  CHECK(text.find("usersd_store_file_bytes ") != std::string::npos);
  CHECK(text.find("usersd_outbox_oldest_age_seconds 0") != std::string::npos);
  CHECK(text.find("usersd_build_info{version=\"test\"} 1") != std::string::npos);
  CHECK(text.find("# TYPE usersd_admin_requests_total counter") != std::string::npos);
}

}  // namespace
}  // namespace usersd::admin
