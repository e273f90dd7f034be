// Tests for domain/user_mutations.h, domain/identity.h and
// domain/shared_fields.h: the one place that changes users, named after the
// promises in their headers (SPEC 4b).
#include <catch2/catch.hpp>
#include <chrono>

#include "domain/identity.h"
#include "domain/shared_fields.h"
#include "domain/user_mutations.h"
#include "tests/unit/temp_dir.h"

namespace usersd::domain {
namespace {

using store::JobOp;
using store::UserRecord;
using usersd::testing::TempDir;

struct Db {
  TempDir dir;
  std::unique_ptr<store::Store> store;
  SyncPolicy sync;
  int64_t now = 1'800'000'000'000;

  Db() {
    store::StoreOptions o;
    o.path = dir.path();
    o.map_size_bytes = 256ull << 20;
    auto s = store::Store::Open(o);
    REQUIRE(s.ok());
    store = std::move(*s);
  }
  MutationContext Ctx() { return MutationContext{now, &sync}; }
  // Runs `fn` in one write transaction, commits it and makes it durable, as
  // the Writer does before it acknowledges (readers see a transactionId in
  // the change feed only then, store.h).
  template <class Fn>
  auto Write(Fn fn) {
    auto t = store->BeginWrite();
    REQUIRE(t.ok());
    auto r = fn(*t);
    REQUIRE(t->Commit().ok());
    REQUIRE(store->Sync().ok());
    return r;
  }
  std::optional<UserRecord> ByWorkos(const std::string& w) {
    auto t = store->BeginRead();
    REQUIRE(t.ok());
    auto u = t->FindByWorkosId(w);
    REQUIRE(u.ok());
    return *u;
  }
  std::vector<store::OutboxJob> Jobs() {
    auto t = store->BeginRead();
    REQUIRE(t.ok());
    auto j = t->ListJobs(0);
    REQUIRE(j.ok());
    return *j;
  }
  std::vector<store::Change> Changes() {
    auto t = store->BeginRead();
    REQUIRE(t.ok());
    auto c = t->ChangesSince(0, 100000);
    REQUIRE(c.ok());
    return *c;
  }
};

Profile P(std::string workos_id, std::string email, std::optional<std::string> external_id = std::nullopt,
          Json metadata = Json::object()) {
  Profile p;
  p.workos_id = std::move(workos_id);
  p.email = std::move(email);
  p.first_name = "Ada";
  p.last_name = "Lovelace";
  p.created_at_ms = 1'700'000'000'000;
  p.updated_at_ms = 1'700'000'000'500;
  p.external_id = std::move(external_id);
  p.metadata = std::move(metadata);
  return p;
}

Json MetadataWith(const Json& doc, const MetadataPolicy& m = {}) {
  auto md = MetadataForPut(Json::object(), doc, m);
  REQUIRE(md.ok());
  return *md;
}

// ------------------------------------------------------------ identity

TEST_CASE("identity: version-5 UUIDs match RFC 9562's test vector", "[domain][identity]") {
  // RFC 9562 appendix A.4: DNS namespace, "www.example.com".
  CHECK(UuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com") == "2ed6657d-e927-568b-95e1-2665a8aea6a2");
  CHECK(UuidV5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "www.example.com") == "2ed6657d-e927-568b-95e1-2665a8aea6a2");
  // The default namespace is itself the documented version-5 UUID.
  CHECK(UuidV5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "urn:usersd:workos-user") == kDefaultIdentityNamespace);
}

TEST_CASE("identity: a UUID external_id is the id; anything else gives the version-5 id", "[domain][identity]") {
  std::string ns(kDefaultIdentityNamespace);
  std::string v5 = UuidV5(ns, "user_1");
  CHECK(IdForWorkosUser(ns, "user_1", std::nullopt) == v5);
  CHECK(IdForWorkosUser(ns, "user_1", std::string("legacy-42")) == v5);
  CHECK(IdForWorkosUser(ns, "user_1", std::string("AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE")) ==
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
  CHECK(IdForWorkosUser("00000000-0000-0000-0000-000000000001", "user_1", std::nullopt) != v5);
}

// -------------------------------------------------------- shared fields

TEST_CASE("shared fields: the document is ASCII, chunked under every key, and reads back", "[domain][metadata]") {
  MetadataPolicy m;
  Json doc = {{"timezone", "Europe/Paris"},
              {"settings", {{"note", std::string(900, 'x') + "é☃"}}},
              {"isOnboarded", true},
              {"avatarUrl", nullptr}};
  Json shown = {{"app", "mine"}, {"usersd_7", "stale chunk of a host with keys: 8"}};
  auto md = MetadataForPut(shown, doc, m);
  REQUIRE(md.ok());
  CHECK((*md)["app"] == "mine");
  CHECK((*md)["usersd_7"] == "");  // stale chunks vanish under merge semantics
  for (int i = 0; i < 6; ++i) {
    REQUIRE(md->contains("usersd_" + std::to_string(i)));
    const std::string& v = (*md)["usersd_" + std::to_string(i)].get_ref<const std::string&>();
    CHECK(v.size() <= kMetadataValueChars);
    for (char c : v) CHECK(static_cast<unsigned char>(c) < 0x80);
  }
  CHECK((*md)["usersd_1"] != "");
  CHECK((*md)["usersd_5"] == "");
  auto back = DecodeDocument(*md, m);
  REQUIRE(back.ok());
  REQUIRE(back->has_value());
  CHECK(**back == doc);
}

TEST_CASE("shared fields: too large a document, or too many keys, is refused", "[domain][metadata]") {
  MetadataPolicy m;
  m.keys = 1;
  CHECK_FALSE(MetadataForPut(Json::object(), Json{{"settings", {{"a", std::string(700, 'x')}}}}, m).ok());
  m.keys = 6;
  Json shown = Json::object();
  for (int i = 0; i < 5; ++i) shown["app" + std::to_string(i)] = "v";
  auto r = MetadataForPut(shown, Json::object(), m);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("10 metadata keys") != std::string::npos);
  UserRecord u;
  u.settings = Json{{"a", std::string(4000, 'x')}};
  Status st = CheckDocumentFits(u, m, "settings");
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().rfind("settings: ", 0) == 0);
  CHECK(st.message().find("3600") != std::string::npos);
  m.enabled = false;
  CHECK(CheckDocumentFits(u, m, "settings").ok());
}

