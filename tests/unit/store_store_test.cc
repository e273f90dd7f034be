// Tests of store/store.h: the LMDB-backed Store, its indexes, the outbox, the
// change feed, the record encoding and hot backup. Each test uses its own
// temporary directory.
#include "store/store.h"

#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>

#include "store/meta_keys.h"
#include "store/record_codec.h"
#include "tests/unit/temp_dir.h"
#include <filesystem>
#include <fstream>
#include <string>
#include <iterator>
#include <thread>
#include <utility>
#include <vector>

namespace usersd::store {
namespace {

namespace fs = std::filesystem;

using usersd::testing::TempDir;

std::unique_ptr<Store> OpenAt(const std::string& path, const Clock* clock = nullptr) {
  StoreOptions o;
  o.path = path;
  o.map_size_bytes = 4ull << 20;
  o.max_map_size_bytes = 64ull << 20;
  if (clock) o.clock = clock;
  auto s = Store::Open(o);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(s).value();
}

UserRecord MakeUser(const std::string& id, const std::string& workos_id, const std::string& email) {
  UserRecord u;
  u.id = id;
  u.workos_id = workos_id;
  u.email = email;
  u.first_name = "Ada";
  u.last_name = "Lovelace";
  u.created_at_ms = 1'700'000'000'000;
  return u;
}

// Runs fn in one write transaction, commits it and makes it durable, as the
// Writer does before it acknowledges (in sync_mode one, readers see its
// transactionIds only then).
template <class Fn>
void Write(Store& s, Fn fn) {
  auto t = s.BeginWrite();
  REQUIRE(t.ok());
  fn(*t);
  Status st = t->Commit();
  INFO(st.ToString());
  REQUIRE(st.ok());
  REQUIRE(s.Sync().ok());
}

void Put(Store& s, const UserRecord& u) {
  Write(s, [&](WriteTxn& t) {
    auto prev = t.GetUser(u.id);
    REQUIRE(prev.ok());
    Status st = t.PutUser(u, *prev);
    INFO(st.ToString());
    REQUIRE(st.ok());
  });
}

std::optional<UserRecord> Get(Store& s, const std::string& id) {
  auto r = s.BeginRead();
  REQUIRE(r.ok());
  auto u = r->GetUser(id);
  REQUIRE(u.ok());
  return *u;
}

std::optional<UserRecord> ByEmail(Store& s, const std::string& email) {
  auto r = s.BeginRead();
  REQUIRE(r.ok());
  auto u = r->FindByEmail(email);
  REQUIRE(u.ok());
  return *u;
}

std::optional<UserRecord> ByWorkos(Store& s, const std::string& wid) {
  auto r = s.BeginRead();
  REQUIRE(r.ok());
  auto u = r->FindByWorkosId(wid);
  REQUIRE(u.ok());
  return *u;
}

UserRecord Must(const std::optional<UserRecord>& u) {
  REQUIRE(u.has_value());
  return *u;
}

// The id of a lookup's result, or "" when nothing was found.
std::string IdOf(const std::optional<UserRecord>& u) {
  return u ? u->id : std::string();
}

void RequireSameUser(const UserRecord& a, const UserRecord& b) {
  CHECK(a.id == b.id);
  CHECK(a.workos_id == b.workos_id);
  CHECK(a.email == b.email);
  CHECK(a.first_name == b.first_name);
  CHECK(a.last_name == b.last_name);
  CHECK(a.avatar_url == b.avatar_url);
  CHECK(a.user_type == b.user_type);
  CHECK(a.settings == b.settings);
  CHECK(a.is_onboarded == b.is_onboarded);
  CHECK(a.timezone == b.timezone);
  CHECK(a.created_at_ms == b.created_at_ms);
  CHECK(a.updated_at_ms == b.updated_at_ms);
  CHECK(a.deleted_at_ms == b.deleted_at_ms);
  CHECK(a.organization_id == b.organization_id);
  CHECK(a.role == b.role);
  CHECK(a.profile_picture_url == b.profile_picture_url);
  CHECK(a.profile_pending == b.profile_pending);
  CHECK(a.workos_updated_at_ms == b.workos_updated_at_ms);
  CHECK(a.txid == b.txid);
}

// Writes raw bytes into a named database, bypassing the Store (which must be
// closed): how tests simulate a corrupted record on disk.
void PokeRaw(const std::string& path, Table table, const std::string& key, const std::string& value) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 16);
  REQUIRE(mdb_env_open(env, path.c_str(), MDB_NOTLS, 0600) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi dbi;
  REQUIRE(mdb_dbi_open(txn, TableName(table), 0, &dbi) == 0);
  MDB_val k{key.size(), const_cast<char*>(key.data())};
  MDB_val v{value.size(), const_cast<char*>(value.data())};
  REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

// ------------------------------------------------------------------ opening

TEST_CASE("store: open creates the directory and the store files", "[store]") {
  TempDir dir;
  std::string path = dir.sub("a/b/store");
  FakeClock clock(1'800'000'000'000);
  auto s = OpenAt(path, &clock);
  CHECK(fs::exists(path + "/data.mdb"));
  CHECK(fs::exists(path + "/lock.mdb"));
  CHECK(s->created_at_ms() == 1'800'000'000'000);
  CHECK(s->path() == path);
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  CHECK(r->LastTxid() == 0);
  auto v = r->GetMeta("schema_version");
  REQUIRE(v.ok());
  CHECK(*v == std::optional<std::string>("1"));
}

TEST_CASE("store: reopening keeps data and the creation time", "[store]") {
  TempDir dir;
  FakeClock clock(1'800'000'000'000);
  UserRecord u = MakeUser("u1", "user_01", "ada@example.com");
  {
    auto s = OpenAt(dir.path(), &clock);
    Put(*s, u);
    Write(*s, [](WriteTxn& t) { REQUIRE(t.PutMeta("events_cursor", "event_42").ok()); });
  }
  clock.Advance(86'400'000);
  auto s = OpenAt(dir.path(), &clock);
  CHECK(s->created_at_ms() == 1'800'000'000'000);
  auto got = Get(*s, "u1");
  REQUIRE(got);
  RequireSameUser(*got, u);
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  auto cursor = r->GetMeta("events_cursor");
  REQUIRE(cursor.ok());
  CHECK(*cursor == std::optional<std::string>("event_42"));
}

TEST_CASE("store: the meta keys keep the names stores on disk hold", "[store]") {
  // A store written by an earlier release is read with these names: a
  // constant may be renamed in code, never its string.
  CHECK(kMetaSchemaVersion == "schema_version");
  CHECK(kMetaCreatedAt == "created_at");
  CHECK(kMetaLastTxid == "last_txid");
  CHECK(kMetaNextJobId == "next_job_id");
  CHECK(kMetaJobsByUserIndex == "jobs_by_user_index");
  CHECK(kMetaEmailIndex == "email_index");
  CHECK(kMetaFreelistNudge == "freelist_nudge");
  CHECK(kMetaHostId == "host_id");
  CHECK(kMetaClock == "hlc");
  CHECK(kMetaEmailWaitPrefix == "email_wait:");
  CHECK(kMetaResyncPrefix == "resync:");
  CHECK(kMetaExternalIdBackfill == "external_id_backfill");
  CHECK(kMetaEventsCursor == "events_cursor");
  CHECK(kMetaEventsCursorAt == "events_cursor_at");
  CHECK(kMetaEventsRangeStart == "events_range_start");
  CHECK(kMetaEventsCaughtUpAt == "events_caught_up_at");
  CHECK(kMetaReconcileState == "reconcile");
  CHECK(kMetaReconcileLastFinished == "reconcile_last_finished");
  CHECK(kMetaReconcileSeenPrefix == "rcs:");
  CHECK(kMetaJwks == "jwks");
  CHECK(kMetaJwksFetchedAt == "jwks_fetched_at");
}

TEST_CASE("store: a store of another schema version is refused with a clear message", "[store]") {
  TempDir dir;
  {
    auto s = OpenAt(dir.path());
    Write(*s, [](WriteTxn& t) { REQUIRE(t.PutMeta("schema_version", "2").ok()); });
  }
  StoreOptions o;
  o.path = dir.path();
  auto s = Store::Open(o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kCorruption);
  CHECK_THAT(s.status().ToString(), Catch::Contains("schema version 2") && Catch::Contains("expected 1"));
}

TEST_CASE("store: opening a store that this process already has open is refused", "[store]") {
  // LMDB forbids two environments on one file in one process: closing either
  // drops the other's file locks.
  TempDir dir;
  auto s = OpenAt(dir.path());
  StoreOptions o;
  o.path = dir.path() + "/.";
  auto second = Store::Open(o);
  REQUIRE_FALSE(second.ok());
  CHECK_THAT(second.status().ToString(), Catch::Contains("already open"));
  s.reset();
  auto third = Store::Open(o);
  CHECK(third.ok());
}

TEST_CASE("store: opening a path that is a file fails with IOError", "[store]") {
  TempDir dir;
  std::string file = dir.sub("plain");
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
  }
  StoreOptions o;
  o.path = file + "/store";
  auto s = Store::Open(o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kIOError);
}

// -------------------------------------------------------------------- users

TEST_CASE("store: every UserRecord field round-trips through PutUser and the lookups", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());

