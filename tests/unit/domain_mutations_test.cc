// Tests for domain/user_mutations.h, domain/identity.h and
// domain/shared_fields.h: the one place that changes users, named after the
// promises in their headers (SPEC 4b).
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "domain/identity.h"
#include "domain/shared_fields.h"
#include "domain/user_mutations.h"
#include "domain/versions.h"
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
  p.has_metadata = true;
  return p;
}

// A document of the given values (a JSON object by field name) and
// versions (by field name; others zero).
SharedDoc Doc(const Json& values, const std::map<std::string, Version>& versions = {}) {
  SharedDoc d;
  for (size_t i = 0; i < kSharedFields.size(); ++i) {
    std::string name(kSharedFields[i]);
    if (values.contains(name)) d.values[i] = values[name];
    if (auto v = versions.find(name); v != versions.end()) d.versions[i] = v->second;
  }
  return d;
}

Json MetadataWith(const SharedDoc& doc, const MetadataPolicy& m = {}) {
  auto md = MetadataForPut(EncodeDocument(doc), nullptr, m);
  REQUIRE(md.ok());
  return *md;
}
Json MetadataWith(const Json& values, const MetadataPolicy& m = {}) {
  return MetadataWith(Doc(values), m);
}

Profile WithMetadata(Profile p, Json metadata) {
  p.metadata = std::move(metadata);
  p.has_metadata = true;
  return p;
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

TEST_CASE("shared fields: the document carries every value with its version, ASCII, chunked, and reads back",
          "[domain][metadata]") {
  MetadataPolicy m;
  SharedDoc doc = Doc({{"timezone", "Europe/Paris"},
                       {"settings", {{"note", std::string(900, 'x') + "é☃"}}},
                       {"isOnboarded", true},
                       {"avatarUrl", nullptr}},
                      {{"timezone", Version{1765090000000, 3, 0x3f9a2c7b1d04e5a6}}, {"isOnboarded", Version{7, 0, 1}}});
  std::string text = EncodeDocument(doc);
  CHECK(text.find("\"_v\":{") != std::string::npos);
  CHECK(text.find("\"1765090000000.3.3f9a2c7b1d04e5a6\"") != std::string::npos);
  CHECK(text.find("\"avatarUrl\":null") != std::string::npos);  // cleared: a value, not a missing key
  Json shown = {{"app", "mine"}, {"usersd_7", "stale chunk of a host with keys: 8"}};
  auto md = MetadataForPut(text, &shown, m);
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
  CHECK((*back)->values == doc.values);
  CHECK((*back)->versions == doc.versions);
  // Without what WorkOS showed, only our keys are sent (WorkOS merges the map).
  auto ours = MetadataForPut(text, nullptr, m);
  REQUIRE(ours.ok());
  CHECK(ours->size() == 6);
  CHECK_FALSE(ours->contains("app"));
}

TEST_CASE("shared fields: a document of an earlier release reads as version zero", "[domain][metadata]") {
  MetadataPolicy m;
  Json legacy = {{"usersd_0", R"({"avatarUrl":null,"isOnboarded":true,"settings":null,"timezone":"UTC"})"}};
  auto d = DecodeDocument(legacy, m);
  REQUIRE(d.ok());
  REQUIRE(d->has_value());
  CHECK((*d)->values[0] == Json("UTC"));
  CHECK((*d)->versions == SharedVersions{});
  // A version that does not parse (or is not canonical) reads as zero too.
  auto odd = DecodeDocument(Json{{"usersd_0", R"({"timezone":"UTC","_v":{"timezone":"01.2.0000000000000001"}})"}}, m);
  REQUIRE(odd.ok());
  CHECK((*odd)->versions[0].zero());
}

TEST_CASE("shared fields: chunks left over from a longer document are never read", "[domain][metadata]") {
  MetadataPolicy m;
  std::string longer = EncodeDocument(Doc({{"settings", {{"a", std::string(1500, 'y')}}}}));
  REQUIRE(longer.size() > 1200);
  auto before = MetadataForPut(longer, nullptr, m);
  REQUIRE(before.ok());
  // A PUT of a short document under merge semantics: chunks 0..5 written,
  // and here a chunk 6 of an earlier, larger sync.metadata.keys survives too.
  Json merged = *before;
  merged["usersd_6"] = "garbage that is not JSON";
  auto shorter = MetadataForPut(EncodeDocument(Doc({{"timezone", "UTC"}})), nullptr, m);
  for (auto it = shorter->begin(); it != shorter->end(); ++it) merged[it.key()] = it.value();
  auto d = DecodeDocument(merged, m);
  REQUIRE(d.ok());
  CHECK((*d)->values[0] == Json("UTC"));
  // Even without the blanks an old decoder relied on, the first complete
  // object ends the document.
  Json no_blanks = {{"usersd_0", EncodeDocument(Doc({{"timezone", "UTC"}}))}, {"usersd_1", "tail of an old doc"}};
  auto d2 = DecodeDocument(no_blanks, m);
  REQUIRE(d2.ok());
  CHECK((*d2)->values[0] == Json("UTC"));
}

TEST_CASE("shared fields: too large a document, or too many keys, is refused", "[domain][metadata]") {
  MetadataPolicy m;
  m.keys = 1;
  CHECK_FALSE(MetadataForPut(EncodeDocument(Doc({{"settings", {{"a", std::string(700, 'x')}}}})), nullptr, m).ok());
  m.keys = 6;
  Json shown = Json::object();
  for (int i = 0; i < 5; ++i) shown["app" + std::to_string(i)] = "v";
  auto r = MetadataForPut(EncodeDocument(Doc(Json::object())), &shown, m);
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

TEST_CASE("shared fields: the higher version wins field by field, in any order (commutative, associative, idempotent)",
          "[domain][metadata][merge]") {
  // Random documents over a few values and versions, merged into a record
  // in every order: the result is the same, and is, per field, the value of
  // the highest version.
  std::mt19937_64 rng(GENERATE(1, 2, 3, 4, 5, 6, 7, 8));
  const std::vector<Json> tz = {nullptr, "UTC", "Europe/Paris", "Asia/Tokyo"};
  auto random_doc = [&] {
    SharedDoc d;
    for (size_t i = 0; i < kSharedFields.size(); ++i) {
      if (rng() % 4 == 0) continue;  // a document without the key
      Version v{static_cast<int64_t>(rng() % 5), static_cast<uint32_t>(rng() % 2), 1 + rng() % 3};
      d.versions[i] = v;
      // Equal versions carry equal values (one write each).
      size_t pick = static_cast<size_t>((v.ms * 7 + v.counter * 3 + static_cast<int64_t>(v.host)) % 4);
      if (kSharedFields[i] == "timezone") d.values[i] = tz[pick];
      if (kSharedFields[i] == "settings") d.values[i] = pick == 0 ? Json(nullptr) : Json{{"k", pick}};
      if (kSharedFields[i] == "isOnboarded") d.values[i] = pick % 2 == 1;
      if (kSharedFields[i] == "avatarUrl")
        d.values[i] = pick == 0 ? Json(nullptr) : Json("https://a/" + std::to_string(pick));
    }
    return d;
  };
  std::vector<SharedDoc> docs;
  for (int i = 0; i < 4; ++i) docs.push_back(random_doc());
  std::vector<size_t> order = {0, 1, 2, 3};
  std::optional<SharedDoc> first;
  do {
    UserRecord u;
    for (size_t k : order) MergeDocument(u, docs[k]);
    MergeDocument(u, docs[order[0]]);  // again: idempotent
    SharedDoc got = DocumentOf(u);
    if (!first) {
      first = got;
      for (size_t i = 0; i < kSharedFields.size(); ++i) {
        Version best;
        std::optional<Json> value;
        for (const auto& d : docs)
          if (d.values[i] && (!value || best < d.versions[i])) best = d.versions[i], value = d.values[i];
        if (value) {
          CHECK(got.versions[i] == best);
          CHECK(*got.values[i] == *value);
        }
      }
    } else {
      CHECK(got.values == first->values);
      CHECK(got.versions == first->versions);
    }
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("shared fields: equal versions with another value take the document's (values of an earlier release)",
          "[domain][metadata][merge]") {
  UserRecord u;
  u.timezone = "Asia/Tokyo";  // version zero: written before versions existed
  DocMerge r = MergeDocument(u, Doc({{"timezone", "UTC"}}));
  CHECK(r.values_changed);
  CHECK(u.timezone == std::optional<std::string>("UTC"));
  // A value that does not validate is left out, and its version not taken.
  r = MergeDocument(u, Doc({{"timezone", "Not/AZone"}}, {{"timezone", Version{5, 0, 1}}}));
  CHECK(r.rejected == "timezone");
  CHECK(u.timezone == std::optional<std::string>("UTC"));
  CHECK(u.shared_versions[0].zero());
}

// ------------------------------------------------------------- versions

TEST_CASE("versions: canonical text only", "[domain][versions]") {
  Version v{1765090000000, 42, 0x00ff00ff00ff00ffULL};
  CHECK(FormatVersion(v) == "1765090000000.42.00ff00ff00ff00ff");
  CHECK(ParseVersion(FormatVersion(v)) == std::optional<Version>(v));
  for (const char* bad : {"", "1.2", "1.2.3", "-1.0.0000000000000001", "1.2.00FF00FF00FF00FF", "01.2.0000000000000001",
                          "1.2.0000000000000001x", "+1.2.0000000000000001", "99999999999999999999.0.0000000000000001"})
    CHECK_FALSE(ParseVersion(bad).has_value());
}

TEST_CASE("versions: a write after seeing another host's version is above it, whatever the wall clocks",
          "[domain][versions]") {
  Db db;
  Version a = *db.Write([&](store::WriteTxn& t) { return NextVersion(t, 1000); });
  Version b = *db.Write([&](store::WriteTxn& t) { return NextVersion(t, 1000); });
  CHECK(a < b);  // same millisecond: the counter orders them
  Version c = *db.Write([&](store::WriteTxn& t) { return NextVersion(t, 900); });
  CHECK(b < c);  // a clock that went back still moves forward
  // Another host, ten minutes ahead, wrote; this host saw it.
  Version theirs{1000 + 600000, 7, 0xffffffffffffffffULL};
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ObserveVersion(t, theirs); }).ok());
  Version d = *db.Write([&](store::WriteTxn& t) { return NextVersion(t, 1001); });
  CHECK(theirs < d);  // above it even against the highest host id
  // The clock is in the store: a restart does not go back.
  auto path = db.dir.path();
  db.store.reset();
  auto reopened = store::Store::Open(store::StoreOptions{path});
  REQUIRE(reopened.ok());
  db.store = std::move(*reopened);
  Version e = *db.Write([&](store::WriteTxn& t) { return NextVersion(t, 1); });
  CHECK(d < e);
  CHECK(e.host == d.host);
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

TEST_CASE("mutations: WorkOS-owned fields with an undelivered change are held; shared fields go by version",
          "[domain][mutations]") {
  Db db;
  REQUIRE(
      db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P("user_h", "h@example.com"), db.Ctx()); }).ok());
  auto u = db.ByWorkos("user_h");
  Actor self{u->id, std::nullopt, false};
  UserPatch patch;
  patch.id = u->id;
  patch.timezone = std::optional<std::string>("Asia/Tokyo");
  patch.first_name = "Mine";
  auto m = db.Write([&](store::WriteTxn& t) { return ApplyPatch(t, self, patch, db.Ctx()); });
  REQUIRE(m.ok());
  REQUIRE(m->queued_job);
  Version mine = db.ByWorkos("user_h")->shared_versions[0];
  REQUIRE_FALSE(mine.zero());

  // A later state whose document holds an older timezone (and a first name
  // of WorkOS's): the local write is newer, and first_name is held.
  Profile later = WithMetadata(P("user_h", "h@example.com"),
                               MetadataWith(Doc({{"timezone", "UTC"}, {"isOnboarded", true}},
                                                {{"timezone", Version{1, 0, 9}}, {"isOnboarded", Version{1, 0, 9}}})));
  later.first_name = "Theirs";
  later.updated_at_ms = 1'700'000'009'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, later, db.Ctx()); }).ok());
  u = db.ByWorkos("user_h");
  CHECK(u->timezone == std::optional<std::string>("Asia/Tokyo"));  // newer here
  CHECK(u->first_name == "Mine");                                  // held
  CHECK(u->is_onboarded);                                          // newer there: applied
  CHECK(u->workos_versions[0] == Version{1, 0, 9});

  // Another host wrote timezone after seeing this host's value: its
  // version is higher, and it wins here although this host's write is
  // still pending.
  Version newer = mine;
  ++newer.counter;
  Profile again = WithMetadata(P("user_h", "h@example.com"),
                               MetadataWith(Doc({{"timezone", "Europe/Oslo"}, {"isOnboarded", true}},
                                                {{"timezone", newer}, {"isOnboarded", Version{1, 0, 9}}})));
  again.updated_at_ms = 1'700'000'010'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, again, db.Ctx()); }).ok());
  u = db.ByWorkos("user_h");
  CHECK(u->timezone == std::optional<std::string>("Europe/Oslo"));
  CHECK(u->shared_versions[0] == newer);
  // And this host's next write is above it, wherever its clock is.
  db.now -= 3'600'000;
  patch = UserPatch{};
  patch.id = u->id;
  patch.timezone = std::optional<std::string>("UTC");
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyPatch(t, self, patch, db.Ctx()); }).ok());
  CHECK(newer < db.ByWorkos("user_h")->shared_versions[0]);
}