TEST_CASE("shared fields: no chunk is no document; an unreadable one is an error", "[domain][metadata]") {
  MetadataPolicy m;
  auto none = DecodeDocument(Json{{"app", "x"}}, m);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK_FALSE(DecodeDocument(Json{{"usersd_0", "{not json"}}, m).ok());
  CHECK_FALSE(DecodeDocument(Json{{"usersd_0", "[1,2]"}}, m).ok());
}

// ------------------------------------------------------------ mutations

TEST_CASE("mutations: a user first seen in an event gets the shared id and the document's fields",
          "[domain][mutations]") {
  Db db;
  Json doc = {{"timezone", "UTC"}, {"isOnboarded", true}, {"settings", {{"k", 1}}}};
  auto r = db.Write([&](store::WriteTxn& t) {
    return ApplyRemoteUser(t, P("user_a", "a@example.com", std::nullopt, MetadataWith(doc)), db.Ctx());
  });
  REQUIRE(r.ok());
  CHECK(*r == RemoteOutcome::kCreated);
  auto u = db.ByWorkos("user_a");
  REQUIRE(u);
  CHECK(u->id == UuidV5(kDefaultIdentityNamespace, "user_a"));
  CHECK(u->timezone == std::optional<std::string>("UTC"));
  CHECK(u->is_onboarded);
  CHECK(u->settings == std::optional<Json>(Json{{"k", 1}}));
  CHECK(u->created_at_ms == 1'700'000'000'000);
  CHECK(db.Jobs().empty());  // hosts that only read publish nothing
}

TEST_CASE("mutations: a field with an undelivered local change keeps its local value", "[domain][mutations]") {
  Db db;
  REQUIRE(
      db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P("user_h", "h@example.com"), db.Ctx()); }).ok());
  auto u = db.ByWorkos("user_h");
  Actor self{u->id, std::nullopt, false};
  UserPatch patch;
  patch.id = u->id;
  patch.timezone = std::optional<std::string>("Asia/Tokyo");
  auto m = db.Write([&](store::WriteTxn& t) { return ApplyPatch(t, self, patch, db.Ctx()); });
  REQUIRE(m.ok());
  REQUIRE(m->queued_job);
  Profile later =
      P("user_h", "h@example.com", std::nullopt, MetadataWith({{"timezone", "UTC"}, {"isOnboarded", true}}));
  later.updated_at_ms = 1'700'000'009'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, later, db.Ctx()); }).ok());
  u = db.ByWorkos("user_h");
  CHECK(u->timezone == std::optional<std::string>("Asia/Tokyo"));  // held
  CHECK(u->is_onboarded);                                          // not held: applied
}