  UserRecord full = MakeUser("6f1c2a3e-0000-4000-8000-000000000001", "user_01FULL", "Grace.Hopper@Example.COM");
  full.first_name = "Grâce";  // non-ASCII survives
  full.last_name = "Hopper";
  full.avatar_url = "https://img.example.com/g.png";
  full.user_type = "machine";
  full.settings = Json{{"doNotDisturb", true},
                       {"quietHoursStart", "22:00"},
                       {"theme", {{"mode", "dark"}, {"accent", 3}, {"ratio", 1.5}}},
                       {"unknown", Json::array({1, "two", nullptr})}};
  full.is_onboarded = true;
  full.timezone = "Europe/Paris";
  full.created_at_ms = 1'700'000'000'123;
  full.updated_at_ms = 1'700'000'100'456;
  full.organization_id = "org_01ABC";
  full.role = "admin";
  full.profile_picture_url = "https://workos.example/pic.png";
  full.profile_pending = true;
  full.workos_updated_at_ms = 1'700'000'050'789;
  full.txid = 77;

  UserRecord bare = MakeUser("6f1c2a3e-0000-4000-8000-000000000002", "user_01BARE", "");
  bare.first_name = "";
  bare.last_name = "";

  Put(*s, full);
  Put(*s, bare);

  auto g = Get(*s, full.id);
  REQUIRE(g);
  RequireSameUser(*g, full);
  auto w = ByWorkos(*s, "user_01FULL");
  REQUIRE(w);
  RequireSameUser(*w, full);
  for (const char* e : {"grace.hopper@example.com", "GRACE.HOPPER@EXAMPLE.COM", "Grace.Hopper@Example.COM"}) {
    INFO(e);
    auto m = ByEmail(*s, e);
    REQUIRE(m);
    CHECK(m->id == full.id);
  }

  auto b = Get(*s, bare.id);
  REQUIRE(b);
  RequireSameUser(*b, bare);
  CHECK_FALSE(b->avatar_url);
  CHECK_FALSE(b->settings);
  CHECK_FALSE(b->timezone);
  CHECK_FALSE(b->updated_at_ms);
  CHECK_FALSE(b->deleted_at_ms);
  CHECK_FALSE(b->organization_id);
  CHECK_FALSE(b->profile_picture_url);

  // Clearing optional fields really clears them.
  UserRecord cleared = full;
  cleared.avatar_url.reset();
  cleared.settings.reset();
  cleared.timezone.reset();
  Put(*s, cleared);
  auto c = Get(*s, full.id);
  REQUIRE(c);
  RequireSameUser(*c, cleared);

  CHECK_FALSE(Get(*s, "missing"));
  CHECK_FALSE(Get(*s, ""));
  CHECK_FALSE(ByWorkos(*s, "user_missing"));
  CHECK_FALSE(ByEmail(*s, "nobody@example.com"));
  CHECK_FALSE(ByEmail(*s, ""));
}

TEST_CASE("store: a second live user with the same email in another case is refused", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Put(*s, MakeUser("u1", "w1", "Ada@Example.com"));
  auto t = s->BeginWrite();
  REQUIRE(t.ok());
  Status st = t->PutUser(MakeUser("u2", "w2", "ada@EXAMPLE.com"), std::nullopt);
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message() == "email already in use");
  t->Abort();
  CHECK_FALSE(Get(*s, "u2"));
  CHECK(IdOf(ByEmail(*s, "ADA@example.com")) == "u1");
}

TEST_CASE("store: emails are unique under Unicode case folding and NFC, not only ASCII case", "[store]") {
  // Issue 21, item 8.
  TempDir dir;
  auto s = OpenAt(dir.path());
  Put(*s, MakeUser("u1", "w1", "\xC3\x89mile@example.fr"));  // Émile, precomposed
  Put(*s, MakeUser("u2", "w2", "strasse@example.de"));
  for (const char* same : {"\xC3\xA9mile@example.fr",   // émile
                           "E\xCC\x81MILE@EXAMPLE.FR",  // E + combining acute, upper case
                           "STRA\xC3\x9F"
                           "E@example.de"}) {  // STRAßE: ß folds to ss
    INFO(same);
    auto t = s->BeginWrite();
    REQUIRE(t.ok());
    Status st = t->PutUser(MakeUser("u3", "w3", same), std::nullopt);
    CHECK(st.message() == "email already in use");
    t->Abort();
    CHECK_FALSE(IdOf(ByEmail(*s, same)).empty());
  }
  CHECK(IdOf(ByEmail(*s, "e\xCC\x81mile@example.fr")) == "u1");
  CHECK(IdOf(ByEmail(*s, "STRASSE@EXAMPLE.DE")) == "u2");
  CHECK_FALSE(ByEmail(*s, "emile@example.fr"));  // a different letter, not a case
}