TEST_CASE("mutations: writes to a user between two sends merge into its one pending job",
          "[domain][mutations][outbox]") {
  Db db;
  REQUIRE(
      db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P("user_c", "c@example.com"), db.Ctx()); }).ok());
  std::string id = db.ByWorkos("user_c")->id;
  Actor self{id, std::nullopt, false};
  for (int i = 0; i < 50; ++i) {
    UserPatch patch;
    patch.id = id;
    patch.first_name = "Name" + std::to_string(i);
    if (i % 2) patch.timezone = std::optional<std::string>(i % 4 == 1 ? "UTC" : "Asia/Tokyo");
    REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyPatch(t, self, patch, db.Ctx()); }).ok());
  }
  REQUIRE(db.Write([&](store::WriteTxn& t) { return FinishOnboarding(t, id, db.Ctx()); }).ok());
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].fields == Json{{"first_name", "Name49"}, {"doc", true}});
  auto u = db.ByWorkos("user_c");
  CHECK(jobs[0].version == MaxVersion(u->shared_versions));
  // A delete goes after it, in order; nothing merges across it.
  REQUIRE(db.Write([&](store::WriteTxn& t) { return SoftDelete(t, self, id, db.Ctx()); }).ok());
  jobs = db.Jobs();
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[1].op == JobOp::kDelete);
}

