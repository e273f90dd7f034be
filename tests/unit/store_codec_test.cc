// The record codec (store/record_codec.h). Users: the direct codec against
// the DOM form it replaced, the same bytes as nlohmann::json::to_msgpack(
// UserToJson(u)) and the same decoding (including the errors) as
// UserFromJson(from_msgpack(bytes)). Jobs, dead letters and change-feed
// entries: their stored bytes (pinned), round trips and refusals.
#include <catch2/catch.hpp>
#include <algorithm>

#include <cstring>
#include <limits>
#include <random>

#include "store/record_codec.h"

using namespace usersd;
using namespace usersd::store;

namespace {

std::string Bytes(const Json& j) {
  auto v = Json::to_msgpack(j);
  return std::string(v.begin(), v.end());
}

std::string RandomString(std::mt19937_64& rng) {
  // Lengths around every MessagePack string size class boundary.
  static const size_t kLengths[] = {0, 1, 5, 31, 32, 200, 255, 256, 1000, 65535, 65536};
  size_t n = kLengths[rng() % (sizeof kLengths / sizeof kLengths[0])];
  std::string s(n, 'x');
  for (auto& c : s) c = static_cast<char>("abcXYZ 09\"\\\xc3\xa9\n"[rng() % 15]);
  return s;
}

int64_t RandomInt(std::mt19937_64& rng) {
  static const int64_t kValues[] = {0,      1,          127,        128,         255,
                                    256,    65535,      65536,      4294967295LL, 4294967296LL,
                                    -1,     -32,        -33,        -128,         -129,
                                    -32768, -32769,     -2147483648LL, -2147483649LL,
                                    std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
                                    1767225600123LL};
  return kValues[rng() % (sizeof kValues / sizeof kValues[0])];
}

UserRecord RandomUser(std::mt19937_64& rng) {
  UserRecord u;
  u.id = RandomString(rng);
  u.workos_id = RandomString(rng);
  u.email = RandomString(rng);
  u.first_name = RandomString(rng);
  u.last_name = RandomString(rng);
  u.user_type = rng() % 2 ? "user" : "machine";
  u.is_onboarded = rng() % 2;
  u.created_at_ms = RandomInt(rng);
  u.role = rng() % 2 ? "member" : "admin";
  u.profile_pending = rng() % 2;
  u.txid = static_cast<uint64_t>(RandomInt(rng)) ^ (rng() % 2 ? 0 : (1ull << 63));
  if (rng() % 2) u.avatar_url = RandomString(rng);
  if (rng() % 2) u.timezone = RandomString(rng);
  if (rng() % 2) u.updated_at_ms = RandomInt(rng);
  if (rng() % 2) u.deleted_at_ms = RandomInt(rng);
  if (rng() % 2) u.organization_id = RandomString(rng);
  if (rng() % 2) u.profile_picture_url = RandomString(rng);
  if (rng() % 2) u.workos_updated_at_ms = RandomInt(rng);
  if (rng() % 2) u.app_metadata = true;
  // Versions: none (a record of an earlier release), or some, with trailing
  // zero ones (left out of the stored form).
  if (rng() % 2) {
    auto rv = [&] {
      return rng() % 3 ? store::Version{RandomInt(rng) & 0x7fffffffffff, uint32_t(rng()), rng()} : store::Version{};
    };
    for (auto& v : u.shared_versions) v = rv();
    for (auto& v : u.workos_versions) v = rv();
    for (auto& v : u.owned_versions) v = rv();
  }
  switch (rng() % 4) {
    case 0: break;
    case 1: u.settings = Json::object(); break;
    case 2: u.settings = Json{{"theme", "dark"}, {"n", RandomInt(rng)}, {"a", {1, -2.5, nullptr, true, {{"x", "y"}}}}}; break;
    case 3: u.settings = Json::array({"s", 7}); break;
  }
  return u;
}

void RequireSame(const UserRecord& a, const UserRecord& b) {
  CHECK(UserToJson(a) == UserToJson(b));
}

}  // namespace