TEST_CASE("store: an email index of the ASCII-only key is rebuilt at open; a clash does not block the user",
          "[store]") {
  TempDir dir;
  {
    auto s = OpenAt(dir.path());
    Put(*s, MakeUser("u1", "w1", "\xC3\x89mile@example.fr"));  // Émile
    Put(*s, MakeUser("u2", "w2", "ada@example.com"));
  }
  {
    // What an older usersd left: keys folded in ASCII only, no marker, and
    // two live users whose addresses differ only in a non-ASCII case.
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 16);
    REQUIRE(mdb_env_open(env, dir.path().c_str(), 0, 0600) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi by_email, meta, users;
    REQUIRE(mdb_dbi_open(txn, "by_email", 0, &by_email) == 0);
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    REQUIRE(mdb_dbi_open(txn, "users", 0, &users) == 0);
    REQUIRE(mdb_drop(txn, by_email, 0) == 0);
    auto put = [&](MDB_dbi dbi, std::string k, std::string v) {
      MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
      REQUIRE(mdb_put(txn, dbi, &kv, &vv, 0) == 0);
    };
    put(by_email, "\xC3\x89mile@example.fr", "u1");
    put(by_email, "ada@example.com", "u2");
    UserRecord twin = MakeUser("u3", "w3", "\xC3\xA9mile@example.fr");  // émile
    put(users, "u3", EncodeUser(twin));
    put(by_email, "\xC3\xA9mile@example.fr", "u3");
    std::string key = "email_index";
    MDB_val k{key.size(), key.data()};
    REQUIRE(mdb_del(txn, meta, &k, nullptr) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  auto s = OpenAt(dir.path());
  CHECK(IdOf(ByEmail(*s, "E\xCC\x81MILE@example.fr")) == "u1");
  CHECK(IdOf(ByEmail(*s, "\xC3\xA9mile@example.fr")) == "u1");
  CHECK(IdOf(ByEmail(*s, "ADA@example.com")) == "u2");
  // The twin keeps its address and its other changes go through.
  UserRecord twin = Must(Get(*s, "u3"));
  twin.first_name = "Twin";
  Put(*s, twin);
  CHECK(Must(Get(*s, "u3")).first_name == "Twin");
  // Reopening does not rebuild again (the marker is set).
  s.reset();
  s = OpenAt(dir.path());
  CHECK(IdOf(ByEmail(*s, "\xC3\xA9MILE@example.fr")) == "u1");
}

TEST_CASE("store: a soft-deleted user frees its email", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  UserRecord a = MakeUser("u1", "w1", "ada@example.com");
  Put(*s, a);
  UserRecord deleted = a;
  deleted.deleted_at_ms = 1'700'000'500'000;
  Put(*s, deleted);
  CHECK_FALSE(ByEmail(*s, "ada@example.com"));

  Put(*s, MakeUser("u2", "w2", "ADA@example.com"));
  CHECK(IdOf(ByEmail(*s, "ada@example.com")) == "u2");
  // The deleted user keeps its email in its record.
  CHECK(Must(Get(*s, "u1")).email == "ada@example.com");

  // Undeleting it while the address is taken is refused.
  auto t = s->BeginWrite();
  REQUIRE(t.ok());
  UserRecord revived = deleted;
  revived.deleted_at_ms.reset();
  CHECK(t->PutUser(revived, deleted).message() == "email already in use");
}

TEST_CASE("store: empty emails are exempt from uniqueness", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Put(*s, MakeUser("u1", "w1", ""));
  Put(*s, MakeUser("u2", "w2", ""));
  Put(*s, MakeUser("u3", "w3", ""));
  CHECK(Get(*s, "u3"));
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  CHECK(r->CountEntries(Table::kByEmail) == 0);
  CHECK(r->CountEntries(Table::kUsers) == 3);
}

TEST_CASE("store: changing an email frees the old address", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  UserRecord a = MakeUser("u1", "w1", "old@example.com");
  Put(*s, a);
  a.email = "New@example.com";
  Put(*s, a);
  CHECK_FALSE(ByEmail(*s, "old@example.com"));
  CHECK(IdOf(ByEmail(*s, "new@example.com")) == "u1");
  Put(*s, MakeUser("u2", "w2", "OLD@example.com"));
  CHECK(IdOf(ByEmail(*s, "old@example.com")) == "u2");
  // Changing only the case keeps the address.
  a.email = "NEW@EXAMPLE.COM";
  Put(*s, a);
  CHECK(Must(ByEmail(*s, "new@example.com")).email == "NEW@EXAMPLE.COM");
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  CHECK(r->CountEntries(Table::kByEmail) == 2);
}

TEST_CASE("store: PutUser keeps the indexes right when `previous` is stale", "[store]") {
  // Regression: the indexes were maintained from the caller's `previous`, so
  // a caller passing nullopt for an existing user left the old email indexed
  // to that user forever.
  TempDir dir;
  auto s = OpenAt(dir.path());
  UserRecord a = MakeUser("u1", "w1", "old@example.com");
  Put(*s, a);
  a.email = "new@example.com";
  Write(*s, [&](WriteTxn& t) { REQUIRE(t.PutUser(a, std::nullopt).ok()); });
  CHECK_FALSE(ByEmail(*s, "old@example.com"));
  CHECK(IdOf(ByEmail(*s, "new@example.com")) == "u1");
  Put(*s, MakeUser("u2", "w2", "old@example.com"));
  CHECK(IdOf(ByEmail(*s, "old@example.com")) == "u2");
}

TEST_CASE("store: a refused PutUser changes nothing in its transaction", "[store]") {
  // Regression: PutUser moved the WorkOS id index before finding the email
  // taken, so a caller that went on after the error committed a half update.
  TempDir dir;
  auto s = OpenAt(dir.path());
  Put(*s, MakeUser("u1", "w1", "taken@example.com"));
  UserRecord b = MakeUser("u2", "w2", "b@example.com");
  Put(*s, b);
  Write(*s, [&](WriteTxn& t) {
    UserRecord changed = b;
    changed.workos_id = "w2-new";
    changed.email = "taken@example.com";
    CHECK(t.PutUser(changed, b).message() == "email already in use");
  });
  CHECK(IdOf(ByWorkos(*s, "w2")) == "u2");
  CHECK_FALSE(ByWorkos(*s, "w2-new"));
  CHECK(IdOf(ByEmail(*s, "b@example.com")) == "u2");
  CHECK(Must(Get(*s, "u2")).workos_id == "w2");
}

TEST_CASE("store: WorkOS ids are unique and a deleted user is still found by its WorkOS id", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  UserRecord a = MakeUser("u1", "w1", "a@example.com");
  Put(*s, a);
  {
    auto t = s->BeginWrite();
    REQUIRE(t.ok());
    Status st = t->PutUser(MakeUser("u2", "w1", "b@example.com"), std::nullopt);
    CHECK(st.code() == Code::kInvalidArgument);
    CHECK_THAT(st.message(), Catch::Contains("workosId"));
  }
  CHECK_FALSE(Get(*s, "u2"));

  UserRecord deleted = a;
  deleted.deleted_at_ms = 1'700'000'900'000;
  Put(*s, deleted);
  auto found = ByWorkos(*s, "w1");
  REQUIRE(found);
  CHECK(found->id == "u1");
  CHECK_FALSE(found->live());
  CHECK_FALSE(ByEmail(*s, "a@example.com"));

  // A WorkOS id change moves the index entry.
  UserRecord moved = deleted;
  moved.workos_id = "w1b";
  Put(*s, moved);
  CHECK_FALSE(ByWorkos(*s, "w1"));
  CHECK(IdOf(ByWorkos(*s, "w1b")) == "u1");
  Put(*s, MakeUser("u3", "w1", "c@example.com"));
  CHECK(IdOf(ByWorkos(*s, "w1")) == "u3");
}

TEST_CASE("store: PutUser refuses missing or oversized keys", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  auto t = s->BeginWrite();
  REQUIRE(t.ok());
  CHECK(t->PutUser(MakeUser("", "w", "a@example.com"), std::nullopt).code() == Code::kInvalidArgument);
  CHECK(t->PutUser(MakeUser("u", "", "a@example.com"), std::nullopt).code() == Code::kInvalidArgument);
  CHECK(t->PutUser(MakeUser(std::string(256, 'u'), "w", ""), std::nullopt).code() == Code::kInvalidArgument);
  CHECK(t->PutUser(MakeUser("u", std::string(256, 'w'), ""), std::nullopt).code() == Code::kInvalidArgument);
  CHECK(t->PutUser(MakeUser("u", "w", std::string(250, 'e') + "@x.com"), std::nullopt).code() ==
        Code::kInvalidArgument);
  // At the limit it works and can be found again.
  UserRecord max = MakeUser(std::string(255, 'u'), std::string(255, 'w'), std::string(249, 'e') + "@x.com");
  REQUIRE(t->PutUser(max, std::nullopt).ok());
  REQUIRE(t->Commit().ok());
  CHECK(Get(*s, max.id));
  CHECK(ByWorkos(*s, max.workos_id));
  CHECK(ByEmail(*s, max.email));
}

TEST_CASE("store: settings nested deeper than the store can read back are refused", "[store]") {
  // Regression: MessagePack decoding recurses once per nesting level with no
  // limit, so garbage (or a deep enough value) crashed the reader instead of
  // being Corruption. Decoding now stops at a depth limit, and PutUser
  // refuses what it could not read back. The domain's limit (64 levels, the
  // settings object itself being level 1) must fit.
  TempDir dir;
  auto s = OpenAt(dir.path());
  // `levels` nested objects: nest(1) is {}.
  auto nest = [](int levels, bool arrays) {
    Json root = Json::object();
    Json* cur = &root;
    for (int i = 1; i < levels; ++i) {
      if (arrays) {
        (*cur)["a"] = Json::array({Json::object()});
        cur = &(*cur)["a"][0];
        ++i;  // the array is a level too
      } else {
        cur = &((*cur)["k"] = Json::object());
      }
    }
    return root;
  };
  UserRecord ok = MakeUser("u1", "w1", "");
  ok.settings = nest(64, false);
  Put(*s, ok);
  CHECK(Must(Get(*s, "u1")).settings == ok.settings);
  ok.settings = nest(63, true);
  Put(*s, ok);
  CHECK(Must(Get(*s, "u1")).settings == ok.settings);
  Write(*s, [&](WriteTxn& t) {
    Change c;
    c.txid = *t.NextTxid();
    c.user = ok;
    REQUIRE(t.AppendChange(c).ok());
    OutboxJob job;
    job.user_id = "u1";
    job.fields = nest(64, false);
    uint64_t id = *t.EnqueueJob(job);
    job.id = id;
    REQUIRE(t.MoveToDeadLetter(job, 400, "bad", 1).ok());
  });
  {
    auto r = s->BeginRead();
    CHECK(r->ChangesSince(0, 10)->at(0).user.settings == ok.settings);
    CHECK(r->GetDeadLetter(1)->value().job.fields == nest(64, false));
  }

  auto t = s->BeginWrite();
  REQUIRE(t.ok());
  UserRecord deep = MakeUser("u2", "w2", "");
  deep.settings = nest(65, false);
  Status st = t->PutUser(deep, std::nullopt);
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK_THAT(st.ToString(), Catch::Contains("settings"));
  deep.settings = nest(500, true);
  CHECK(t->PutUser(deep, std::nullopt).code() == Code::kInvalidArgument);
  Change c;
  c.txid = 2;
  c.user = deep;
  CHECK(t->AppendChange(c).code() == Code::kInvalidArgument);
  OutboxJob job;
  job.user_id = "u2";
  job.fields = nest(500, false);
  CHECK(t->EnqueueJob(job).status().code() == Code::kInvalidArgument);
  job.id = 1;
  CHECK(t->UpdateJob(job).code() == Code::kInvalidArgument);
  CHECK(t->MoveToDeadLetter(job, 400, "", 1).code() == Code::kInvalidArgument);
}

TEST_CASE("store: ListUsers pages in id order", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  for (const char* id : {"c", "a", "e", "b", "d"}) Put(*s, MakeUser(id, std::string("w") + id, ""));
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  auto ids = [](const std::vector<UserRecord>& v) {
    std::string out;
    for (auto& u : v) out += u.id;
    return out;
  };
  auto p1 = r->ListUsers("", 2);
  REQUIRE(p1.ok());
  CHECK(ids(*p1) == "ab");
  auto p2 = r->ListUsers("b", 2);
  REQUIRE(p2.ok());
  CHECK(ids(*p2) == "cd");
  auto p3 = r->ListUsers("d", 2);
  REQUIRE(p3.ok());
  CHECK(ids(*p3) == "e");
  auto p4 = r->ListUsers("e", 2);
  REQUIRE(p4.ok());
  CHECK(p4->empty());
  auto between = r->ListUsers("bb", 10);  // an `after` that is not a key
  REQUIRE(between.ok());
  CHECK(ids(*between) == "cde");
  // Regression: a limit of 0 returned one user ("at most 0").
  auto none = r->ListUsers("", 0);
  REQUIRE(none.ok());
  CHECK(none->empty());
}

// ------------------------------------------------------------ transactionId

TEST_CASE("store: NextTxid is strictly increasing and persists across reopen", "[store]") {
  TempDir dir;
  std::vector<uint64_t> ids;
  {
    auto s = OpenAt(dir.path());
    Write(*s, [&](WriteTxn& t) {
      for (int i = 0; i < 3; ++i) {
        auto id = t.NextTxid();
        REQUIRE(id.ok());
        ids.push_back(*id);
      }
    });
    Write(*s, [&](WriteTxn& t) { ids.push_back(*t.NextTxid()); });
    auto r = s->BeginRead();
    CHECK(r->LastTxid() == 4);
  }
  auto s = OpenAt(dir.path());
  Write(*s, [&](WriteTxn& t) { ids.push_back(*t.NextTxid()); });
  CHECK(ids == std::vector<uint64_t>{1, 2, 3, 4, 5});
}

// Commits a new user `id` straight through the store (no Writer, no Sync).
uint64_t CommitNew(Store& s, const std::string& id) {
  auto t = s.BeginWrite();
  REQUIRE(t.ok());
  UserRecord u = MakeUser(id, "w" + id, id + "@example.com");
  REQUIRE(WriteUserChange(*t, u, std::nullopt, ChangeOp::kUpsert, 1).ok());
  REQUIRE(t->Commit().ok());
  return u.txid;
}

TEST_CASE("store: sync_mode one shows a transactionId only once its commit is durable", "[store][durability]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  REQUIRE(s->sync_mode() == SyncMode::kOne);
  const uint64_t syncs0 = s->syncs();
  CHECK(syncs0 == 1);  // the open's
  auto last = [&] { return s->BeginRead()->LastTxid(); };
  auto feed = [&] { return s->BeginRead()->ChangesSince(1, 100)->size(); };

  CHECK(CommitNew(*s, "a") == 1);
  // Committed: its data is visible, its transactionId is not (its meta page
  // is not on disk yet).
  CHECK(Get(*s, "a").has_value());
  CHECK(last() == 0);
  CHECK(feed() == 0);
  CHECK(s->commits() == 1);
  CHECK(s->durable_commits() == 0);
  CHECK(s->syncs() == syncs0 + 1);

  // The next commit's data sync makes the first durable.
  CHECK(CommitNew(*s, "b") == 2);
  CHECK(last() == 1);
  CHECK(feed() == 1);
  CHECK(s->durable_commits() == 1);
  CHECK(s->durable_txid() == 1);
  CHECK(s->syncs() == syncs0 + 2);
  {
    auto t = s->BeginWrite();  // a write transaction sees its own
    CHECK(t->LastTxid() == 2);
  }

  // An empty commit writes and syncs nothing.
  {
    auto t = s->BeginWrite();
    REQUIRE(t->Commit().ok());
  }
  CHECK(s->commits() == 2);
  CHECK(s->syncs() == syncs0 + 2);

  REQUIRE(s->Sync().ok());
  CHECK(last() == 2);
  CHECK(feed() == 2);
  CHECK(s->durable_commits() == 2);
  CHECK(s->syncs() == syncs0 + 3);
  REQUIRE(s->Sync().ok());  // nothing left to sync
  CHECK(s->syncs() == syncs0 + 3);

  // A backup's transactionId is made durable before it is reported.
  CHECK(CommitNew(*s, "c") == 3);
  auto info = s->Backup(dir.sub("backup"));
  REQUIRE(info.ok());
  CHECK(info->txid == 3);
  CHECK(s->syncs() == syncs0 + 5);  // commit c, the backup's sync of the store
}

TEST_CASE("store: a read transaction keeps the durable limit it began with", "[store][durability]") {
  // admin.changes reads ChangesSince and, when it is empty, LastTxid in one
  // transaction; had the two looked at the durable limit apart, a commit
  // made durable between them would be counted as sent and never streamed.
  TempDir dir;
  auto s = OpenAt(dir.path());
  REQUIRE(s->sync_mode() == SyncMode::kOne);
  CHECK(CommitNew(*s, "a") == 1);  // committed, not durable yet
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  CHECK(r->LastTxid() == 0);
  CHECK(CommitNew(*s, "b") == 2);  // its data sync makes "a" durable
  REQUIRE(s->durable_txid() == 1);
  // The open transaction still sees what it began with, in both calls.
  CHECK(r->ChangesSince(1, 100)->size() == 0);
  CHECK(r->LastTxid() == 0);
  // A new one sees "a".
  auto r2 = s->BeginRead();
  CHECK(r2->LastTxid() == 1);
  CHECK(r2->ChangesSince(1, 100)->size() == 1);
}

TEST_CASE("store: sync_mode two makes a commit durable when it returns", "[store][durability]") {
  TempDir dir;
  StoreOptions o;
  o.path = dir.path();
  o.sync_mode = SyncMode::kTwo;
  auto opened = Store::Open(o);
  REQUIRE(opened.ok());
  auto& s = *opened;
  const uint64_t syncs0 = s->syncs();
  CHECK(CommitNew(*s, "a") == 1);
  CHECK(s->BeginRead()->LastTxid() == 1);
  CHECK(s->BeginRead()->ChangesSince(1, 10)->size() == 1);
  CHECK(s->durable_commits() == 1);
  CHECK(s->syncs() == syncs0 + 2);  // data pages, then the meta page through O_DSYNC
  REQUIRE(s->Sync().ok());
  CHECK(s->syncs() == syncs0 + 2);
}

TEST_CASE("store: an aborted transaction does not consume a transactionId", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Write(*s, [](WriteTxn& t) { CHECK(*t.NextTxid() == 1); });
  {
    auto t = s->BeginWrite();
    REQUIRE(t.ok());
    CHECK(*t->NextTxid() == 2);
    t->Abort();
  }
  {
    auto t = s->BeginWrite();  // destroyed without commit
    REQUIRE(t.ok());
    CHECK(*t->NextTxid() == 2);
  }
  Write(*s, [](WriteTxn& t) { CHECK(*t.NextTxid() == 2); });
}

TEST_CASE("store: a nested transaction consumes an id only when it commits", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Write(*s, [](WriteTxn& t) {
    CHECK(*t.NextTxid() == 1);
    {
      auto child = t.BeginNested();
      REQUIRE(child.ok());
      CHECK(*child->NextTxid() == 2);
      REQUIRE(child->PutUser(MakeUser("gone", "wgone", "gone@example.com"), std::nullopt).ok());
      child->Abort();
    }
    {
      auto child = t.BeginNested();  // destroyed without commit: aborted
      REQUIRE(child.ok());
      CHECK(*child->NextTxid() == 2);
    }
    CHECK(t.LastTxid() == 1);
    CHECK_FALSE(*t.GetUser("gone"));
    auto child = t.BeginNested();
    REQUIRE(child.ok());
    CHECK(*child->NextTxid() == 2);
    REQUIRE(child->Commit().ok());
    CHECK(*t.NextTxid() == 3);
  });
  auto r = s->BeginRead();
  CHECK(r->LastTxid() == 3);
  CHECK(r->CountEntries(Table::kByEmail) == 0);
}

TEST_CASE("store: committing or aborting a finished transaction is harmless", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  auto t = s->BeginWrite();
  REQUIRE(t.ok());
  REQUIRE(t->Commit().ok());
  CHECK(t->Commit().code() == Code::kInternal);
  t->Abort();
  WriteTxn moved = std::move(*t);
  moved.Abort();
}

// ------------------------------------------------------------------- outbox

OutboxJob MakeJob(const std::string& user, JobOp op = JobOp::kUpdate) {
  OutboxJob j;
  j.user_id = user;
  j.workos_id = "w-" + user;
  j.op = op;
  j.fields = Json{{"first_name", "Ada"}};
  j.txid = 9;
  j.created_at_ms = 1'700'000'000'000;
  j.next_attempt_at_ms = 1'700'000'000'500;
  return j;
}

TEST_CASE("outbox: EnqueueJob assigns increasing ids and ListJobs returns them oldest first", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  std::vector<uint64_t> ids;
  Write(*s, [&](WriteTxn& t) {
    ids.push_back(*t.EnqueueJob(MakeJob("a")));
    ids.push_back(*t.EnqueueJob(MakeJob("b", JobOp::kDelete)));
    ids.push_back(*t.EnqueueJob(MakeJob("a", JobOp::kFetch)));
  });
  Write(*s, [&](WriteTxn& t) { REQUIRE(t.DeleteJob(ids[2]).ok()); });
  Write(*s, [&](WriteTxn& t) { ids.push_back(*t.EnqueueJob(MakeJob("c"))); });
  CHECK(ids == std::vector<uint64_t>{1, 2, 3, 4});  // ids are never reused

  auto r = s->BeginRead();
  REQUIRE(r.ok());
  auto all = r->ListJobs(0);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].id == 1);
  CHECK((*all)[0].user_id == "a");
  CHECK((*all)[0].workos_id == "w-a");
  CHECK((*all)[0].op == JobOp::kUpdate);
  CHECK((*all)[0].fields == Json{{"first_name", "Ada"}});
  CHECK((*all)[0].txid == 9);
  CHECK((*all)[0].created_at_ms == 1'700'000'000'000);
  CHECK((*all)[0].next_attempt_at_ms == 1'700'000'000'500);
  CHECK((*all)[1].id == 2);
  CHECK((*all)[1].op == JobOp::kDelete);
  CHECK((*all)[2].id == 4);
  auto two = r->ListJobs(2);
  REQUIRE(two.ok());
  CHECK(two->size() == 2);
  CHECK(r->CountEntries(Table::kOutbox) == 3);
  CHECK(std::string(JobOpName(JobOp::kFetch)) == "fetch");
}

