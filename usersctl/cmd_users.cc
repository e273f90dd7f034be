// usersctl users: list, get, export, import, resync.
#include <errno.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "admin/limits.h"
#include "usersctl/args.h"
#include "usersctl/commands.h"
#include "usersctl/output.h"
#include "usersctl/progress.h"

namespace usersd::usersctl {

namespace {

// An import batch is one request line: at most half the admin socket's line
// limit, leaving room for the request's envelope and JSON escapes.
constexpr size_t kImportBatchUsers = 1000;
static_assert(kImportBatchUsers <= admin::kMaxImportUsers);
constexpr size_t kImportBatchBytes = admin::kMaxLineBytes / 2;
constexpr int kExportPage = static_cast<int>(admin::kMaxUsersLimit);
constexpr int kResyncPollMs = 1000;

int UsersList(Client& c, const Options& o, const Words& args, const std::string& topic) {
  Args a = ParseArgs(args, topic, {"--after", "--limit"}, {}, 0);
  Json p = Json::object();
  if (a.values.count("--after")) p["after"] = a.values["--after"];
  if (a.values.count("--limit")) p["limit"] = ParseInt(a.values["--limit"], "--limit", topic, 1, admin::kMaxUsersLimit);
  c.Connect();
  Json r = c.Call("admin.users.list", p);
  if (o.json) return PrintJson(r), kExitOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& u : r["users"]) {
    rows.push_back({u.value("id", ""), Truncate(Str(u["email"]), 40), Truncate(UserName(u), 30), Str(u["workosId"]),
                    Str(u["organizationId"]), Str(u["role"]), u["deletedAt"].is_null() ? "live" : "deleted"});
  }
  if (rows.empty()) std::printf("no users\n");
  else PrintTable({"ID", "EMAIL", "NAME", "WORKOS ID", "ORGANIZATION", "ROLE", "STATE"}, rows);
  if (!r["next"].is_null()) std::printf("more: usersctl users list --after %s\n", r["next"].get<std::string>().c_str());
  return kExitOk;
}

int UsersGet(Client& c, const Options& o, const Words& args, const std::string& topic) {
  Args a = ParseArgs(args, topic, {"--workos-id", "--email"}, {}, 1);
  Json p = Json::object();
  int given = static_cast<int>(a.positional.size()) + static_cast<int>(a.values.size());
  if (given != 1) UsageError("users get: give exactly one of ID, --workos-id X or --email E", topic);
  if (!a.positional.empty()) p["id"] = a.positional[0];
  if (a.values.count("--workos-id")) p["workosId"] = a.values["--workos-id"];
  if (a.values.count("--email")) p["email"] = a.values["--email"];
  c.Connect();
  Json u = c.Call("admin.users.get", p);
  if (o.json) return PrintJson(u), kExitOk;
  PrintUser(u);
  return kExitOk;
}

int UsersExport(Client& c, const Options& o, const Words& args, const std::string& topic) {
  Args a = ParseArgs(args, topic, {}, {}, 1);
  FILE* out = stdout;
  std::string file = a.positional.empty() || a.positional[0] == "-" ? "" : a.positional[0];
  // A file is written under a temporary name and renamed when complete,
  // so a failed export never leaves a truncated FILE behind.
  std::string tmp = file.empty() ? "" : file + ".tmp." + std::to_string(getpid());
  if (!file.empty()) {
    out = std::fopen(tmp.c_str(), "w");
    if (!out) Die(kExitRemote, "cannot write " + tmp + ": " + std::strerror(errno));
    SetUnlinkOnFailure(tmp);
  }
  auto fail = [&](const std::string& m) {
    if (out != stdout) std::fclose(out);
    Die(kExitRemote, m);  // removes the temporary file
  };
  c.Connect();
  // No progress when the users themselves go to the terminal.
  Progress progress(StderrIsTerminal() && !o.json && !(out == stdout && isatty(STDOUT_FILENO)), "export",
                    Unit::kCount, "users");
  if (progress.enabled()) {
    // admin.status counts live and deleted users, as the export does: the
    // total is exact unless users are added meanwhile.
    Json s = c.Call("admin.status", Json::object());
    if (s.contains("users") && s["users"].is_number_unsigned()) progress.set_total(s["users"].get<uint64_t>());
    progress.Update(0);
  }
  size_t count = 0;
  Json after = nullptr;
  for (;;) {
    Json p{{"limit", kExportPage}};
    if (!after.is_null()) p["after"] = after;
    Json r = c.Call("admin.users.list", p);
    for (const auto& u : r["users"]) {
      std::string line = u.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
      if (std::fwrite(line.data(), 1, line.size(), out) != line.size())
        fail("cannot write the export: " + std::string(std::strerror(errno)));
      count++;
    }
    progress.Update(count);
    after = r["next"];
    if (after.is_null()) break;
  }
  if (std::fflush(out) != 0) fail("cannot write the export: " + std::string(std::strerror(errno)));
  progress.Finish(count);
  if (out != stdout) {
    if (std::fclose(out) != 0) Die(kExitRemote, "cannot write " + tmp + ": " + std::strerror(errno));
    if (std::rename(tmp.c_str(), file.c_str()) != 0)
      Die(kExitRemote, "cannot rename " + tmp + " to " + file + ": " + std::strerror(errno));
    SetUnlinkOnFailure("");
    if (o.json) PrintJson(Json{{"count", count}, {"file", file}});
    else std::printf("exported %zu user(s) to %s\n", count, file.c_str());
  }
  return kExitOk;
}

// One user of an import file: its line number, the user as compact JSON
// (re-serialised, so the daemon sees exactly what usersctl parsed), and the
// length of its input line (which decides the batches).
struct ImportEntry {
  size_t line;
  std::string json;
  size_t bytes;
};

// "users[3].email: ..." names an entry of the batch that starts at `first`:
// turns it into "FILE:LINE: email: ...".
std::string NameImportLine(std::string m, const std::vector<ImportEntry>& entries, size_t first, size_t end,
                           const std::string& name) {
  size_t at = m.find("users[");
  if (at == std::string::npos) return m;
  size_t close = m.find(']', at);
  std::string digits = close == std::string::npos ? "" : m.substr(at + 6, close - at - 6);
  if (digits.empty() || digits.size() >= 10 || digits.find_first_not_of("0123456789") != std::string::npos) return m;
  size_t k = std::stoul(digits);
  std::string rest = m.substr(close + 1);
  if (!rest.empty() && rest[0] == '.') rest = ": " + rest.substr(1);
  if (first + k < end) m = m.substr(0, at) + name + ":" + std::to_string(entries[first + k].line) + rest;
  return m;
}

int UsersImport(Client& c, const Options& o, const Words& args, const std::string& topic) {
  Args a = ParseArgs(args, topic, {}, {}, 1);
  std::string file = a.positional.empty() || a.positional[0] == "-" ? "" : a.positional[0];
  std::ifstream fin;
  std::istream* in = &std::cin;
  if (!file.empty()) {
    fin.open(file);
    if (!fin) Die(kExitRemote, "cannot read " + file + ": " + std::strerror(errno));
    in = &fin;
  }
  std::string name = file.empty() ? "stdin" : file;
  bool show = StderrIsTerminal() && !o.json;

  // Read and parse everything first: a malformed line fails the import
  // before anything is written. The size of a regular input file is the
  // reading's total. Nothing is shown while someone types into stdin.
  Progress reading(show && !(file.empty() && isatty(STDIN_FILENO)), "reading " + name, Unit::kBytes);
  if (reading.enabled()) {
    struct stat st {};
    int rc = file.empty() ? fstat(STDIN_FILENO, &st) : ::stat(file.c_str(), &st);
    if (rc == 0 && S_ISREG(st.st_mode)) reading.set_total(static_cast<uint64_t>(st.st_size));
    reading.Update(0);
  }
  std::vector<ImportEntry> entries;
  std::string line;
  size_t lineno = 0;
  uint64_t bytes_read = 0;
  while (std::getline(*in, line)) {
    lineno++;
    bytes_read += line.size() + 1;
    if ((lineno & 1023) == 0) reading.Update(bytes_read);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    Json j;
    try {
      j = Json::parse(line);
    } catch (const std::exception& e) {
      Die(kExitRemote, name + ":" + std::to_string(lineno) + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) Die(kExitRemote, name + ":" + std::to_string(lineno) + ": not a JSON object");
    entries.push_back({lineno, j.dump(-1, ' ', false, Json::error_handler_t::replace), line.size()});
  }
  reading.Finish(bytes_read);

  c.Connect();
  Progress importing(show, "import", Unit::kCount, "users");
  importing.set_total(entries.size());
  importing.Update(0);
  size_t done = 0;
  Json last_txid = nullptr;
  size_t i = 0;
  while (i < entries.size()) {
    size_t j = i, bytes = 0;
    std::string users = "[";
    while (j < entries.size() && j - i < kImportBatchUsers &&
           (j == i || bytes + entries[j].bytes < kImportBatchBytes)) {
      bytes += entries[j].bytes;
      if (j > i) users += ',';
      users += entries[j].json;
      j++;
    }
    users += ']';
    std::string error;
    std::optional<Json> r =
        c.TryCallRaw("admin.users.import", "{\"users\":" + users + "}", &error, kDefaultTimeoutSec);
    if (!r) {
      std::string m = NameImportLine(error, entries, i, j, name);
      std::fflush(stdout);
      EndProgressLine();
      std::fprintf(stderr, "usersctl: import failed: %s\n", m.c_str());
      std::fprintf(stderr, "usersctl: %zu user(s) imported before the failing batch (lines %zu-%zu)\n", done,
                   entries[i].line, entries[j - 1].line);
      return kExitRemote;
    }
    done += r->value("count", size_t(0));
    last_txid = (*r)["transactionId"];
    importing.Update(done);
    i = j;
  }
  importing.Finish(done);
  if (o.json) PrintJson(Json{{"count", done}, {"transactionId", last_txid}});
  else std::printf("imported %zu user(s)%s\n", done,
                   last_txid.is_null() ? "" : (" (last transactionId " + Str(last_txid) + ")").c_str());
  return kExitOk;
}

// A daemon older than admin.users.resync answers `unknown method "..."`.
[[noreturn]] void ResyncFailed(const std::string& error) {
  if (error.find("unknown method") != std::string::npos)
    Die(kExitRemote, "this usersd does not support users resync (" + error + "); it needs a newer usersd");
  Die(kExitRemote, error);
}

int UsersResync(Client& c, const Options& o, const Words& args, const std::string& topic) {
  Args a = ParseArgs(args, topic, {"--workos-id"}, {"--all", "--wait"}, 1);
  bool all = a.flags.count("--all") > 0;
  bool wait = a.flags.count("--wait") > 0;
  int given = static_cast<int>(a.positional.size() + a.values.size()) + (all ? 1 : 0);
  if (given != 1) UsageError("users resync: give exactly one of ID, --workos-id X or --all", topic);
  if (wait && !all)
    UsageError("users resync: --wait goes with --all (one user is resynced before the answer comes)", topic);
  Json p = Json::object();
  if (!a.positional.empty()) p["id"] = a.positional[0];
  if (a.values.count("--workos-id")) p["workosId"] = a.values["--workos-id"];
  if (all) p["all"] = true;
  c.Connect();
  std::string error;
  std::optional<Json> r = c.TryCall("admin.users.resync", p, &error);
  if (!r) ResyncFailed(error);

  if (!all) {
    if (o.json) return PrintJson(*r), kExitOk;
    std::printf("%-16s %s\n", "outcome", Str((*r)["outcome"]).c_str());
    if (r->contains("user") && (*r)["user"].is_object()) PrintUser((*r)["user"]);
    return kExitOk;
  }
  if (!wait) {
    if (o.json) return PrintJson(*r), kExitOk;
    std::printf("reconcile started (run %s); follow it with usersctl status\n", Str((*r)["runId"]).c_str());
    return kExitOk;
  }

  // --all --wait: the daemon reports the run in admin.status (reconcile).
  // It is in state "running" from the moment it answers {started: true}, so
  // the first "idle" seen is this run's end.
  InstallInterruptHandler();
  Progress progress(StderrIsTerminal() && !o.json, "resync", Unit::kCount);
  Json rec;
  for (;;) {
    Json s = c.Call("admin.status", Json::object());
    rec = s.contains("reconcile") ? s["reconcile"] : Json();
    if (!rec.is_object()) Die(kExitRemote, "usersd's admin.status has no reconcile state; cannot wait for the resync");
    if (rec.value("state", "") == "idle") break;
    progress.Text("resync: " + ReconcileSummary(rec) + ", " + Duration(static_cast<int64_t>(progress.Elapsed())) +
                      " elapsed",
                  true);
    // Sleep until the next poll; Ctrl-C (EINTR, then the flag) stops waiting.
    int64_t until = NowMs() + kResyncPollMs;
    while (!g_interrupted && NowMs() < until) poll(nullptr, 0, static_cast<int>(until - NowMs()));
    if (g_interrupted)
      Die(kExitRemote, "interrupted; the reconcile goes on in usersd (run " + Str((*r)["runId"]) +
                           ", see usersctl status)");
  }
  EndProgressLine();
  bool failed = rec.contains("lastError") && !rec["lastError"].is_null();
  if (o.json) {
    Json out = *r;
    out["reconcile"] = rec;
    PrintJson(out);
  } else {
    std::printf("reconcile %s: %s\n", failed ? "failed" : "done", ReconcileSummary(rec).c_str());
  }
  if (failed && !o.json) Die(kExitRemote, "reconcile ended with an error: " + Str(rec["lastError"]));
  return failed ? kExitRemote : kExitOk;
}

}  // namespace

int CmdUsers(Client& c, const Options& o, const Words& rest) {
  if (rest.empty()) UsageError("users: missing subcommand (list, get, export, import, resync)", "users");
  std::string sub = rest[0];
  Words args(rest.begin() + 1, rest.end());
  std::string topic = "users " + sub;
  if (sub == "list") return UsersList(c, o, args, topic);
  if (sub == "get") return UsersGet(c, o, args, topic);
  if (sub == "export") return UsersExport(c, o, args, topic);
  if (sub == "import") return UsersImport(c, o, args, topic);
  if (sub == "resync") return UsersResync(c, o, args, topic);
  UsageError("users: unknown subcommand '" + sub + "'", "users");
}

}  // namespace usersd::usersctl