TEST_CASE("EncodeUser writes the bytes nlohmann writes for the DOM form", "[store][codec]") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 400; ++i) {
    UserRecord u = RandomUser(rng);
    std::string direct = EncodeUser(u);
    REQUIRE(direct == Bytes(UserToJson(u)));
    auto back = DecodeUser(direct);
    REQUIRE(back.ok());
    RequireSame(*back, u);
  }
}

TEST_CASE("EncodeChange writes the change entry's DOM form", "[store][codec]") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    Change c;
    c.txid = 9;
    c.op = i % 2 ? ChangeOp::kDelete : ChangeOp::kUpsert;
    c.user = RandomUser(rng);
    c.at_ms = RandomInt(rng);
    Json dom{{"op", c.op == ChangeOp::kDelete ? 1 : 0}, {"user", UserToJson(c.user)}, {"at", c.at_ms}};
    REQUIRE(EncodeChange(c) == Bytes(dom));
  }
}

TEST_CASE("DecodeUser accepts what the DOM form accepts and refuses what it refuses", "[store][codec]") {
  std::mt19937_64 rng(3);
  UserRecord base = RandomUser(rng);
  base.settings = Json{{"k", "v"}};
  const Json good = UserToJson(base);

  auto same_verdict = [](const Json& j) {
    std::string bytes = Bytes(j);
    auto fast = DecodeUser(bytes);
    bool dom_ok = true;
    UserRecord dom;
    try {
      dom = UserFromJson(Json::from_msgpack(bytes));
    } catch (const std::exception&) {
      dom_ok = false;
    }
    INFO(j.dump(-1, ' ', false, Json::error_handler_t::replace));
    REQUIRE(fast.ok() == dom_ok);
    if (dom_ok) CHECK(UserToJson(*fast) == UserToJson(dom));
    else CHECK(fast.status().code() == Code::kCorruption);
  };

  same_verdict(good);
  SECTION("a missing required field") {
    for (const char* k : {"v", "id", "workos", "email", "first", "last", "type", "onb", "created", "role", "pending", "tx"}) {
      Json j = good;
      j.erase(k);
      same_verdict(j);
    }
  }
  SECTION("wrong types") {
    for (const char* k : {"v", "id", "email", "onb", "created", "tx", "avatar", "tz", "updated", "org", "pic"}) {
      for (const Json& bad : {Json("s"), Json(true), Json(1.5), Json(-3), Json::array({1}), Json::object(), Json(nullptr)}) {
        Json j = good;
        j[k] = bad;
        same_verdict(j);
      }
    }
  }
  SECTION("settings of every JSON type, and null settings") {
    for (const Json& v : {Json(nullptr), Json(true), Json(-7), Json(7u), Json(2.5), Json("s"), Json::array({1, {{"a", 2}}}),
                          Json{{"deep", {{"er", {1, 2, 3}}}}}}) {
      Json j = good;
      j["settings"] = v;
      same_verdict(j);
    }
  }
  SECTION("unknown keys, scalar or nested, are skipped") {
    Json j = good;
    j["zzz"] = Json{{"a", {1, 2, {{"b", nullptr}}}}};
    j["aaa"] = 5;
    same_verdict(j);
  }
  SECTION("another version") {
    Json j = good;
    j["v"] = 2;
    same_verdict(j);
  }
  SECTION("a record that is not an object") {
    for (const Json& v : {Json::array({1, 2}), Json("user"), Json(1), Json(nullptr)}) same_verdict(v);
  }
}