TEST_CASE("mutations: a read showing WorkOS without a value this host holds queues a publish",
          "[domain][mutations][outbox]") {
  Db db;
  Version v7{1'750'000'000'000, 0, 7};
  Profile p = WithMetadata(P("user_p", "p@example.com"), MetadataWith(Doc({{"timezone", "UTC"}}, {{"timezone", v7}})));
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, p, db.Ctx()); }).ok());
  CHECK(db.Jobs().empty());  // what WorkOS has: nothing to publish
  // A concurrent PUT of another host erased it: WorkOS shows an older value.
  Profile erased = WithMetadata(P("user_p", "p@example.com"), MetadataWith(Doc({{"timezone", "Asia/Tokyo"}})));
  erased.updated_at_ms = *p.updated_at_ms + 1000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, erased, db.Ctx()); }).ok());
  auto u = db.ByWorkos("user_p");
  CHECK(u->timezone == std::optional<std::string>("UTC"));  // kept: higher version
  CHECK(NeedsPublishing(*u));
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].fields == Json{{"doc", true}});
  // Reading it again queues nothing more.
  erased.updated_at_ms = *erased.updated_at_ms + 1000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, erased, db.Ctx()); }).ok());
  CHECK(db.Jobs().size() == 1);
  // A user object without a metadata map says nothing about the document.
  Profile bare = P("user_q", "q@example.com");
  bare.has_metadata = false;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, bare, db.Ctx()); }).ok());
  CHECK(db.Jobs().size() == 1);
}