TEST_CASE("outbox: ListJobsAfter reads only newer jobs and GetJob reads one", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Write(*s, [&](WriteTxn& t) {
    for (int i = 0; i < 5; ++i) REQUIRE(t.EnqueueJob(MakeJob("u" + std::to_string(i))).ok());
    REQUIRE(t.DeleteJob(3).ok());
  });
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  auto ids = [](const std::vector<OutboxJob>& v) {
    std::vector<uint64_t> out;
    for (auto& j : v) out.push_back(j.id);
    return out;
  };
  CHECK(ids(*r->ListJobsAfter(0, 0)) == std::vector<uint64_t>{1, 2, 4, 5});
  CHECK(ids(*r->ListJobsAfter(2, 0)) == std::vector<uint64_t>{4, 5});
  CHECK(ids(*r->ListJobsAfter(1, 2)) == std::vector<uint64_t>{2, 4});
  CHECK(r->ListJobsAfter(5, 0)->empty());
  CHECK(r->ListJobsAfter(UINT64_MAX, 0)->empty());
  auto j = r->GetJob(4);
  REQUIRE(j.ok());
  REQUIRE(j->has_value());
  CHECK((*j)->user_id == "u3");
  CHECK_FALSE(r->GetJob(3)->has_value());
}

TEST_CASE("store: WriteUserChange stores the user with a new txid and its change entry", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  UserRecord u = MakeUser("u1", "w1", "a@example.com");
  Write(*s, [&](WriteTxn& t) { REQUIRE(WriteUserChange(t, u, std::nullopt, ChangeOp::kUpsert, 111).ok()); });
  CHECK(u.txid == 1);
  UserRecord before = u;
  u.deleted_at_ms = 222;
  Write(*s, [&](WriteTxn& t) { REQUIRE(WriteUserChange(t, u, before, ChangeOp::kDelete, 222).ok()); });
  CHECK(u.txid == 2);
  CHECK(Must(Get(*s, "u1")).txid == 2);
  CHECK_FALSE(ByEmail(*s, "a@example.com"));
  auto r = s->BeginRead();
  auto ch = r->ChangesSince(0, 10);
  REQUIRE(ch->size() == 2);
  CHECK((*ch)[0].op == ChangeOp::kUpsert);
  CHECK((*ch)[0].at_ms == 111);
  CHECK((*ch)[1].op == ChangeOp::kDelete);
  CHECK((*ch)[1].user.deleted_at_ms == 222);
  CHECK((*ch)[1].txid == 2);
  // A refused change takes no txid: the whole op is rolled back by its caller.
  {
    auto t = s->BeginWrite();
    UserRecord other = MakeUser("u2", "w1", "");
    CHECK(WriteUserChange(*t, other, std::nullopt, ChangeOp::kUpsert, 1).code() == Code::kInvalidArgument);
  }
  CHECK(s->BeginRead()->LastTxid() == 2);
}

