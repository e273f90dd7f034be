// usersd-seed: writes N users straight into a (stopped) usersd store, for
// the scale benchmark. Each user gets a deterministic UUID and WorkOS id
// ("user_bench_<i>"), so tokens can be minted for any of them. Writes go
// through the same Store API as the daemon (indexes, transactionIds, change
// feed), in batches of 10,000 per transaction.
//
//   usersd-seed --store DIR --users N [--map-mib M] [--sample K --out FILE]
//
// --sample K writes K evenly spread "UUID WORKOS_ID" lines to FILE.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "store/store.h"

using namespace usersd;

namespace {
std::string UuidFor(uint64_t i) {
  char buf[48];  // 24 + up to 16 hex digits + NUL: room for any uint64_t
  snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx", static_cast<unsigned long long>(i));
  return buf;
}
std::string WorkosIdFor(uint64_t i) { return "user_bench_" + std::to_string(i); }
}  // namespace

int main(int argc, char** argv) {
  std::string dir, out;
  uint64_t n = 0, sample = 0, map_mib = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--store") dir = argv[i + 1];
    else if (a == "--users") n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--map-mib") map_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--sample") sample = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--out") out = argv[i + 1];
  }
  if (dir.empty() || n == 0) {
    fprintf(stderr, "usage: usersd-seed --store DIR --users N [--map-mib M] [--sample K --out FILE]\n");
    return 2;
  }
  store::StoreOptions o;
  o.path = dir;
  o.map_size_bytes = map_mib << 20;
  o.max_map_size_bytes = map_mib << 20;
  auto st = store::Store::Open(o);
  if (!st.ok()) {
    fprintf(stderr, "open: %s\n", st.status().ToString().c_str());
    return 1;
  }
  auto& s = **st;
  int64_t now = SystemClock().NowMs();
  const uint64_t kBatch = 10000;
  for (uint64_t base = 0; base < n; base += kBatch) {
    auto txn = s.BeginWrite();
    if (!txn.ok()) {
      fprintf(stderr, "begin: %s\n", txn.status().ToString().c_str());
      return 1;
    }
    for (uint64_t i = base; i < std::min(n, base + kBatch); ++i) {
      store::UserRecord u;
      u.id = UuidFor(i);
      u.workos_id = WorkosIdFor(i);
      u.email = "bench" + std::to_string(i) + "@example.com";
      u.first_name = "Bench";
      u.last_name = "User " + std::to_string(i);
      u.created_at_ms = now;
      u.profile_picture_url = std::string();
      // Users of a host already in step with WorkOS (SPEC 4b): their id is
      // WorkOS's external_id, so the daemon does not queue the one-time
      // backfill job for each of them (1,000,000 jobs whose deliveries
      // would compete with the scale check's user.me load).
      u.external_id = u.id;
      auto txid = txn->NextTxid();
      if (!txid.ok()) return 1;
      u.txid = *txid;
      Status ps = txn->PutUser(u, std::nullopt);
      if (!ps.ok()) {
        fprintf(stderr, "put: %s\n", ps.ToString().c_str());
        return 1;
      }
      store::Change c{u.txid, store::ChangeOp::kUpsert, u, now};
      if (!txn->AppendChange(c).ok()) return 1;
    }
    Status cs = txn->Commit();
    if (!cs.ok()) {
      fprintf(stderr, "commit: %s\n", cs.ToString().c_str());
      return 1;
    }
  }
  if (sample > 0 && !out.empty()) {
    std::ofstream f(out);
    uint64_t step = std::max<uint64_t>(1, n / sample);
    for (uint64_t i = 0, k = 0; i < n && k < sample; i += step, ++k) f << UuidFor(i) << ' ' << WorkosIdFor(i) << '\n';
  }
  printf("seeded %llu users into %s\n", static_cast<unsigned long long>(n), dir.c_str());
  return 0;
}