TEST_CASE("mutations: a stale state's document still merges by version", "[domain][mutations]") {
  Db db;
  Profile now = P("user_s", "s@example.com");
  now.updated_at_ms = 1'700'000'100'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, now, db.Ctx()); }).ok());
  // An older event (another host's PUT a later PUT erased) carries a higher
  // version: order does not matter for versions, and WorkOS lacks it now.
  Profile old = WithMetadata(P("user_s", "old@example.com"),
                             MetadataWith(Doc({{"isOnboarded", true}}, {{"isOnboarded", Version{5, 0, 3}}})));
  old.updated_at_ms = 1'700'000'050'000;
  auto r = db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, old, db.Ctx()); });
  REQUIRE(r.ok());
  auto u = db.ByWorkos("user_s");
  CHECK(u->is_onboarded);
  CHECK(u->email == "s@example.com");  // the stale state's email is not applied
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);  // and it goes back to WorkOS
  CHECK(jobs[0].fields == Json{{"doc", true}});
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
      REQUIRE(store::WriteUserChange(t, u, std::nullopt, store::ChangeOp::kUpsert, 1).ok());
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
    CHECK(j.fields["doc"] == true);  // the shared fields go with it
    CHECK_FALSE(j.fields.contains("email"));
  }
}

// ------------------------------------------------------------ publish

