// usersctl backup, reload, jwks refresh, watch.
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>

#include "usersctl/args.h"
#include "usersctl/commands.h"
#include "usersctl/output.h"
#include "usersctl/progress.h"

namespace usersd::usersctl {

int CmdJwks(Client& c, const Options& o, const Words& rest) {
  if (rest.empty() || rest[0] != "refresh") UsageError("jwks: the only subcommand is 'refresh'", "jwks");
  ParseArgs({rest.begin() + 1, rest.end()}, "jwks refresh", {}, {}, 0);
  c.Connect();
  Json r = c.Call("admin.jwks.refresh", Json::object());
  if (o.json) return PrintJson(r), kExitOk;
  std::printf("JWKS refreshed: %s key(s)\n", Str(r["keys"]).c_str());
  return kExitOk;
}

int CmdBackup(Client& c, const Options& o, const Words& rest) {
  Args a = ParseArgs(rest, "backup", {}, {}, 1);
  if (a.positional.empty()) UsageError("backup: missing PATH", "backup");
  std::string path = a.positional[0];
  if (path.empty()) UsageError("backup: PATH is empty", "backup");
  if (path[0] != '/') {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) Die(kExitRemote, std::string("getcwd: ") + std::strerror(errno));
    path = std::string(cwd) + "/" + path;
  }
  c.Connect();
  // admin.backup is one call that answers when the copy is complete; what
  // there is to show meanwhile is the copy growing (when usersctl sees the
  // daemon's filesystem: not under a PrivateTmp= path, say) and the time.
  Progress progress(StderrIsTerminal() && !o.json, "backup", Unit::kBytes);
  std::string file = path + "/data.mdb";
  auto copied = [&]() -> uint64_t {
    struct stat st {};
    return ::stat(file.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  };
  std::function<void()> tick = nullptr;
  if (progress.enabled()) {
    progress.Update(0);
    tick = [&] { progress.Update(copied()); };
  }
  // A big store takes a while to copy: no default timeout.
  Json r = c.Call("admin.backup", Json{{"path", path}}, 0, tick);
  progress.Finish(r.value("bytes", uint64_t(0)));
  if (o.json) return PrintJson(r), kExitOk;
  std::printf("backup written to %s (%s, transactionId %s)\n", Str(r["path"]).c_str(),
              Bytes(r.value("bytes", 0.0)).c_str(), Str(r["transactionId"]).c_str());
  return kExitOk;
}

int CmdReload(Client& c, const Options& o, const Words& rest) {
  ParseArgs(rest, "reload", {}, {}, 0);
  c.Connect();
  Json r = c.Call("admin.config.reload", Json::object());
  if (o.json) return PrintJson(r), kExitOk;
  auto join = [](const Json& a) {
    std::string s;
    for (const auto& k : a) s += (s.empty() ? "" : ", ") + Str(k);
    return s;
  };
  if (r["reloaded"].empty() && r["needsRestart"].empty()) {
    std::printf("configuration reloaded; nothing changed\n");
    return kExitOk;
  }
  if (!r["reloaded"].empty()) std::printf("reloaded: %s\n", join(r["reloaded"]).c_str());
  if (!r["needsRestart"].empty())
    std::printf("needs restart (running values kept): %s\n", join(r["needsRestart"]).c_str());
  return kExitOk;
}

int CmdWatch(Client& c, const Options& o, const Words& rest) {
  Args a = ParseArgs(rest, "watch", {"--since"}, {}, 0);
  c.Connect();
  InstallInterruptHandler();
  uint64_t since = 0;
  if (a.values.count("--since")) {
    since = static_cast<uint64_t>(ParseInt(a.values["--since"], "--since", "watch", 0, INT64_MAX));
  } else {
    Json s = c.Call("admin.status", Json::object());
    since = s.value("lastTransactionId", uint64_t(0));
  }
  std::string id = c.SendRequest("admin.changes", Json{{"sinceTransactionId", since}});
  int64_t deadline = -1;  // a feed may be quiet for hours
  bool interrupted = false;
  for (;;) {
    Json f;
    auto rr = c.Next(&f, deadline, !interrupted);
    if (rr == Client::Read::kInterrupted) {
      interrupted = true;
      c.Send(Json{{"_tag", "Interrupt"}, {"requestId", id}});
      deadline = NowMs() + 2000;  // wait briefly for the stream's end
      continue;
    }
    if (rr == Client::Read::kTimeout) return kExitOk;
    if (rr == Client::Read::kEof) {
      if (interrupted) return kExitOk;
      Die(kExitRemote, "usersd closed the connection (stopped?)");
    }
    if (f.contains("jsonrpc") && f.contains("error") && f["id"].is_null()) c.ProtocolError(f);
    std::string tag = f.value("_tag", "");
    if (f.value("requestId", "") != id) continue;
    if (tag == "Exit") {
      const Json& exit = f["exit"];
      if (exit.value("_tag", "") == "Success" || interrupted) return kExitOk;
      Die(kExitRemote, CauseMessage(exit["cause"]));
    }
    if (tag != "Chunk") continue;
    for (const auto& ch : f["values"]) {
      int rc;
      if (o.json) {
        rc = std::printf("%s\n", ch.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
      } else {
        const Json& u = ch["user"];
        rc = std::printf("%-8s %-6s %s  %s  %s%s\n", Str(ch["transactionId"]).c_str(), Str(ch["op"]).c_str(),
                         Str(u["id"]).c_str(), Str(u["email"]).c_str(), UserName(u).c_str(),
                         u["deletedAt"].is_null() ? "" : "  (deleted)");
      }
      if (rc < 0) return kExitOk;  // stdout closed (| head): done
    }
    if (std::fflush(stdout) != 0) return kExitOk;
    // The Ack is the flow control: the next chunk comes only after it.
    c.Send(Json{{"_tag", "Ack"}, {"requestId", id}});
  }
}

}  // namespace usersd::usersctl