TEST_CASE("mutations: a UUID external_id other than the local id re-keys the user in one transaction",
          "[domain][mutations][rekey]") {
  Db db;
  REQUIRE(
      db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P("user_k", "k@example.com"), db.Ctx()); }).ok());
  std::string old_id = db.ByWorkos("user_k")->id;
  Actor self{old_id, std::nullopt, false};
  UserPatch patch;
  patch.id = old_id;
  patch.first_name = "Pending";
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyPatch(t, self, patch, db.Ctx()); }).ok());
  size_t changes_before = db.Changes().size();

  std::string legacy = "0f0e0d0c-0b0a-4909-8807-060504030201";
  Profile p = P("user_k", "k@example.com", legacy);
  p.updated_at_ms = 1'700'000'001'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, p, db.Ctx()); }).ok());
  auto u = db.ByWorkos("user_k");
  REQUIRE(u);
  CHECK(u->id == legacy);
  CHECK(u->first_name == "Pending");  // still held by its job
  auto t = db.store->BeginRead();
  CHECK_FALSE(t->GetUser(old_id)->has_value());
  auto changes = db.Changes();
  REQUIRE(changes.size() >= changes_before + 2);
  CHECK(changes[changes.size() - 2].op == store::ChangeOp::kDelete);
  CHECK(changes[changes.size() - 2].user.id == old_id);
  CHECK(changes.back().op == store::ChangeOp::kUpsert);
  CHECK(changes.back().user.id == legacy);
  auto jobs = t->JobsOfUser(legacy);
  REQUIRE(jobs.ok());
  // The job followed its user.
  REQUIRE(jobs->size() == 1);
  CHECK((*jobs)[0].op == JobOp::kUpdate);
  CHECK(t->JobsOfUser(old_id)->empty());
}

TEST_CASE("mutations: a held field WorkOS shows otherwise is read again once this host's jobs are delivered",
          "[domain][mutations][held]") {
  Db db;
  REQUIRE(
      db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P("user_r", "r@example.com"), db.Ctx()); }).ok());
  std::string id = db.ByWorkos("user_r")->id;
  Actor self{id, std::nullopt, false};
  UserPatch patch;
  patch.id = id;
  patch.last_name = "Mine";
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyPatch(t, self, patch, db.Ctx()); }).ok());
  // Another host's value arrives while this host's job is still in the outbox.
  Profile theirs = P("user_r", "r@example.com");
  theirs.last_name = "Theirs";
  theirs.updated_at_ms = 1'700'000'005'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, theirs, db.Ctx()); }).ok());
  CHECK(db.ByWorkos("user_r")->last_name == "Mine");
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  // Not yet: the job is still there.
  CHECK_FALSE(*db.Write([&](store::WriteTxn& t) { return QueueResyncIfMarked(t, id, db.Ctx()); }));
  // Delivered: one re-read, once.
  db.Write([&](store::WriteTxn& t) { return t.DeleteJob(jobs[0].id).ok(); });
  CHECK(*db.Write([&](store::WriteTxn& t) { return QueueResyncIfMarked(t, id, db.Ctx()); }));
  CHECK_FALSE(*db.Write([&](store::WriteTxn& t) { return QueueResyncIfMarked(t, id, db.Ctx()); }));
  jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].op == JobOp::kFetch);
  CHECK(jobs[0].fields == Json{{"resync", true}});
}

TEST_CASE("mutations: an imported id WorkOS refused stays on this host", "[domain][mutations][rekey]") {
  Db db;
  UserImport e;
  e.workos_id = "user_i";
  e.id = "11111111-2222-4333-8444-555555555555";
  e.email = "i@example.com";
  auto m = db.Write([&](store::WriteTxn& t) { return ImportUser(t, e, 0, db.Ctx()); });
  REQUIRE(m.ok());
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].fields["external_id"] == *e.id);
  CHECK(jobs[0].fields["external_id_import"] == true);
  CHECK(jobs[0].fields["email"] == "i@example.com");
  REQUIRE(db.Write([&](store::WriteTxn& t) { return KeepImportedId(t, "user_i", db.Ctx()); }).ok());
  Profile p = P("user_i", "i@example.com", UuidV5(kDefaultIdentityNamespace, "user_i"));
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, p, db.Ctx()); }).ok());
  CHECK(db.ByWorkos("user_i")->id == *e.id);
}