TEST_CASE("outbox: JobsOfUser, UpdateJob and DeleteJob", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Write(*s, [&](WriteTxn& t) {
    for (const char* u : {"a", "b", "a", "c", "a"}) REQUIRE(t.EnqueueJob(MakeJob(u)).ok());
  });
  {
    auto r = s->BeginRead();
    auto a = r->JobsOfUser("a");
    REQUIRE(a.ok());
    REQUIRE(a->size() == 3);
    CHECK((*a)[0].id == 1);
    CHECK((*a)[1].id == 3);
    CHECK((*a)[2].id == 5);
    CHECK(r->JobsOfUser("nobody")->empty());
  }
  Write(*s, [&](WriteTxn& t) {
    OutboxJob j = (*t.JobsOfUser("a"))[0];
    j.attempts = 3;
    j.next_attempt_at_ms = 1'800'000'000'000;
    j.last_error = "503 Service Unavailable";
    REQUIRE(t.UpdateJob(j).ok());
    OutboxJob missing = j;
    missing.id = 99;
    CHECK(t.UpdateJob(missing).code() == Code::kNotFound);
    REQUIRE(t.DeleteJob(3).ok());
    REQUIRE(t.DeleteJob(3).ok());  // deleting twice is fine
  });
  auto r = s->BeginRead();
  auto a = r->JobsOfUser("a");
  REQUIRE(a->size() == 2);
  CHECK((*a)[0].attempts == 3);
  CHECK((*a)[0].next_attempt_at_ms == 1'800'000'000'000);
  CHECK((*a)[0].last_error == "503 Service Unavailable");
  CHECK((*a)[1].id == 5);
  CHECK(r->JobsOfUser("a")->size() == 2);
}