Profile Shown(std::optional<std::string> external_id, Json metadata) {
  Profile p;
  p.workos_id = "user_rmw";
  p.external_id = std::move(external_id);
  p.metadata = std::move(metadata);
  p.has_metadata = true;
  return p;
}

UserRecord Known(std::optional<std::string> external_id = std::string()) {
  UserRecord u;
  u.id = "00000000-0000-4000-8000-000000000042";
  u.workos_id = "user_rmw";
  u.timezone = "UTC";
  u.shared_versions[0] = Version{10, 0, 1};
  u.external_id = std::move(external_id);
  return u;
}

TEST_CASE("publish: one PUT with the changed owned fields and the whole versioned document, no read",
          "[domain][publish]") {
  SyncPolicy sync;
  UserRecord u = Known();
  PublishPlan plan = PlanPublish(Json{{"first_name", "Ada"}, {"doc", true}}, u, nullptr, sync);
  REQUIRE_FALSE(plan.read_first);
  REQUIRE_FALSE(plan.refusal);
  CHECK(plan.body["first_name"] == "Ada");
  CHECK(plan.body["metadata"].size() == 6);  // only our keys: WorkOS merges the map
  auto doc = DecodeDocument(plan.body["metadata"], sync.metadata);
  REQUIRE(doc.ok());
  CHECK((*doc)->values[0] == Json("UTC"));
  CHECK((*doc)->versions[0] == Version{10, 0, 1});
  CHECK(plan.sent.doc);
  CHECK(plan.sent.doc_versions == u.shared_versions);
  CHECK(plan.sent.owned == Json{{"first_name", "Ada"}});
  // A job of an earlier release (shared fields by name) publishes the same.
  PublishPlan legacy = PlanPublish(Json{{"timezone", "Asia/Tokyo"}}, u, nullptr, sync);
  CHECK(legacy.body["metadata"] == plan.body["metadata"]);
  // Sharing off: the document is not sent.
  sync.metadata.enabled = false;
  CHECK(PlanPublish(Json{{"doc", true}}, u, nullptr, sync).body.empty());
}

TEST_CASE("publish: a user WorkOS showed with keys of the application is read first, and they are carried",
          "[domain][publish]") {
  SyncPolicy sync;
  UserRecord u = Known();
  u.app_metadata = true;
  PublishPlan first = PlanPublish(Json{{"doc", true}}, u, nullptr, sync);
  CHECK(first.read_first);
  // WorkOS holds a newer value of another field (another host's): the
  // document published is the merge, and the application's key is carried.
  Json shown_md = MetadataWith(Doc({{"timezone", "Europe/Paris"}, {"isOnboarded", true}},
                                   {{"timezone", Version{9, 0, 2}}, {"isOnboarded", Version{12, 0, 2}}}));
  shown_md["app_flag"] = "on";
  Profile shown = Shown(std::string(""), shown_md);
  PublishPlan plan = PlanPublish(Json{{"doc", true}}, u, &shown, sync);
  REQUIRE_FALSE(plan.read_first);
  CHECK(plan.body["metadata"]["app_flag"] == "on");
  auto doc = DecodeDocument(plan.body["metadata"], sync.metadata);
  REQUIRE(doc.ok());
  CHECK((*doc)->values[0] == Json("UTC"));  // ours is newer (10 > 9)
  CHECK((*doc)->values[2] == Json(true));   // theirs is newer
  CHECK(plan.sent.doc_versions[2] == Version{12, 0, 2});
  // read_first never: no read, only our keys.
  sync.metadata.read_first = MetadataPolicy::ReadFirst::kNever;
  CHECK_FALSE(PlanPublish(Json{{"doc", true}}, u, nullptr, sync).read_first);
}

