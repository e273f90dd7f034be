// usersctl: the command-line client of usersd's admin socket (SPEC section 5).
//
// main parses the global options and hands the rest to one command
// (commands.h). The connection and the exit codes are in client.h, the
// output helpers in output.h, progress lines in progress.h.
//
// Exit codes: 0 ok, 1 the operation failed (remote error, bad input data,
// `health` not ok), 2 usage error, 3 cannot reach the daemon (not running,
// permission denied by the socket's mode or by SO_PEERCRED).
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "usersctl/client.h"
#include "usersctl/commands.h"
#include "usersctl/help.h"

#ifndef USERSD_VERSION
#define USERSD_VERSION "unknown"
#endif

using namespace usersd::usersctl;

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options o;
  if (const char* env = std::getenv("USERSD_ADMIN_SOCKET"); env && *env) o.socket = env;
  else o.socket = kDefaultSocket;

  // Global options may appear anywhere; everything else is the command.
  std::vector<std::string> cmd;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](const std::string& name) -> std::string {
      if (s.size() > name.size() && s[name.size()] == '=') return s.substr(name.size() + 1);
      if (i + 1 >= argc) UsageError(name + " needs a value", "");
      return argv[++i];
    };
    if (s == "--") {
      for (++i; i < argc; ++i) cmd.push_back(argv[i]);
      break;
    }
    if (s == "--socket" || s.rfind("--socket=", 0) == 0) {
      o.socket = value("--socket");
      if (o.socket.empty()) UsageError("--socket needs a path", "");
    } else if (s == "--json") {
      o.json = true;
    } else if (s == "--timeout" || s.rfind("--timeout=", 0) == 0) {
      std::string v = value("--timeout");
      char* end = nullptr;
      double t = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(t >= 0) || std::isinf(t)) UsageError("--timeout must be a number of seconds", "");
      o.timeout = t;
    } else if (s == "-h" || s == "--help") {
      help = true;
    } else if (s == "--version") {
      std::printf("usersctl %s\n", USERSD_VERSION);
      return kExitOk;
    } else {
      cmd.push_back(s);
    }
  }
  if (!cmd.empty() && cmd[0] == "help") {
    help = true;
    cmd.erase(cmd.begin());
  }
  if (help) {
    // The most specific topic the words name: "users list", then "users".
    std::string topic;
    for (size_t n = std::min<size_t>(cmd.size(), 2); n > 0; --n) {
      std::string t = cmd[0];
      for (size_t k = 1; k < n; ++k) t += " " + cmd[k];
      if (HelpFor(t)) {
        topic = t;
        break;
      }
    }
    if (!cmd.empty() && topic.empty()) UsageError("unknown command '" + cmd[0] + "'", "");
    std::printf("%s", topic.empty() ? kMainHelp : HelpFor(topic));
    return kExitOk;
  }
  if (cmd.empty()) {
    std::fprintf(stderr, "%s", kMainHelp);
    return kExitUsage;
  }

  Client c(o.socket, o.timeout);
  std::string name = cmd[0];
  Words rest(cmd.begin() + 1, cmd.end());
  if (name == "status") return CmdStatus(c, o, rest);
  if (name == "health") return CmdHealth(c, o, rest);
  if (name == "metrics") return CmdMetrics(c, o, rest);
  if (name == "users") return CmdUsers(c, o, rest);
  if (name == "outbox") return CmdOutbox(c, o, rest);
  if (name == "dead-letters" || name == "deadletters") return CmdDeadLetters(c, o, rest);
  if (name == "jwks") return CmdJwks(c, o, rest);
  if (name == "backup") return CmdBackup(c, o, rest);
  if (name == "reload") return CmdReload(c, o, rest);
  if (name == "watch") return CmdWatch(c, o, rest);
  UsageError("unknown command '" + name + "'", "");
}