TEST_CASE("outbox: MoveToDeadLetter moves the job with its status and body", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  OutboxJob job;
  Write(*s, [&](WriteTxn& t) {
    uint64_t id = *t.EnqueueJob(MakeJob("a"));
    REQUIRE(t.EnqueueJob(MakeJob("a")).ok());
    job = (*t.ListJobs(1))[0];
    REQUIRE(job.id == id);
    job.attempts = 5;
    job.last_error = "422";
    REQUIRE(t.MoveToDeadLetter(job, 422, R"({"code":"invalid_email"})", 1'750'000'000'000).ok());
  });
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  auto jobs = r->ListJobs(0);
  REQUIRE(jobs->size() == 1);
  CHECK((*jobs)[0].id == 2);
  auto dead = r->ListDeadLetters(0);
  REQUIRE(dead.ok());
  REQUIRE(dead->size() == 1);
  CHECK((*dead)[0].job.id == job.id);
  CHECK((*dead)[0].job.attempts == 5);
  CHECK((*dead)[0].job.user_id == "a");
  CHECK((*dead)[0].status == 422);
  CHECK((*dead)[0].body == R"({"code":"invalid_email"})");
  CHECK((*dead)[0].failed_at_ms == 1'750'000'000'000);
  auto one = r->GetDeadLetter(job.id);
  REQUIRE(one.ok());
  REQUIRE(one->has_value());
  CHECK((*one)->status == 422);
  CHECK((*one)->job.fields == job.fields);
  CHECK_FALSE(r->GetDeadLetter(12345)->has_value());
  CHECK(s->Stats().dead_letters == 1);
  CHECK(s->Stats().outbox_depth == 1);
}