TEST_CASE("DecodeUser refuses bytes that are not MessagePack of a record", "[store][codec]") {
  UserRecord u;
  u.id = "a";
  std::string bytes = EncodeUser(u);
  CHECK_FALSE(DecodeUser("").ok());
  CHECK_FALSE(DecodeUser(bytes.substr(0, bytes.size() - 1)).ok());
  CHECK_FALSE(DecodeUser(bytes + "x").ok());
  // Nesting beyond the decoder's bound, inside settings.
  std::string deep = bytes;
  Json nested = Json::array();
  for (int i = 0; i < 200; ++i) nested = Json::array({nested});
  u.settings = nested;
  auto r = DecodeUser(EncodeUser(u));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorruption);
}

TEST_CASE("DecodeUser reads every integer and string encoding as the DOM form does", "[store][codec]") {
  // Hand-made bytes nlohmann never writes (it picks the smallest unsigned
  // encoding for any non-negative number): each field's value in every
  // MessagePack encoding, with the verdict of UserFromJson(from_msgpack).
  UserRecord base;
  base.id = "u1";
  base.workos_id = "user_1";
  base.txid = 5;
  base.created_at_ms = 1000;
  Json dom = UserToJson(base);
  auto with = [&](const char* key, std::string value_bytes) {
    Json rest = dom;
    rest.erase(key);
    std::string bytes = Bytes(rest);
    REQUIRE((static_cast<uint8_t>(bytes[0]) & 0xf0) == 0x80);  // fixmap: bump its count
    bytes[0] = static_cast<char>(bytes[0] + 1);
    bytes += static_cast<char>(0xa0 | std::strlen(key));
    bytes += key;
    return bytes + value_bytes;
  };
  auto verdict_matches = [](const std::string& bytes) {
    auto fast = DecodeUser(bytes);
    bool dom_ok = true;
    Json expect;
    try {
      expect = UserToJson(UserFromJson(Json::from_msgpack(bytes)));
    } catch (const std::exception&) {
      dom_ok = false;
    }
    REQUIRE(fast.ok() == dom_ok);
    if (dom_ok) CHECK(UserToJson(*fast) == expect);
  };
  const std::string encodings[] = {
      std::string("\x05", 1),                      // positive fixint
      std::string("\xcc\x05", 2),                  // uint8
      std::string("\xcd\x00\x05", 3),              // uint16
      std::string("\xce\x00\x00\x00\x05", 5),      // uint32
      std::string("\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9),
      std::string("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9),  // > INT64_MAX
      std::string("\xd0\x05", 2),                  // int8, positive
      std::string("\xd0\xfb", 2),                  // int8 -5
      std::string("\xd1\xff\xfb", 3),              // int16 -5
      std::string("\xd2\xff\xff\xff\xfb", 5),
      std::string("\xd3\xff\xff\xff\xff\xff\xff\xff\xfb", 9),
      std::string("\xfb", 1),                      // negative fixint -5
      std::string("\x01", 1),
      std::string("\xd0\x01", 2),
      std::string("\xc0", 1),                      // nil
      std::string("\xc3", 1),                      // true
      std::string("\xca\x3f\x80\x00\x00", 5),      // float32 1.0
      std::string("\xa1x", 2),                     // fixstr
      std::string("\xd9\x01x", 3),                 // str8
      std::string("\xda\x00\x01x", 4),             // str16
      std::string("\xdb\x00\x00\x00\x01x", 6),     // str32
      std::string("\xc4\x01x", 3),                 // bin8
      std::string("\x91\x01", 2),                  // [1]
  };
  for (const char* key : {"v", "tx", "created", "updated", "deleted", "id", "email", "avatar", "tz", "onb", "settings", "zz"}) {
    for (const auto& e : encodings) {
      INFO(key << " " << Json::binary(std::vector<uint8_t>(e.begin(), e.end())).dump());
      verdict_matches(with(key, e));
      // Truncated: both must refuse.
      std::string cut = with(key, e);
      cut.pop_back();
      CHECK_FALSE(DecodeUser(cut).ok());
    }
  }
}

// ------------------------------------------------- jobs and dead letters

namespace {

OutboxJob RandomJob(std::mt19937_64& rng) {
  OutboxJob j;
  j.id = static_cast<uint64_t>(RandomInt(rng)) ^ (rng() % 2 ? 0 : (1ull << 63));
  j.user_id = RandomString(rng);
  j.workos_id = RandomString(rng);
  j.op = static_cast<JobOp>(rng() % 3);
  switch (rng() % 3) {
    case 0:
      break;
    case 1:
      j.fields = Json{{"first_name", RandomString(rng)}, {"email", RandomString(rng)}};
      break;
    case 2:
      j.fields = Json{{"last_name", nullptr}, {"n", RandomInt(rng)}, {"a", {1, -2.5, true}}};
      break;
  }
  j.txid = static_cast<uint64_t>(RandomInt(rng));
  j.created_at_ms = RandomInt(rng);
  j.attempts = static_cast<uint32_t>(rng());
  j.next_attempt_at_ms = RandomInt(rng);
  j.last_error = RandomString(rng);
  if (rng() % 2) j.version = store::Version{RandomInt(rng) & 0x7fffffffffff, uint32_t(rng()), rng()};
  return j;
}

std::vector<uint8_t> VersionBytes(const store::Version& v) {
  std::vector<uint8_t> b;
  for (int i = 7; i >= 0; --i) b.push_back(uint8_t(uint64_t(v.ms) >> (8 * i)));
  for (int i = 3; i >= 0; --i) b.push_back(uint8_t(v.counter >> (8 * i)));
  for (int i = 7; i >= 0; --i) b.push_back(uint8_t(v.host >> (8 * i)));
  return b;
}

// The DOM form of a job, written out here rather than taken from the codec.
Json JobDom(const OutboxJob& j) {
  Json dom{{"v", 1},
           {"id", j.id},
           {"user", j.user_id},
           {"workos", j.workos_id},
           {"op", int(j.op)},
           {"fields", j.fields},
           {"tx", j.txid},
           {"created", j.created_at_ms},
           {"attempts", j.attempts},
           {"next", j.next_attempt_at_ms},
           {"err", j.last_error}};
  if (!j.version.zero()) dom["ver"] = Json::binary(VersionBytes(j.version));
  return dom;
}

void RequireSameJob(const OutboxJob& a, const OutboxJob& b) {
  CHECK(JobDom(a) == JobDom(b));
}

std::string Hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += {kDigits[c >> 4], kDigits[c & 15]};
  return out;
}

// A map entry in hex: the key (a fixstr) and the value's hex.
std::string Entry(const std::string& key, const std::string& value_hex) {
  return Hex(std::string(1, static_cast<char>(0xa0 | key.size())) + key) + value_hex;
}

}  // namespace

TEST_CASE("versions are stored as one bin of 20-byte versions, trailing zero ones left out", "[store][codec]") {
  UserRecord u;
  u.id = "i";
  u.workos_id = "w";
  u.shared_versions[1] = store::Version{0x0102030405060708LL, 0x090a0b0c, 0x0d0e0f1011121314ULL};
  std::string bytes = EncodeUser(u);
  Json dom = Json::from_msgpack(bytes);
  REQUIRE(dom.contains("sv"));
  const auto& bin = dom["sv"].get_binary();
  REQUIRE(bin.size() == 40);  // slot 0 (zero) and slot 1; slots 2..10 left out
  CHECK(std::all_of(bin.begin(), bin.begin() + 20, [](uint8_t b) { return b == 0; }));
  CHECK(Hex(std::string(bin.begin() + 20, bin.end())) == "0102030405060708090a0b0c0d0e0f1011121314");
  auto back = DecodeUser(bytes);
  REQUIRE(back.ok());
  CHECK(back->shared_versions == u.shared_versions);
  // A length that is not whole versions is a corrupt record, on both paths.
  dom["sv"] = Json::binary(std::vector<uint8_t>(21, 1));
  CHECK_FALSE(DecodeUser(Bytes(dom)).ok());
  dom["sv"] = Json::binary(std::vector<uint8_t>(12 * 20, 1));
  CHECK_FALSE(DecodeUser(Bytes(dom)).ok());
}

TEST_CASE("EncodeJob and EncodeDeadLetter write the stored bytes they always wrote", "[store][codec]") {
  OutboxJob j;
  j.id = 3;
  j.user_id = "u";
  j.workos_id = "w";
  j.op = JobOp::kDelete;
  j.txid = 9;
  j.created_at_ms = 1000;
  j.attempts = 2;
  // {"attempts":2,"created":1000,"err":"","fields":{},"id":3,"next":0,"op":1,
  //  "tx":9,"user":"u","v":1,"workos":"w"}, keys in std::map order.
  const std::string job_hex = "8b" + Entry("attempts", "02") + Entry("created", "cd03e8") + Entry("err", "a0") +
                              Entry("fields", "80") + Entry("id", "03") + Entry("next", "00") + Entry("op", "01") +
                              Entry("tx", "09") + Entry("user", "a175") + Entry("v", "01") + Entry("workos", "a177");
  CHECK(Hex(EncodeJob(j)) == job_hex);

  DeadLetter d;
  d.job = j;
  d.status = 503;
  d.body = "x";
  d.failed_at_ms = 5;
  // {"at":5,"body":"x","job":<job>,"status":503}
  const std::string dead_hex =
      "84" + Entry("at", "05") + Entry("body", "a178") + Entry("job", job_hex) + Entry("status", "cd01f7");
  CHECK(Hex(EncodeDeadLetter(d)) == dead_hex);
}

TEST_CASE("EncodeJob and EncodeDeadLetter write the DOM form, and decode back", "[store][codec]") {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200; ++i) {
    OutboxJob j = RandomJob(rng);
    std::string bytes = EncodeJob(j);
    REQUIRE(bytes == Bytes(JobDom(j)));
    auto back = DecodeJob(bytes);
    REQUIRE(back.ok());
    RequireSameJob(*back, j);

    DeadLetter d;
    d.job = j;
    d.status = static_cast<int>(RandomInt(rng) % 1000);
    d.body = RandomString(rng);
    d.failed_at_ms = RandomInt(rng);
    std::string dead = EncodeDeadLetter(d);
    REQUIRE(dead == Bytes(Json{{"job", JobDom(j)}, {"status", d.status}, {"body", d.body}, {"at", d.failed_at_ms}}));
    auto dback = DecodeDeadLetter(dead);
    REQUIRE(dback.ok());
    RequireSameJob(dback->job, j);
    CHECK(dback->status == d.status);
    CHECK(dback->body == d.body);
    CHECK(dback->failed_at_ms == d.failed_at_ms);
  }
}