TEST_CASE("publish: external_id is written without a read only when WorkOS is known to have none",
          "[domain][publish][identity]") {
  SyncPolicy sync;
  const std::string mine = "c1150f05-2fe1-5cf3-993b-8506b7a2acb4";
  const std::string theirs = "e2742de3-688c-5bdd-9717-24adfa4f3524";
  Json publish = {{"external_id", mine}};
  PublishPlan known_empty = PlanPublish(publish, Known(std::string()), nullptr, sync);
  CHECK_FALSE(known_empty.read_first);
  CHECK(known_empty.body == Json{{"external_id", mine}});
  CHECK(known_empty.sent.external_id == std::optional<std::string>(mine));
  CHECK(PlanPublish(publish, Known(std::nullopt), nullptr, sync).read_first);  // unknown
  CHECK(PlanPublish(publish, Known(mine), nullptr, sync).body.empty());        // there already

  Profile none = Shown(std::nullopt, Json::object());
  CHECK(PlanPublish(publish, Known(std::nullopt), &none, sync).body == Json{{"external_id", mine}});
  Profile same = Shown(mine, Json::object());
  PublishPlan p_same = PlanPublish(publish, Known(std::nullopt), &same, sync);
  CHECK(p_same.body.empty());
  CHECK(p_same.learned_external_id == std::optional<std::optional<std::string>>(mine));
  Profile other = Shown(theirs, Json::object());  // another host was first: re-key
  PublishPlan p_other = PlanPublish(publish, Known(std::nullopt), &other, sync);
  CHECK(p_other.body.empty());
  CHECK(p_other.learned_external_id == std::optional<std::optional<std::string>>(theirs));
  CHECK_FALSE(p_other.refusal);
  Profile app = Shown(std::string("crm-7"), Json::object());  // the application's: never changed
  PublishPlan p_app = PlanPublish(publish, Known(std::nullopt), &app, sync);
  CHECK(p_app.body.empty());
  CHECK_FALSE(p_app.refusal);

  Json import = {{"external_id", mine}, {"external_id_import", true}, {"last_name", "X"}};
  CHECK(PlanPublish(import, Known(std::string()), nullptr, sync).read_first);  // an import always checks
  PublishPlan imported = PlanPublish(import, Known(std::nullopt), &other, sync);
  REQUIRE(imported.refusal);
  CHECK(imported.keep_imported_id);
  CHECK(imported.refusal->find(theirs) != std::string::npos);
  CHECK(imported.refusal->find(mine) != std::string::npos);
}

TEST_CASE("publish: a document that does not fit is a refusal, not a PUT", "[domain][publish][metadata]") {
  SyncPolicy sync;
  sync.metadata.keys = 1;
  UserRecord u = Known();
  u.settings = Json{{"a", std::string(800, 'x')}};
  PublishPlan plan = PlanPublish(Json{{"doc", true}}, u, nullptr, sync);
  REQUIRE(plan.refusal);
  CHECK_FALSE(plan.body.contains("metadata"));
}

// Seeds a live user of WorkOS id `w` and patches it as its owner.
std::string SeedAndPatch(Db& db, const std::string& w, const UserPatch& patch_in) {
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P(w, w + "@example.com"), db.Ctx()); }).ok());
  std::string id = db.ByWorkos(w)->id;
  UserPatch patch = patch_in;
  patch.id = id;
  REQUIRE(db.Write([&](store::WriteTxn& t) {
              return ApplyPatch(t, Actor{id, std::nullopt, false}, patch, db.Ctx());
            }).ok());
  return id;
}