TEST_CASE("outbox: dead-letter bodies are bounded and DeleteDeadLetter discards", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Write(*s, [&](WriteTxn& t) {
    for (int i = 0; i < 3; ++i) {
      uint64_t id = *t.EnqueueJob(MakeJob("u" + std::to_string(i)));
      OutboxJob j = MakeJob("u" + std::to_string(i));
      j.id = id;
      REQUIRE(t.MoveToDeadLetter(j, 0, std::string(100'000, 'x'), 1).ok());
    }
  });
  {
    auto r = s->BeginRead();
    auto dead = r->ListDeadLetters(2);
    REQUIRE(dead.ok());
    REQUIRE(dead->size() == 2);
    CHECK((*dead)[0].body.size() == 4096);
    CHECK((*dead)[0].status == 0);
  }
  Write(*s, [&](WriteTxn& t) {
    REQUIRE(t.DeleteDeadLetter(2).ok());
    REQUIRE(t.DeleteDeadLetter(2).ok());
  });
  auto r = s->BeginRead();
  auto dead = r->ListDeadLetters(0);
  REQUIRE(dead->size() == 2);
  CHECK((*dead)[0].job.id == 1);
  CHECK((*dead)[1].job.id == 3);
  CHECK_FALSE(r->GetDeadLetter(2)->has_value());
  CHECK(r->ListJobs(0)->empty());
}

// -------------------------------------------------------------- change feed

TEST_CASE("changes: ChangesSince returns entries from `since` in order, at most `limit`", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  // Txids above 255 check that keys sort numerically, not by their low byte.
  std::vector<uint64_t> txids = {1, 2, 3, 255, 256, 257, 70000};
  Write(*s, [&](WriteTxn& t) {
    for (uint64_t tx : txids) {
      Change c;
      c.txid = tx;
      c.op = tx == 256 ? ChangeOp::kDelete : ChangeOp::kUpsert;
      c.user = MakeUser("u" + std::to_string(tx), "w" + std::to_string(tx), "");
      c.user.txid = tx;
      c.user.settings = Json{{"n", tx}};
      c.at_ms = 1000 + int64_t(tx);
      REQUIRE(t.AppendChange(c).ok());
    }
    // Readers see change entries up to the store's last transactionId.
    REQUIRE(t.PutMeta("last_txid", U64Key(txids.back())).ok());
  });
  auto r = s->BeginRead();
  auto all = r->ChangesSince(0, 100);
  REQUIRE(all.ok());
  REQUIRE(all->size() == txids.size());
  for (size_t i = 0; i < txids.size(); ++i) {
    CHECK((*all)[i].txid == txids[i]);
    CHECK((*all)[i].user.id == "u" + std::to_string(txids[i]));
    CHECK((*all)[i].user.settings == Json{{"n", txids[i]}});
    CHECK((*all)[i].at_ms == 1000 + int64_t(txids[i]));
    CHECK((*all)[i].op == (txids[i] == 256 ? ChangeOp::kDelete : ChangeOp::kUpsert));
  }
  auto from = r->ChangesSince(255, 2);
  REQUIRE(from.ok());
  REQUIRE(from->size() == 2);
  CHECK((*from)[0].txid == 255);
  CHECK((*from)[1].txid == 256);
  auto gap = r->ChangesSince(258, 10);
  REQUIRE(gap->size() == 1);
  CHECK((*gap)[0].txid == 70000);
  CHECK(r->ChangesSince(70001, 10)->empty());
  // Regression: a limit of 0 returned one entry.
  CHECK(r->ChangesSince(0, 0)->empty());
}

TEST_CASE("changes: TrimChanges deletes entries before a txid, bounded per call", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Write(*s, [&](WriteTxn& t) {
    for (uint64_t tx = 1; tx <= 10; ++tx) {
      Change c;
      c.txid = *t.NextTxid();
      c.user = MakeUser("u", "w", "");
      REQUIRE(t.AppendChange(c).ok());
    }
  });
  Write(*s, [&](WriteTxn& t) {
    auto n = t.TrimChanges(6, 3);
    REQUIRE(n.ok());
    CHECK(*n == 3);
  });
  auto trimmed = s->BeginRead()->ChangesSince(0, 100);
  REQUIRE(trimmed->size() == 7);
  CHECK(trimmed->front().txid == 4);
  Write(*s, [&](WriteTxn& t) { CHECK(*t.TrimChanges(6, 100) == 2); });
  Write(*s, [&](WriteTxn& t) { CHECK(*t.TrimChanges(6, 100) == 0); });
  auto left = s->BeginRead()->ChangesSince(0, 100);
  REQUIRE(left->size() == 5);  // 6..10
  CHECK(left->front().txid == 6);
  CHECK(left->back().txid == 10);
}

// ----------------------------------------------------------------- encoding

TEST_CASE("encoding: DecodeUser and DecodeJob report garbage as Corruption without crashing", "[store]") {
  std::vector<std::string> garbage = {
      "",
      std::string("\xc1", 1),                  // never-used MessagePack byte
      std::string("\x93\x01\x02\x03", 4),      // an array, not a record
      std::string("\xdb\xff\xff\xff\xff", 5),  // str32 claiming 4 GiB
      std::string("\xdd\xff\xff\xff\xff", 5),  // array32 claiming 4 G entries
      std::string(200'000, '\x91') + '\x01',   // 200,000 nested arrays
      std::string(200'000, '\x81') + '\x01',   // 200,000 nested maps
      "not msgpack at all, just text",
  };
  std::string valid = EncodeUser(MakeUser("u1", "w1", "a@example.com"));
  for (size_t cut = 0; cut < valid.size(); cut += 3) garbage.push_back(valid.substr(0, cut));
  garbage.push_back(valid + "trailing");
  uint32_t seed = 12345;
  for (int i = 0; i < 200; ++i) {
    std::string b = valid;
    for (int k = 0; k < 4; ++k) {
      seed = seed * 1103515245 + 12345;
      b[(seed >> 8) % b.size()] = static_cast<char>(seed >> 24);
    }
    garbage.push_back(b);
  }
  for (const auto& g : garbage) {
    auto u = DecodeUser(g);
    if (!u.ok()) CHECK(u.status().code() == Code::kCorruption);
    auto j = DecodeJob(g);
    if (!j.ok()) CHECK(j.status().code() == Code::kCorruption);
  }
  for (size_t i = 0; i < 8; ++i) {
    INFO(i);
    CHECK(DecodeUser(garbage[i]).status().code() == Code::kCorruption);
    CHECK(DecodeJob(garbage[i]).status().code() == Code::kCorruption);
  }
  // Right shape, wrong types or version.
  Json j = Json::parse(R"({"v":1,"id":"u","workos":"w","email":"e","first":"f","last":"l","type":"user",
                          "onb":false,"created":1e300,"role":"member","pending":false,"tx":1})");
  std::vector<uint8_t> mp = Json::to_msgpack(j);
  CHECK(DecodeUser(std::string(mp.begin(), mp.end())).status().code() == Code::kCorruption);
  j["created"] = 1;
  j["tx"] = -1;
  mp = Json::to_msgpack(j);
  CHECK(DecodeUser(std::string(mp.begin(), mp.end())).status().code() == Code::kCorruption);
  j["tx"] = 1;
  mp = Json::to_msgpack(j);
  CHECK(DecodeUser(std::string(mp.begin(), mp.end())).ok());
  j["v"] = 2;
  mp = Json::to_msgpack(j);
  CHECK(DecodeUser(std::string(mp.begin(), mp.end())).status().code() == Code::kCorruption);
}

TEST_CASE("encoding: EncodeJob and DecodeJob round-trip", "[store]") {
  OutboxJob j = MakeJob("u", JobOp::kDelete);
  j.id = 42;
  j.attempts = 7;
  j.last_error = "timeout";
  auto back = DecodeJob(EncodeJob(j));
  REQUIRE(back.ok());
  CHECK(back->id == 42);
  CHECK(back->op == JobOp::kDelete);
  CHECK(back->attempts == 7);
  CHECK(back->last_error == "timeout");
  CHECK(back->fields == j.fields);
}

TEST_CASE("store: a corrupt stored record is reported as Corruption", "[store]") {
  TempDir dir;
  {
    auto s = OpenAt(dir.path());
    Put(*s, MakeUser("good", "wgood", "good@example.com"));
    Put(*s, MakeUser("bad", "wbad", "bad@example.com"));
    Write(*s, [](WriteTxn& t) { REQUIRE(t.EnqueueJob(MakeJob("good")).ok()); });
  }
  PokeRaw(dir.path(), Table::kUsers, "bad", std::string(50'000, '\x91'));
  PokeRaw(dir.path(), Table::kOutbox, U64Key(1), "\xc1");
  PokeRaw(dir.path(), Table::kChanges, U64Key(5), "garbage");
  PokeRaw(dir.path(), Table::kMeta, "last_txid", U64Key(5));
  PokeRaw(dir.path(), Table::kDead, U64Key(9), "\x80");
  auto s = OpenAt(dir.path());
  auto r = s->BeginRead();
  REQUIRE(r.ok());
  CHECK(r->GetUser("good")->has_value());
  CHECK(r->GetUser("bad").status().code() == Code::kCorruption);
  CHECK(r->FindByWorkosId("wbad").status().code() == Code::kCorruption);
  CHECK(r->FindByEmail("BAD@example.com").status().code() == Code::kCorruption);
  CHECK(r->ListUsers("", 10).status().code() == Code::kCorruption);
  CHECK(r->ListJobs(0).status().code() == Code::kCorruption);
  CHECK(r->ChangesSince(0, 10).status().code() == Code::kCorruption);
  CHECK(r->ListDeadLetters(0).status().code() == Code::kCorruption);
  CHECK(r->GetDeadLetter(9).status().code() == Code::kCorruption);
}

TEST_CASE("store: PutUser can overwrite a corrupt record, using the caller's previous version", "[store]") {
  TempDir dir;
  UserRecord bad = MakeUser("bad", "wbad", "bad@example.com");
  {
    auto s = OpenAt(dir.path());
    Put(*s, bad);
  }
  PokeRaw(dir.path(), Table::kUsers, "bad", "\xc1");
  auto s = OpenAt(dir.path());
  UserRecord fixed = bad;
  fixed.email = "fixed@example.com";
  Write(*s, [&](WriteTxn& t) { REQUIRE(t.PutUser(fixed, bad).ok()); });
  CHECK(Must(Get(*s, "bad")).email == "fixed@example.com");
  CHECK_FALSE(ByEmail(*s, "bad@example.com"));
  CHECK(IdOf(ByEmail(*s, "fixed@example.com")) == "bad");
}

// ------------------------------------------------------------ stats, threads

TEST_CASE("store: Stats counts users, outbox and dead letters", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Put(*s, MakeUser("a", "wa", ""));
  Put(*s, MakeUser("b", "wb", ""));
  Write(*s, [](WriteTxn& t) { REQUIRE(t.EnqueueJob(MakeJob("a")).ok()); });
  StoreStats st = s->Stats();
  CHECK(st.users == 2);
  CHECK(st.outbox_depth == 1);
  CHECK(st.dead_letters == 0);
  CHECK(st.map_size_bytes == 4ull << 20);
  CHECK(st.used_bytes > 0);
  CHECK(st.used_bytes <= st.map_size_bytes);
  CHECK(st.file_bytes > 0);
  CHECK(st.max_readers >= 126);
  auto r = s->BeginRead();
  CHECK(r->CountEntries(Table::kMeta) >= 2);
  // Every table, by its enum: Put indexes WorkOS ids (not empty emails) and
  // takes no transactionId.
  CHECK(r->CountEntries(Table::kUsers) == 2);
  CHECK(r->CountEntries(Table::kByWorkos) == 2);
  CHECK(r->CountEntries(Table::kByEmail) == 0);
  CHECK(r->CountEntries(Table::kChanges) == 0);
  CHECK(r->CountEntries(Table::kOutbox) == 1);
  CHECK(r->CountEntries(Table::kDead) == 0);
}

TEST_CASE("store: tables keep their on-disk LMDB names", "[store]") {
  // Renaming one would orphan the data of every existing store.
  const std::pair<Table, const char*> names[] = {{Table::kUsers, "users"},      {Table::kByWorkos, "by_workos"},
                                                 {Table::kByEmail, "by_email"}, {Table::kMeta, "meta"},
                                                 {Table::kChanges, "changes"},  {Table::kOutbox, "outbox"},
                                                 {Table::kDead, "dead"},        {Table::kJobsByUser, "jobs_by_user"}};
  REQUIRE(std::size(names) == kTableCount);
  TempDir dir;
  {
    auto s = OpenAt(dir.path());
    Put(*s, MakeUser("a", "wa", "a@example.com"));
  }
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 16);
  REQUIRE(mdb_env_open(env, dir.path().c_str(), MDB_RDONLY, 0600) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0);
  for (const auto& [table, name] : names) {
    INFO(name);
    CHECK(std::string(TableName(table)) == name);
    MDB_dbi dbi;
    REQUIRE(mdb_dbi_open(txn, name, 0, &dbi) == 0);  // created by Open
    MDB_stat st{};
    REQUIRE(mdb_stat(txn, dbi, &st) == 0);
    if (table == Table::kUsers || table == Table::kByWorkos || table == Table::kByEmail) CHECK(st.ms_entries == 1);
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

TEST_CASE("store: a read transaction may be used and closed on another thread", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  Put(*s, MakeUser("a", "wa", "a@example.com"));
  std::vector<ReadTxn> txns;
  for (int i = 0; i < 4; ++i) {
    auto r = s->BeginRead();
    REQUIRE(r.ok());
    txns.push_back(std::move(r).value());
  }
  std::atomic<int> found{0};
  std::thread t([&] {
    for (auto& r : txns)
      if (auto u = r.GetUser("a"); u.ok() && u->has_value()) found++;
    txns.clear();
  });
  t.join();
  CHECK(found == 4);
  // Readers are all gone: a writer can still commit.
  Put(*s, MakeUser("b", "wb", ""));
  CHECK(s->Stats().users == 2);
}

TEST_CASE("store: concurrent readers see committed snapshots", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.path());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop) {
        auto r = s->BeginRead();
        if (!r.ok()) {
          bad++;
          continue;
        }
        // Within one snapshot the feed and the counter agree.
        uint64_t last = r->LastTxid();
        auto ch = r->ChangesSince(0, 1'000'000);
        if (!ch.ok() || ch->size() != last) bad++;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    Write(*s, [&](WriteTxn& t) {
      Change c;
      c.txid = *t.NextTxid();
      c.user = MakeUser("u", "w", "");
      REQUIRE(t.AppendChange(c).ok());
    });
  }
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(bad == 0);
}

// ------------------------------------------------------------------- backup

TEST_CASE("backup: a hot copy taken while a writer writes opens as a store with the data", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.sub("live"));
  for (int i = 0; i < 100; ++i)
    Put(*s, MakeUser("before-" + std::to_string(i), "wb" + std::to_string(i), "b" + std::to_string(i) + "@x.com"));

  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    // This thread is the store's only writer while it runs.
    int i = 0;
    while (!stop) {
      auto t = s->BeginWrite();
      if (!t.ok()) continue;
      UserRecord u = MakeUser("during-" + std::to_string(i), "wd" + std::to_string(i), "");
      u.settings = Json{{"pad", std::string(2000, 'p')}};
      // Each write takes the next transactionId (the 100 above took none).
      if (WriteUserChange(*t, u, std::nullopt, ChangeOp::kUpsert, 1).ok() && t->Commit().ok()) written++;
      ++i;
    }
  });
  while (written < 20) std::this_thread::yield();
  auto info = s->Backup(dir.sub("copy"));
  stop = true;
  writer.join();
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(written > 20);
  // The copy's size, and the transactionId it is consistent with: the last
  // of the writes it holds.
  CHECK(info->bytes == fs::file_size(dir.sub("copy") + "/data.mdb"));
  CHECK(info->txid >= 20);
  CHECK(info->txid <= uint64_t(written.load()));

  auto copy = OpenAt(dir.sub("copy"));
  for (int i = 0; i < 100; ++i) {
    auto u = Get(*copy, "before-" + std::to_string(i));
    REQUIRE(u);
    CHECK(u->email == "b" + std::to_string(i) + "@x.com");
  }
  CHECK(IdOf(ByEmail(*copy, "b7@x.com")) == "before-7");
  uint64_t users = copy->Stats().users;
  CHECK(users >= 120);
  CHECK(users <= 100 + uint64_t(written.load()));
  CHECK(users == 100 + info->txid);
  {
    auto r = copy->BeginRead();
    REQUIRE(r.ok());
    CHECK(r->LastTxid() == info->txid);
    CHECK(r->CountEntries(Table::kChanges) == info->txid);
  }
  // The copy is a working store of its own.
  Put(*copy, MakeUser("new", "wnew", ""));
  CHECK(Get(*copy, "new"));
  CHECK_FALSE(Get(*s, "new"));
}

TEST_CASE("backup: a directory that already holds a data.mdb is refused", "[store]") {
  TempDir dir;
  auto s = OpenAt(dir.sub("live"));
  Put(*s, MakeUser("a", "wa", ""));
  auto first = s->Backup(dir.sub("copy"));
  REQUIRE(first.ok());
  CHECK(first->txid == 0);  // Put takes no transactionId
  auto size_before = fs::file_size(dir.sub("copy") + "/data.mdb");
  CHECK(first->bytes == size_before);
  Put(*s, MakeUser("b", "wb", ""));
  Status st = s->Backup(dir.sub("copy")).status();
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Contains("data.mdb"));
  CHECK(fs::file_size(dir.sub("copy") + "/data.mdb") == size_before);
  // Backing up onto the live store itself is refused the same way.
  CHECK_FALSE(s->Backup(dir.sub("live")).ok());
  CHECK(Get(*s, "b"));
}

TEST_CASE("backup: the copy is mode 0600 whatever the umask, and a symlink named data.mdb is not followed", "[store]") {
  // Issue 21, item 6: mdb_env_copy2 created the copy 0666 less the umask.
  TempDir dir;
  auto s = OpenAt(dir.sub("live"));
  Put(*s, MakeUser("a", "wa", "a@x.com"));
  mode_t old = ::umask(022);
  auto info = s->Backup(dir.sub("copy"));
  ::umask(old);
  REQUIRE(info.ok());
  struct stat st {};
  REQUIRE(::stat((dir.sub("copy") + "/data.mdb").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(dir.sub("copy").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  fs::create_directories(dir.sub("trap"));
  std::string victim = dir.sub("victim");
  { std::ofstream(victim) << "precious"; }
  fs::create_symlink(victim, dir.sub("trap") + "/data.mdb");
  Status refused = s->Backup(dir.sub("trap")).status();
  CHECK(refused.code() == Code::kInvalidArgument);
  std::ifstream in(victim);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "precious");
}

}  // namespace
}  // namespace usersd::store
