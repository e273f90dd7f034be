// store/apply_nested.h: one change of a write batch that may fail alone;
// MapFull goes through to the Writer, which grows the map and replays.
#include "store/apply_nested.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "common/poster.h"
#include "store/store.h"
#include "store/writer.h"
#include "tests/unit/temp_dir.h"

namespace usersd::store {
namespace {

using usersd::testing::TempDir;

std::unique_ptr<Store> OpenStore(const TempDir& dir, uint64_t map = 4ull << 20, uint64_t max_map = 64ull << 20) {
  StoreOptions o;
  o.path = dir.path();
  o.map_size_bytes = map;
  o.max_map_size_bytes = max_map;
  auto s = Store::Open(o);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::optional<std::string> Meta(ReadTxn& t, const std::string& key) {
  auto v = t.GetMeta(key);
  REQUIRE(v.ok());
  return *v;
}

TEST_CASE("apply nested: a change that succeeds is kept, with its value", "[store]") {
  TempDir dir;
  auto store = OpenStore(dir);
  auto t = store->BeginWrite();
  REQUIRE(t.ok());
  auto n = ApplyNested(*t, [](WriteTxn& c) -> Result<int> {
    USERSD_RETURN_IF_ERROR(c.PutMeta("test.a", "1"));
    return 7;
  });
  CHECK(n.must_return.ok());
  REQUIRE(n.outcome.ok());
  CHECK(*n.outcome == 7);
  CHECK(Meta(*t, "test.a") == "1");
  REQUIRE(t->Commit().ok());
  auto r = store->BeginRead();
  REQUIRE(r.ok());
  CHECK(Meta(*r, "test.a") == "1");
}

TEST_CASE("apply nested: a change that fails is dropped alone and the batch carries on", "[store]") {
  TempDir dir;
  auto store = OpenStore(dir);
  auto t = store->BeginWrite();
  REQUIRE(t.ok());
  REQUIRE(t->PutMeta("test.before", "kept").ok());
  auto failed = ApplyNested(*t, [](WriteTxn& c) -> Status {
    USERSD_RETURN_IF_ERROR(c.PutMeta("test.b", "dropped"));
    return Status::InvalidArgument("refused");
  });
  CHECK(failed.must_return.ok());
  CHECK(failed.outcome.code() == Code::kInvalidArgument);
  CHECK(failed.outcome.message() == "refused");
  CHECK_FALSE(Meta(*t, "test.b").has_value());
  auto next = ApplyNested(*t, [](WriteTxn& c) { return c.PutMeta("test.c", "3"); });
  CHECK(next.must_return.ok());
  CHECK(next.outcome.ok());
  REQUIRE(t->Commit().ok());
  auto r = store->BeginRead();
  REQUIRE(r.ok());
  CHECK(Meta(*r, "test.before") == "kept");
  CHECK_FALSE(Meta(*r, "test.b").has_value());
  CHECK(Meta(*r, "test.c") == "3");
}

TEST_CASE("apply nested: MapFull is returned to the op, with the change dropped", "[store]") {
  TempDir dir;
  auto store = OpenStore(dir);
  auto t = store->BeginWrite();
  REQUIRE(t.ok());
  auto n = ApplyNested(*t, [](WriteTxn& c) -> Result<int> {
    USERSD_RETURN_IF_ERROR(c.PutMeta("test.d", "x"));
    return Status::MapFull("no room");
  });
  CHECK(n.must_return.code() == Code::kMapFull);
  CHECK(n.must_return.message() == "no room");
  CHECK(n.outcome.status().code() == Code::kMapFull);
  CHECK_FALSE(Meta(*t, "test.d").has_value());
}

TEST_CASE("apply nested: a real MapFull inside reaches the Writer, which grows the map and replays", "[store]") {
  TempDir dir;
  auto store = OpenStore(dir, 1ull << 20, 64ull << 20);
  uv_loop_t loop{};
  REQUIRE(uv_loop_init(&loop) == 0);
  auto poster = std::make_unique<Poster>(&loop);
  auto writer = std::make_unique<Writer>(store.get(), poster.get(), 512);
  writer->Start();

  // ~2.4 MiB in one op, in nested transactions: more than the first map.
  constexpr int kKeys = 300;
  const std::string pad(8000, 'p');
  bool done = false;
  Status result;
  int skipped = 0;
  writer->Submit(
      [&](WriteTxn& t) -> Status {
        skipped = 0;
        for (int i = 0; i < kKeys; ++i) {
          auto n = ApplyNested(t, [&](WriteTxn& c) { return c.PutMeta("test.pad." + std::to_string(i), pad); });
          USERSD_RETURN_IF_ERROR(n.must_return);
          if (!n.outcome.ok()) ++skipped;
        }
        return Status::Ok();
      },
      [&](Status st) {
        done = true;
        result = std::move(st);
      });
  while (!done) uv_run(&loop, UV_RUN_ONCE);
  INFO(result.ToString());
  CHECK(result.ok());
  CHECK(skipped == 0);
  CHECK(store->Stats().map_size_bytes > (1ull << 20));
  {
    auto r = store->BeginRead();
    REQUIRE(r.ok());
    for (int i = 0; i < kKeys; ++i) CHECK(Meta(*r, "test.pad." + std::to_string(i)) == pad);
  }
  writer->Stop();
  poster->Close();
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  writer.reset();
  poster.reset();
  CHECK(uv_loop_close(&loop) == 0);
}

}  // namespace
}  // namespace usersd::store
