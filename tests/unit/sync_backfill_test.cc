// Tests of sync/backfill.h on a real store and writer: each promise of its
// header is a test case. What a job carries is domain::BackfillExternalIds's
// rule, tested in domain_mutations_test.cc.
#include <catch2/catch.hpp>

#include <set>

#include "store/meta_keys.h"
#include "sync/backfill.h"
#include "sync_fake_workos.h"

namespace usersd::sync {
namespace {

using testing::StoreRig;

std::string Uuid(int i) {
  std::string n = std::to_string(i);
  return "00000000-0000-4000-8000-" + std::string(12 - n.size(), '0') + n;
}

// Users 0..n-1; every third one (1, 4, 7, ...) has its id published
// already, and every fifth one (3, 8, ...) is deleted: neither qualifies.
std::set<std::string> AddUsers(StoreRig& rig, int n) {
  std::set<std::string> qualifying;
  for (int i = 0; i < n; ++i) {
    store::UserRecord u = rig.MakeUser(Uuid(i), "user_" + std::to_string(i));
    if (i % 3 == 1) u.external_id = u.id;
    if (i % 5 == 3) u.deleted_at_ms = 5;
    if (i % 3 != 1 && i % 5 != 3) qualifying.insert(u.id);
    rig.PutUser(u);
  }
  return qualifying;
}

std::optional<std::string> Position(StoreRig& rig) {
  auto txn = rig.store->BeginRead();
  REQUIRE(txn.ok());
  auto v = txn->GetMeta(store::kMetaExternalIdBackfill);
  REQUIRE(v.ok());
  return *v;
}

std::set<std::string> PublishedIds(StoreRig& rig) {
  std::set<std::string> ids;
  for (const auto& j : rig.Jobs()) {
    REQUIRE(j.fields.contains("external_id"));
    CHECK(j.fields["external_id"] == j.user_id);
    ids.insert(j.user_id);
  }
  return ids;
}

BackfillOptions Options(size_t batch, int* kicks) {
  BackfillOptions o;
  o.batch = batch;
  o.on_queued = [kicks] { ++*kicks; };
  return o;
}

TEST_CASE("backfill: every qualifying live user gets exactly one job, over many batches", "[sync][backfill]") {
  StoreRig rig;
  auto qualifying = AddUsers(rig, 20);
  REQUIRE(qualifying.size() == 10);
  int kicks = 0;
  ExternalIdBackfill b(rig.store.get(), rig.writer.get(), rig.clock, Options(3, &kicks));
  b.Start();
  rig.SpinUntil([&] { return b.done(); });
  CHECK_FALSE(b.running());
  CHECK(b.queued() == qualifying.size());
  CHECK(PublishedIds(rig) == qualifying);
  CHECK(rig.Jobs().size() == qualifying.size());
  // 7 batches (3 users each, then 2); the 6 that queued a job woke the
  // outbox once each, the last (users 18 and 19) did not.
  CHECK(kicks == 6);
  CHECK(Position(rig) == std::optional<std::string>("done"));
}

TEST_CASE("backfill: after Stop no batch follows, and a restart resumes after the last committed one",
          "[sync][backfill]") {
  StoreRig rig;
  auto qualifying = AddUsers(rig, 20);
  int kicks = 0;
  size_t first_run = 0;
  {
    ExternalIdBackfill b(rig.store.get(), rig.writer.get(), rig.clock, Options(4, &kicks));
    b.Start();
    b.Stop();  // the first batch is already with the writer
    rig.SpinUntil([&] { return !b.running(); });
    CHECK_FALSE(b.done());
    first_run = b.queued();
  }
  // Users 0..3 looked at (0 and 2 qualify); the position is the last one.
  CHECK(first_run == 2);
  CHECK(Position(rig) == std::optional<std::string>(Uuid(3)));
  CHECK(PublishedIds(rig) == std::set<std::string>{Uuid(0), Uuid(2)});

  ExternalIdBackfill again(rig.store.get(), rig.writer.get(), rig.clock, Options(4, &kicks));
  again.Start();
  rig.SpinUntil([&] { return again.done(); });
  // Nobody queued twice: the second run counted only the users after the
  // position (a second job for a user would merge into the first, so the
  // counts, not the job list, are what show it).
  CHECK(first_run + again.queued() == qualifying.size());
  CHECK(PublishedIds(rig) == qualifying);
}

TEST_CASE("backfill: once done, a later start does nothing", "[sync][backfill]") {
  StoreRig rig;
  AddUsers(rig, 5);
  int kicks = 0;
  {
    ExternalIdBackfill b(rig.store.get(), rig.writer.get(), rig.clock, Options(500, &kicks));
    b.Start();
    rig.SpinUntil([&] { return b.done(); });
  }
  const size_t jobs = rig.Jobs().size();
  const int kicks_before = kicks;
  // A user stored later without its id published (a new user's own creation
  // publishes it; the backfill is for stores of earlier releases).
  rig.PutUser(rig.MakeUser(Uuid(99), "user_99"));
  ExternalIdBackfill later(rig.store.get(), rig.writer.get(), rig.clock, Options(500, &kicks));
  later.Start();
  CHECK(later.done());
  CHECK_FALSE(later.running());
  // Nothing was submitted: a write through the writer now finds no new job.
  REQUIRE(rig.Write([](store::WriteTxn&) { return Status::Ok(); }).ok());
  CHECK(rig.Jobs().size() == jobs);
  CHECK(later.queued() == 0);
  CHECK(kicks == kicks_before);
}

TEST_CASE("backfill: a batch that completes after the backfill is gone is ignored", "[sync][backfill]") {
  StoreRig rig;
  AddUsers(rig, 6);
  int kicks = 0;
  {
    ExternalIdBackfill b(rig.store.get(), rig.writer.get(), rig.clock, Options(2, &kicks));
    b.Start();
  }  // destroyed with its first batch with the writer
  // The writer completes in order, so once this write is done the batch's
  // completion has run (against a dead object, under ASan in make test).
  REQUIRE(rig.Write([](store::WriteTxn&) { return Status::Ok(); }).ok());
  CHECK(kicks == 0);
  // The batch itself committed: its position is kept for the next start.
  CHECK(Position(rig) == std::optional<std::string>(Uuid(1)));
}

}  // namespace
}  // namespace usersd::sync