TEST_CASE("mutations: an email held by another local user is given once that user releases it",
          "[domain][mutations][email]") {
  Db db;
  REQUIRE(db.Write([&](store::WriteTxn& t) {
              return ApplyRemoteUser(t, P("user_y", "shared@example.com"), db.Ctx());
            }).ok());
  // WorkOS moved the address to user_x; this host has not seen user_y's change yet.
  REQUIRE(db.Write([&](store::WriteTxn& t) {
              return ApplyRemoteUser(t, P("user_x", "shared@example.com"), db.Ctx());
            }).ok());
  CHECK(db.ByWorkos("user_x")->email.empty());
  Profile y = P("user_y", "new-y@example.com");
  y.updated_at_ms = 1'700'000'002'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, y, db.Ctx()); }).ok());
  CHECK(db.ByWorkos("user_y")->email == "new-y@example.com");
  CHECK(db.ByWorkos("user_x")->email == "shared@example.com");
}

TEST_CASE("mutations: the backfill publishes every id not known to be set, once, resumably",
          "[domain][mutations][backfill]") {
  Db db;
  db.Write([&](store::WriteTxn& t) {
    for (int i = 0; i < 7; ++i) {
      UserRecord u;
      u.id = "00000000-0000-4000-8000-00000000000" + std::to_string(i);
      u.workos_id = "user_" + std::to_string(i);
      u.created_at_ms = 1;
      if (i == 1) u.external_id = u.id;         // published already
      if (i == 2) u.external_id = "app-owned";  // the application's: never changed
      if (i == 3) u.deleted_at_ms = 5;
      REQUIRE(store::CommitUserChange(t, u, std::nullopt, store::ChangeOp::kUpsert, 1).ok());
    }
    return 0;
  });
  size_t queued = 0;
  std::string after;
  int batches = 0;
  do {
    auto r = db.Write([&](store::WriteTxn& t) { return BackfillExternalIds(t, after, 3, db.Ctx(), &queued); });
    REQUIRE(r.ok());
    after = *r;
    ++batches;
  } while (!after.empty());
  CHECK(batches == 3);
  CHECK(queued == 4);  // 0, 4, 5, 6
  for (const auto& j : db.Jobs()) {
    CHECK(j.fields["external_id"] == j.user_id);
    CHECK(j.fields["isOnboarded"] == false);  // the shared fields go with it
    CHECK_FALSE(j.fields.contains("email"));
  }
}

// The per-user index: the held-fields read of one user touches that user's
// jobs only. Not a timed test: run by hand for the figures in
// docs/bench-history.md ("build-asan/tests/test_domain_mutations_test [.bench]").
TEST_CASE("mutations: held fields with 100,000 queued jobs of other users", "[.bench]") {
  Db db;
  db.Write([&](store::WriteTxn& t) {
    for (int i = 0; i < 100000; ++i) {
      store::OutboxJob j;
      j.user_id = "other-" + std::to_string(i % 5000);
      j.workos_id = "w";
      j.fields = Json{{"first_name", "x"}};
      REQUIRE(t.EnqueueJob(j).ok());
    }
    store::OutboxJob mine;
    mine.user_id = "me";
    mine.workos_id = "w-me";
    mine.fields = Json{{"timezone", "UTC"}};
    REQUIRE(t.EnqueueJob(mine).ok());
    return 0;
  });
  auto t = db.store->BeginRead();
  auto start = std::chrono::steady_clock::now();
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    auto held = PendingFields(*t, "me");
    REQUIRE(held.ok());
    REQUIRE(held->count("timezone") == 1);
  }
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / n;
  auto s2 = std::chrono::steady_clock::now();
  auto all = t->ListJobs(0);  // what the poller scanned per page before the index
  double scan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s2).count();
  WARN("PendingFields with 100,001 queued jobs: " << us << " us per user; a scan of the outbox: " << scan_ms << " ms ("
                                                  << all->size() << " jobs)");
}

}  // namespace
}  // namespace usersd::domain
