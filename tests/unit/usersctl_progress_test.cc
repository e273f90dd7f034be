// Tests of usersctl's progress and reconcile texts (usersctl/progress.h,
// usersctl/output.h): what an operator reads on the terminal during users
// import/export, backup and users resync --all --wait.
#include "usersctl/progress.h"

#include <catch2/catch.hpp>

#include "usersctl/output.h"

using usersd::usersctl::FormatProgress;
using usersd::usersctl::Json;
using usersd::usersctl::ReconcileStatus;
using usersd::usersctl::ReconcileSummary;
using usersd::usersctl::Unit;

TEST_CASE("progress: a count with a total shows the share, the average rate and the time left", "[usersctl]") {
  CHECK(FormatProgress("import", 250000, 1000000, 10.0, Unit::kCount, "users", false) ==
        "import: 250000 of 1000000 users (25%), 25000/s, 10s elapsed, ETA 30s");
  CHECK(FormatProgress("import", 1000000, 1000000, 40.0, Unit::kCount, "users", true) ==
        "import: 1000000 of 1000000 users (100%), 25000/s, done in 40s");
}

TEST_CASE("progress: no rate nor ETA in the first 0.2 s or before anything is done, nor an ETA without a total",
          "[usersctl]") {
  CHECK(FormatProgress("import", 0, 2500, 5.0, Unit::kCount, "users", false) == "import: 0 of 2500 users (0%), 5s elapsed");
  CHECK(FormatProgress("import", 0, 2500, 0.0, Unit::kCount, "users", false) == "import: 0 of 2500 users (0%), 0s elapsed");
  CHECK(FormatProgress("export", 1000, 2500, 0.1, Unit::kCount, "users", false) ==
        "export: 1000 of 2500 users (40%), 0s elapsed");
  CHECK(FormatProgress("export", 3000, std::nullopt, 2.0, Unit::kCount, "users", false) ==
        "export: 3000 users, 1500/s, 2s elapsed");
  CHECK(FormatProgress("export", 2500, 2500, 0.12, Unit::kCount, "users", true) ==
        "export: 2500 of 2500 users (100%), done in 0.1s");
}

TEST_CASE("progress: more than the total (users added during an export) stays at 100% without an ETA",
          "[usersctl]") {
  CHECK(FormatProgress("export", 2600, 2500, 2.0, Unit::kCount, "users", false) ==
        "export: 2600 of 2500 users (100%), 1300/s, 2s elapsed");
}

TEST_CASE("progress: bytes use binary units, for the total and the rate", "[usersctl]") {
  CHECK(FormatProgress("backup", 0, std::nullopt, 0.0, Unit::kBytes, "", false) == "backup: 0 B, 0s elapsed");
  CHECK(FormatProgress("backup", 3u << 30, std::nullopt, 12.0, Unit::kBytes, "", true) ==
        "backup: 3.0 GiB, 256.0 MiB/s, done in 12s");
  CHECK(FormatProgress("reading u.jsonl", 100u << 20, 400u << 20, 2.0, Unit::kBytes, "", false) ==
        "reading u.jsonl: 100.0 MiB of 400.0 MiB (25%), 50.0 MiB/s, 2s elapsed, ETA 6s");
  CHECK(FormatProgress("import", 5, 100, 130.0, Unit::kCount, "users", false) ==
        "import: 5 of 100 users (5%), 0.0/s, 2m 10s elapsed, ETA 41m 10s");
}

TEST_CASE("reconcile: the counters, the error, and the status line per state", "[usersctl]") {
  Json running{{"state", "running"},    {"reason", "admin"}, {"startedAt", "2026-12-03T10:00:00.000Z"},
               {"usersSeen", 1200},      {"usersApplied", 1100}, {"usersDeleted", 3},
               {"pages", 12},            {"lastError", nullptr}, {"finishedAt", nullptr}};
  CHECK(ReconcileSummary(running) == "1200 users seen, 1100 applied, 3 deleted, 12 pages");
  CHECK(ReconcileStatus(running) ==
        "running (admin) since 2026-12-03T10:00:00.000Z: 1200 users seen, 1100 applied, 3 deleted, 12 pages");
  Json failed = running;
  failed["state"] = "idle";
  failed["lastError"] = "WorkOS answered 500";
  failed["finishedAt"] = "2026-12-03T10:01:00.000Z";
  CHECK(ReconcileStatus(failed) ==
        "idle, last run finished 2026-12-03T10:01:00.000Z: 1200 users seen, 1100 applied, 3 deleted, 12 pages; "
        "last error: WorkOS answered 500");
  CHECK(ReconcileStatus(Json{{"state", "idle"}, {"finishedAt", nullptr}}) == "idle");
  // A failed run that waits before the poller's next trigger may start one.
  CHECK(ReconcileStatus(Json{{"state", "idle"},
                             {"finishedAt", nullptr},
                             {"lastError", "listing users failed: HTTP 403"},
                             {"nextAutomaticStartAt", "2026-12-03T10:02:00.000Z"}}) ==
        "idle, last run failed: listing users failed: HTTP 403; next automatic run not before "
        "2026-12-03T10:02:00.000Z");
  failed["nextAutomaticStartAt"] = "2026-12-03T10:03:00.000Z";
  CHECK(ReconcileStatus(failed) ==
        "idle, last run finished 2026-12-03T10:01:00.000Z: 1200 users seen, 1100 applied, 3 deleted, 12 pages; "
        "last error: WorkOS answered 500; next automatic run not before 2026-12-03T10:03:00.000Z");
  CHECK(ReconcileSummary(Json::object()) == "- users seen, - applied, - deleted, - pages");
  running["usersNotListed"] = 0;
  CHECK(ReconcileSummary(running) == "1200 users seen, 1100 applied, 3 deleted, 12 pages");
  running["usersNotListed"] = 7;
  CHECK(ReconcileSummary(running) == "1200 users seen, 1100 applied, 3 deleted, 12 pages, 7 not listed but kept");
}
