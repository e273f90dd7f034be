// usersd_sim: runs the replication simulation (tests/sim/simulation.h).
//
//   usersd_sim [--seeds N] [--first S] [--seed S] [--trace] [--quiet]
//
// Runs seeds S .. S+N-1 (default 1 .. 1000), or the one --seed. A failing
// seed prints itself with the command that replays it alone, and the exit
// status is 1. --trace prints every step of a single seed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"
#include "tests/sim/simulation.h"

int main(int argc, char** argv) {
  uint64_t first = 1, count = 1000;
  bool one = false, trace = false, quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> uint64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "usersd_sim: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (a == "--seeds") count = next();
    else if (a == "--first") first = next();
    else if (a == "--seed") first = next(), count = 1, one = true;
    else if (a == "--trace") trace = true;
    else if (a == "--quiet") quiet = true;
    else {
      std::fprintf(stderr, "usage: usersd_sim [--seeds N] [--first S] [--seed S] [--trace] [--quiet]\n");
      return 2;
    }
  }
  // The real code logs (warnings about documents, re-keys); a run of
  // thousands of seeds only reports what failed.
  usersd::SetLogLevel(one ? usersd::LogLevel::kInfo : usersd::LogLevel::kError);
  auto start = std::chrono::steady_clock::now();
  uint64_t failed = 0, writes = 0, puts = 0, gets = 0, events = 0, restarts = 0;
  for (uint64_t s = first; s < first + count; ++s) {
    usersd::sim::SimOptions o;
    o.seed = s;
    o.trace = trace;
    usersd::sim::SimResult r = usersd::sim::RunSeed(o);
    writes += r.writes;
    puts += r.puts;
    gets += r.gets;
    events += r.events;
    restarts += r.restarts;
    if (!r.ok) {
      ++failed;
      std::printf("seed %llu FAILED: %s\n  replay: usersd_sim --seed %llu --trace\n", static_cast<unsigned long long>(s),
                  r.failure.c_str(), static_cast<unsigned long long>(s));
      std::fflush(stdout);
    } else if (one && !quiet) {
      std::printf("seed %llu ok: %llu hosts, %llu users, %llu writes, %llu PUTs, %llu GETs, %llu events, %llu steps\n",
                  static_cast<unsigned long long>(s), static_cast<unsigned long long>(r.hosts),
                  static_cast<unsigned long long>(r.users), static_cast<unsigned long long>(r.writes),
                  static_cast<unsigned long long>(r.puts), static_cast<unsigned long long>(r.gets),
                  static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.steps));
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("usersd_sim: %llu seeds from %llu, %llu failed; %llu writes, %llu PUTs, %llu GETs, %llu events, "
              "%llu restarts; %.1f s\n",
              static_cast<unsigned long long>(count), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(failed), static_cast<unsigned long long>(writes),
              static_cast<unsigned long long>(puts), static_cast<unsigned long long>(gets),
              static_cast<unsigned long long>(events), static_cast<unsigned long long>(restarts), secs);
  return failed == 0 ? 0 : 1;
}
