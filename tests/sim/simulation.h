// The replication simulation (SPEC 4b "Convergence"; STYLE 11): several
// hosts and a model of WorkOS in one process, on one seed, with no sockets
// and no wall clock.
//
// Each host is a real store (LMDB) changed only through the real code:
// domain/user_mutations.h for every write, read and publish answer,
// domain/publish.h for what a request carries, sync/workos_pages.h for
// reading the events feed. What the simulation stands in for is the I/O
// around them: the outbox's scheduling (one request per user in flight, in
// job order), the events poller's page loop and reconciliation's listing.
//
// The WorkOS model holds users with their metadata map (merged or replaced
// on PUT, as the seed chooses), keeps an events feed (optionally without
// events for metadata-only changes), and answers requests after random
// delays, so PUTs of different hosts reach it in any order and reads are
// older than writes in flight. The seed also picks: 3 to 5 hosts, their
// clock skews (up to +-10 minutes), partitions from WorkOS, restarts (a host
// loses everything that was only in memory: requests in flight), transient
// 5xx, application metadata keys on some users, and the writes.
//
// After the writes stop, partitions heal and the hosts run until nothing is
// left to send or read, with a reconciliation pass (as the periodic one would
// do); then every host and WorkOS must hold, for each live user and shared
// field, the value of the highest-versioned acknowledged write, the same
// WorkOS-owned fields, the same id and deleted state, and the application's
// metadata keys must still be there.
#pragma once

#include <cstdint>
#include <string>

namespace usersd::sim {

struct SimOptions {
  uint64_t seed = 1;
  bool trace = false;  // print every step to stderr
};

struct SimResult {
  bool ok = true;
  std::string failure;  // what did not hold, naming host, user and field
  // What the run did (for the long-run figures).
  uint64_t hosts = 0, users = 0, writes = 0, puts = 0, gets = 0, events = 0, restarts = 0, republished = 0;
  uint64_t steps = 0;
};

// Runs one seed. Deterministic: the same seed gives the same run.
SimResult RunSeed(const SimOptions& options);

}  // namespace usersd::sim