TEST_CASE("publish: an answer settles what was sent; a write during the flight keeps the job for the next send",
          "[domain][publish]") {
  Db db;
  UserPatch patch;
  patch.first_name = "Ada";
  patch.timezone = std::optional<std::string>("UTC");
  std::string id = SeedAndPatch(db, "user_f", patch);
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  UserRecord u = *db.ByWorkos("user_f");
  PublishPlan plan = PlanPublish(jobs[0].fields, u, nullptr, db.sync);
  REQUIRE(plan.body.contains("metadata"));

  // While the PUT is out, the user writes settings and a last name.
  UserPatch during;
  during.id = id;
  during.settings = std::optional<Json>(Json{{"theme", {{"mode", "dark"}}}});
  during.last_name = "Byron";
  REQUIRE(db.Write([&](store::WriteTxn& t) {
              return ApplyPatch(t, Actor{id, std::nullopt, false}, during, db.Ctx());
            }).ok());

  // WorkOS's answer: the user after the PUT.
  Profile answer = WithMetadata(P("user_f", "user_f@example.com"), plan.body["metadata"]);
  answer.first_name = "Ada";
  answer.updated_at_ms = 1'700'000'900'000;
  auto out =
      db.Write([&](store::WriteTxn& t) { return CompletePublish(t, {jobs[0].id}, plan.sent, answer, 200, db.Ctx()); });
  REQUIRE(out.ok());
  CHECK(out->job_kept);
  CHECK_FALSE(out->not_taken);
  jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].fields == Json{{"last_name", "Byron"}, {"doc", true}});  // first_name delivered
  u = *db.ByWorkos("user_f");
  CHECK(u.last_name == "Byron");  // held: not reverted by the answer
  CHECK(u.workos_updated_at_ms == answer.updated_at_ms);
  CHECK(u.workos_versions == plan.sent.doc_versions);

  // The second send settles everything.
  PublishPlan second = PlanPublish(jobs[0].fields, u, nullptr, db.sync);
  Profile answer2 = WithMetadata(P("user_f", "user_f@example.com"), second.body["metadata"]);
  answer2.first_name = "Ada";
  answer2.last_name = "Byron";
  answer2.updated_at_ms = 1'700'000'901'000;
  out = db.Write(
      [&](store::WriteTxn& t) { return CompletePublish(t, {jobs[0].id}, second.sent, answer2, 200, db.Ctx()); });
  REQUIRE(out.ok());
  CHECK_FALSE(out->job_kept);
  CHECK(db.Jobs().empty());
  CHECK_FALSE(NeedsPublishing(*db.ByWorkos("user_f")));
  // An event of a state before these PUTs is stale now: the names stay.
  Profile old = P("user_f", "user_f@example.com");
  old.first_name = "Old";
  old.updated_at_ms = 1'700'000'800'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, old, db.Ctx()); }).ok());
  CHECK(db.ByWorkos("user_f")->first_name == "Ada");
}

TEST_CASE("publish: a field WorkOS did not take is a dead letter with the value asked for, and reverts here",
          "[domain][publish][deadletter]") {
  Db db;
  REQUIRE(db.Write([&](store::WriteTxn& t) {
              return ApplyRemoteUser(t, P("user_frank", "frank@example.com"), db.Ctx());
            }).ok());
  UserPatch patch;
  // WorkOS will not give Eve this address (it answers with her old one).
  patch.email = "taken@example.com";
  std::string eve = SeedAndPatch(db, "user_eve", patch);
  CHECK(db.ByWorkos("user_eve")->email == "taken@example.com");
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  UserRecord u = *db.ByWorkos("user_eve");
  PublishPlan plan = PlanPublish(jobs[0].fields, u, nullptr, db.sync);
  Profile answer = P("user_eve", "user_eve@example.com");  // WorkOS kept the old address
  answer.updated_at_ms = 1'700'000'900'000;
  auto out =
      db.Write([&](store::WriteTxn& t) { return CompletePublish(t, {jobs[0].id}, plan.sent, answer, 200, db.Ctx()); });
  REQUIRE(out.ok());
  REQUIRE(out->not_taken);
  CHECK(out->not_taken->find("email") != std::string::npos);
  CHECK(db.ByWorkos("user_eve")->email == "user_eve@example.com");  // back to WorkOS's; the claim is released
  auto t = db.store->BeginRead();
  auto dead = t->ListDeadLetters(0);
  REQUIRE(dead->size() == 1);
  CHECK((*dead)[0].job.fields == Json{{"email", "taken@example.com"}});  // what was asked for
  CHECK((*dead)[0].job.version == jobs[0].version);
  CHECK(t->ListJobs(0)->empty());
}

