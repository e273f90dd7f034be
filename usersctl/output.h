// usersctl's output: aligned tables, JSON, and the small formatters the
// commands share (sizes, durations, user names).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "usersctl/client.h"

namespace usersd::usersctl {

// Display width in code points (good enough for aligning names).
size_t Width(const std::string& s);
// `s` on one line, cut to at most `max` code points ("…" marks a cut).
std::string Truncate(const std::string& s, size_t max);
// Columns separated by two spaces, each as wide as its widest cell; stdout.
void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
// The result JSON, indented; stdout.
void PrintJson(const Json& j);
// One user, a field per line; stdout.
void PrintUser(const Json& u);

// A JSON value for a table cell: "-" for null, strings unquoted.
std::string Str(const Json& j);
// "512 B", "1.5 MiB".
std::string Bytes(double b);
// "42s", "3m 5s", "2h 0m 7s", "4d 1h 0m".
std::string Duration(int64_t secs);
// "First Last", or "-".
std::string UserName(const Json& u);

// The counters of admin.status's reconcile object (SPEC issue 12):
// "1200 users seen, 1100 applied, 3 deleted, 12 pages[; last error: ...]".
std::string ReconcileSummary(const Json& reconcile);
// The status line: "running (REASON) since STARTED: SUMMARY", "idle, last
// run finished FINISHED: SUMMARY", or "idle" when there was no run.
std::string ReconcileStatus(const Json& reconcile);

}  // namespace usersd::usersctl