TEST_CASE("DecodeJob's direct reader accepts what the DOM form accepts, and reads the same job", "[store][codec]") {
  std::mt19937_64 rng(17);
  // The reference: the DOM form's reader over nlohmann's MessagePack reader.
  auto dom_decode = [](const std::string& bytes) -> std::optional<Json> {
    try {
      return JobDom(JobFromJson(Json::from_msgpack(bytes)));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  // 15 jobs × about 100 variants each: every key missing and of each wrong
  // type, over the string size classes. Under ASan a job costs about 0.7 s
  // (nlohmann's MessagePack reader takes its 64 KiB strings a character at a
  // time, a hundred times over); 300 jobs ran past ctest's 300 s timeout in CI.
  int accepted = 0, refused = 0;
  for (int i = 0; i < 15; ++i) {
    OutboxJob j = RandomJob(rng);
    Json dom = JobDom(j);
    std::vector<Json> variants = {dom};
    for (auto it = dom.begin(); it != dom.end(); ++it) {
      Json without = dom;
      without.erase(it.key());
      variants.push_back(without);
      for (Json odd : {Json("x"), Json(-1), Json(true), Json(nullptr), Json(1.5), Json::array({1})}) {
        Json changed = dom;
        changed[it.key()] = odd;
        variants.push_back(changed);
      }
    }
    Json extra = dom;
    extra["zz"] = 1;
    variants.push_back(extra);
    for (const Json& v : variants) {
      std::string bytes = Bytes(v);
      auto fast = DecodeJob(bytes);
      auto ref = dom_decode(bytes);
      // The variant is printed only when the readers disagree (an INFO would
      // dump every one).
      if (fast.ok() != ref.has_value() || (fast.ok() && JobDom(*fast) != *ref)) {
        FAIL_CHECK("direct and DOM readers disagree (direct ok: "
                   << fast.ok() << ") on " << v.dump(-1, ' ', false, Json::error_handler_t::replace));
      }
      ++(fast.ok() ? accepted : refused);
    }
  }
  // Both sides of the comparison were exercised.
  CHECK(accepted >= 15);
  CHECK(refused > 15 * 10);
}

TEST_CASE("DecodeJob and DecodeDeadLetter refuse what is not a record of theirs", "[store][codec]") {
  std::mt19937_64 rng(5);
  const Json good = JobDom(RandomJob(rng));
  auto job_refused = [](const Json& j, const std::string& why) {
    auto r = DecodeJob(Bytes(j));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kCorruption);
    CHECK_THAT(r.status().message(), Catch::StartsWith("bad outbox job: " + why));
    // The same job inside a dead letter.
    auto d = DecodeDeadLetter(Bytes(Json{{"job", j}, {"status", 500}, {"body", ""}, {"at", 1}}));
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == Code::kCorruption);
    CHECK_THAT(d.status().message(), Catch::StartsWith("bad dead letter: " + why));
  };
  for (const char* k : {"v", "id", "user", "workos", "op", "fields", "tx", "created", "attempts", "next", "err"}) {
    Json j = good;
    j.erase(k);
    job_refused(j, "");  // nlohmann's message names the key
  }
  Json j = good;
  j["v"] = 2;
  job_refused(j, "unknown outbox job version");
  j = good;
  j["op"] = 3;
  job_refused(j, "bad job op");
  j = good;
  j["tx"] = -1;
  job_refused(j, "tx is not an unsigned integer");
  j = good;
  j["attempts"] = uint64_t{1} << 32;
  job_refused(j, "attempts out of range");
  j = good;
  j["created"] = 1.5;
  job_refused(j, "created is not an integer");

  for (const std::string& bytes : {std::string(), std::string("\xc1", 1), std::string(300, '\x91') + '\x01'}) {
    CHECK(DecodeJob(bytes).status().code() == Code::kCorruption);
    CHECK(DecodeDeadLetter(bytes).status().code() == Code::kCorruption);
  }
  // A dead letter's own fields.
  Json d{{"job", good}, {"status", 500}, {"body", "b"}, {"at", 1}};
  for (const char* k : {"job", "status", "body", "at"}) {
    Json bad = d;
    bad.erase(k);
    auto r = DecodeDeadLetter(Bytes(bad));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::StartsWith("bad dead letter: "));
  }
}

TEST_CASE("DecodeChange reads what EncodeChange writes; the txid is the key's", "[store][codec]") {
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200; ++i) {
    Change c;
    c.txid = 77;
    c.op = i % 2 ? ChangeOp::kDelete : ChangeOp::kUpsert;
    c.user = RandomUser(rng);
    c.at_ms = RandomInt(rng);
    auto back = DecodeChange(EncodeChange(c));
    REQUIRE(back.ok());
    CHECK(back->txid == 0);
    CHECK(back->op == c.op);
    CHECK(back->at_ms == c.at_ms);
    RequireSame(back->user, c.user);
  }
  CHECK(DecodeChange("garbage").status().code() == Code::kCorruption);
  auto r = DecodeChange(Bytes(Json{{"op", 0}, {"at", 1}, {"user", {{"v", 2}}}}));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::StartsWith("bad change: "));
}