TEST_CASE("publish: a refusal buries what was asked for, releases a refused email, and queues a re-read",
          "[domain][publish][deadletter]") {
  Db db;
  UserPatch patch;
  patch.email = "frank@example.com";  // Frank exists in WorkOS, not on this host
  std::string eve = SeedAndPatch(db, "user_eve", patch);
  auto jobs = db.Jobs();
  UserRecord u = *db.ByWorkos("user_eve");
  PublishPlan plan = PlanPublish(jobs[0].fields, u, nullptr, db.sync);
  auto out = db.Write([&](store::WriteTxn& t) {
    return RefusePublish(t, {jobs[0].id}, plan.sent, 422, R"({"code":"email_not_available"})", db.Ctx());
  });
  REQUIRE(out.ok());
  CHECK(out->queued_resync);
  jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].op == JobOp::kFetch);
  CHECK(jobs[0].fields == Json{{"resync", true}});
  {
    auto t = db.store->BeginRead();
    auto dead = t->ListDeadLetters(0);
    REQUIRE(dead->size() == 1);
    CHECK((*dead)[0].status == 422);
    CHECK((*dead)[0].job.fields == Json{{"email", "frank@example.com"}});
  }
  // The re-read brings WorkOS's value back; Frank, provisioned meanwhile
  // with the address waiting, gets it.
  REQUIRE(db.Write([&](store::WriteTxn& w) {
              return ApplyRemoteUser(w, P("user_frank", "frank@example.com"), db.Ctx());
            }).ok());
  CHECK(db.ByWorkos("user_frank")->email.empty());  // Eve still holds it here
  Profile back = P("user_eve", "user_eve@example.com");
  back.updated_at_ms = 1'700'000'900'000;
  REQUIRE(db.Write([&](store::WriteTxn& w) { return ApplyFetchedProfile(w, back, /*resync=*/true, db.Ctx()); }).ok());
  CHECK(db.ByWorkos("user_eve")->email == "user_eve@example.com");
  CHECK(db.ByWorkos("user_frank")->email == "frank@example.com");
}

TEST_CASE("publish: jobs of an earlier release become the document, with versions for their fields",
          "[domain][publish][upgrade]") {
  Db db;
  REQUIRE(
      db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, P("user_l", "l@example.com"), db.Ctx()); }).ok());
  std::string id = db.ByWorkos("user_l")->id;
  db.Write([&](store::WriteTxn& t) {
    // What an earlier release queued for user.update {timezone}: the value by name.
    auto u = t.GetUser(id);
    UserRecord after = **u;
    after.timezone = "Asia/Tokyo";
    REQUIRE(t.PutUser(after, *u).ok());
    store::OutboxJob j;
    j.user_id = id;
    j.workos_id = "user_l";
    j.fields = Json{{"timezone", "Asia/Tokyo"}, {"first_name", "L"}};
    REQUIRE(t.EnqueueJob(j).ok());
    return 0;
  });
  auto n = db.Write([&](store::WriteTxn& t) { return ConvertLegacyJobs(t, db.Ctx()); });
  REQUIRE(n.ok());
  CHECK(*n == 1);
  auto jobs = db.Jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].fields == Json{{"first_name", "L"}, {"doc", true}});
  CHECK_FALSE(db.ByWorkos("user_l")->shared_versions[0].zero());
  // A document read now (another host's, unversioned) does not replace it.
  Profile other = WithMetadata(P("user_l", "l@example.com"), MetadataWith(Json{{"timezone", "UTC"}}));
  other.updated_at_ms = 1'700'000'900'000;
  REQUIRE(db.Write([&](store::WriteTxn& t) { return ApplyRemoteUser(t, other, db.Ctx()); }).ok());
  CHECK(db.ByWorkos("user_l")->timezone == std::optional<std::string>("Asia/Tokyo"));
  CHECK(*db.Write([&](store::WriteTxn& t) { return ConvertLegacyJobs(t, db.Ctx()); }) == 0);  // once
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
    mine.fields = Json{{"first_name", "Me"}};
    REQUIRE(t.EnqueueJob(mine).ok());
    return 0;
  });
  auto t = db.store->BeginRead();
  auto start = std::chrono::steady_clock::now();
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    auto held = PendingFields(*t, "me");
    REQUIRE(held.ok());
    REQUIRE(held->count("first_name") == 1);
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
