// usersctl: the command-line client of usersd's admin socket (SPEC section 5).
//
// A plain blocking client: one Unix stream socket, the NDJSON form of the
// @effect/rpc protocol (one request, then its Exit; Chunk frames and Acks
// for `watch`), nlohmann-json for the frames. Human-readable output by
// default, the raw result JSON with --json.
//
// Exit codes: 0 ok, 1 the operation failed (remote error, bad input data,
// `health` not ok), 2 usage error, 3 cannot reach the daemon (not running,
// permission denied by the socket's mode or by SO_PEERCRED).
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifndef USERSD_VERSION
#define USERSD_VERSION "unknown"
#endif

namespace {

using Json = nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitRemote = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnect = 3;

constexpr const char* kDefaultSocket = "/run/usersd/admin.sock";
constexpr double kDefaultTimeoutSec = 60;
constexpr size_t kImportBatchUsers = 1000;
constexpr size_t kImportBatchBytes = 512 * 1024;  // well under socket.max_line_bytes (1 MiB)
constexpr int kExportPage = 1000;

volatile sig_atomic_t g_interrupted = 0;

// ------------------------------------------------------------------ help

struct HelpTopic {
  const char* name;
  const char* text;
};

const char* kMainHelp =
    "usage: usersctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS]\n"
    "\n"
    "Operate a running usersd through its admin socket.\n"
    "\n"
    "commands:\n"
    "  status                               daemon, store, outbox, upstream and JWKS status\n"
    "  health                               health checks (exit 1 when not ok)\n"
    "  metrics                              Prometheus metrics (text exposition)\n"
    "  users list [--after ID] [--limit N]  list users in id order\n"
    "  users get (ID | --workos-id X | --email E)\n"
    "                                       show one user\n"
    "  users export [FILE]                  write every user as JSON lines\n"
    "  users import [FILE]                  upsert users from JSON lines (by workosId)\n"
    "  outbox [--limit N]                   jobs waiting for WorkOS\n"
    "  dead-letters list [--limit N]        jobs WorkOS refused\n"
    "  dead-letters retry (ID | --all)      queue dead letters again\n"
    "  dead-letters discard (ID | --all)    drop dead letters\n"
    "  jwks refresh                         fetch the signing keys now\n"
    "  backup PATH                          hot backup of the store into directory PATH\n"
    "  reload                               re-read the configuration file\n"
    "  watch [--since N]                    follow the change feed (Ctrl-C stops)\n"
    "\n"
    "options:\n"
    "  --socket PATH   admin socket (default $USERSD_ADMIN_SOCKET or /run/usersd/admin.sock)\n"
    "  --json          print the raw result JSON instead of tables\n"
    "  --timeout SEC   give up waiting for an answer after SEC seconds (default 60;\n"
    "                  backup and watch wait without limit unless this is given)\n"
    "  -h, --help      help; also after any command: usersctl users --help\n"
    "  --version       print the version\n"
    "\n"
    "exit status: 0 ok, 1 the operation failed, 2 usage error, 3 cannot reach usersd\n";

const HelpTopic kHelp[] = {
    {"status",
     "usage: usersctl status [--json]\n\n"
     "Shows version, uptime, user count, last transactionId, store size and map\n"
     "size, outbox depth and oldest job age, dead letters, upstream (WorkOS) state\n"
     "and since when, the events cursor and the JWKS key count and age.\n"},
    {"health",
     "usage: usersctl health [--json]\n\n"
     "Runs the daemon's health checks. store, writer and jwks decide the result;\n"
     "upstream, outbox and deadLetters are advisory. Exits 1 when not ok, so it\n"
     "can serve as a probe: usersctl health >/dev/null || alert.\n"},
    {"metrics",
     "usage: usersctl metrics [--json]\n\n"
     "Prints the Prometheus text exposition (with --json: {\"text\": ...}).\n"},
    {"users",
     "usage: usersctl users list [--after ID] [--limit N]\n"
     "       usersctl users get (ID | --workos-id X | --email E)\n"
     "       usersctl users export [FILE]\n"
     "       usersctl users import [FILE]\n\n"
     "list    users in id order, deleted ones included, --limit per page (default\n"
     "        100, at most 1000); the footer shows the --after for the next page\n"
     "get     one user by id, WorkOS id or email (email finds live users only)\n"
     "export  every user as JSON lines to FILE or stdout (paging through the list;\n"
     "        for a point-in-time copy use backup)\n"
     "import  JSON lines from FILE or stdin, upserted by workosId. Each batch of\n"
     "        up to 1000 users commits atomically; a bad entry fails its batch and\n"
     "        names the line. Import changes local state only (nothing is sent to\n"
     "        WorkOS).\n"},
    {"users list", "usage: usersctl users list [--after ID] [--limit N] [--json]\n\n"
                   "Users in id order (deleted ones included). --limit: 1..1000, default 100.\n"},
    {"users get", "usage: usersctl users get (ID | --workos-id X | --email E) [--json]\n\n"
                  "Shows one user. Exits 1 with \"user not found\" when there is none.\n"},
    {"users export", "usage: usersctl users export [FILE]\n\n"
                     "Writes every user as one JSON object per line to FILE (or stdout).\n"},
    {"users import", "usage: usersctl users import [FILE]\n\n"
                     "Reads JSON lines (the export format) from FILE or stdin and upserts each\n"
                     "user by workosId, in batches of up to 1000 that each commit atomically.\n"},
    {"outbox", "usage: usersctl outbox [--limit N] [--json]\n\n"
               "Jobs waiting for WorkOS, oldest first (default 100).\n"},
    {"dead-letters",
     "usage: usersctl dead-letters list [--limit N]\n"
     "       usersctl dead-letters retry (ID | --all)\n"
     "       usersctl dead-letters discard (ID | --all)\n\n"
     "Jobs WorkOS refused for good (a 4xx other than 408/429) or that expired\n"
     "(outbox.max_age_seconds). retry queues them again with fresh attempts,\n"
     "carrying the user's current values; discard drops them.\n"},
    {"dead-letters list", "usage: usersctl dead-letters list [--limit N] [--json]\n"},
    {"dead-letters retry", "usage: usersctl dead-letters retry (ID | --all)\n"},
    {"dead-letters discard", "usage: usersctl dead-letters discard (ID | --all)\n"},
    {"jwks", "usage: usersctl jwks refresh\n\nFetches the JWKS now and prints the number of keys.\n"},
    {"jwks refresh", "usage: usersctl jwks refresh\n\nFetches the JWKS now and prints the number of keys.\n"},
    {"backup",
     "usage: usersctl backup PATH\n\n"
     "Writes a consistent, compacted copy of the store (mdb_env_copy2) into the\n"
     "directory PATH while usersd keeps serving. PATH is created if missing and\n"
     "must not already hold a data.mdb; a relative PATH is made absolute from the\n"
     "current directory. The daemon writes the copy, so PATH must be writable by\n"
     "the daemon's user. To restore: stop usersd, replace the contents of\n"
     "store.path with PATH/data.mdb, start usersd.\n"},
    {"reload",
     "usage: usersctl reload [--json]\n\n"
     "Re-reads the configuration file (like SIGHUP) and prints which keys took\n"
     "effect and which need a restart.\n"},
    {"watch",
     "usage: usersctl watch [--since N] [--json]\n\n"
     "Follows the change feed: one line per change (transactionId, op, user).\n"
     "Without --since it starts at the current last transactionId (new changes\n"
     "only); --since N prints every retained change after transactionId N first.\n"
     "Ctrl-C stops it (exit 0).\n"},
};

const char* HelpFor(const std::string& topic) {
  for (const auto& h : kHelp)
    if (topic == h.name) return h.text;
  return nullptr;
}

// ------------------------------------------------------------- formatting

// Display width in code points (good enough for aligning names).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) n++;
  return n;
}

std::string Truncate(const std::string& s, size_t max) {
  std::string flat;
  for (char c : s) flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (Width(flat) <= max) return flat;
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < flat.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(flat[i]);
    if ((c & 0xC0) != 0x80) {
      if (n == max - 1) break;
      n++;
    }
    out += flat[i];
  }
  return out + "…";
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = Width(header[i]);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], Width(r[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(w[i] - Width(cells[i]) + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string Str(const Json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>().empty() ? "\"\"" : j.get<std::string>();
  return j.dump();
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, u++;
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

std::string Duration(int64_t secs) {
  if (secs < 0) secs = 0;
  int64_t d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60, s = secs % 60;
  char buf[64];
  if (d > 0) std::snprintf(buf, sizeof buf, "%lldd %lldh %lldm", (long long)d, (long long)h, (long long)m);
  else if (h > 0) std::snprintf(buf, sizeof buf, "%lldh %lldm %llds", (long long)h, (long long)m, (long long)s);
  else if (m > 0) std::snprintf(buf, sizeof buf, "%lldm %llds", (long long)m, (long long)s);
  else std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

std::string UserName(const Json& u) {
  std::string n = u.value("firstName", "");
  std::string l = u.value("lastName", "");
  if (!l.empty()) n += (n.empty() ? "" : " ") + l;
  return n.empty() ? "-" : n;
}

// ----------------------------------------------------------------- errors

// A partial output file to remove when usersctl fails (users export).
std::string g_unlink_on_failure;

[[noreturn]] void Die(int code, const std::string& message) {
  if (!g_unlink_on_failure.empty()) unlink(g_unlink_on_failure.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "usersctl: %s\n", message.c_str());
  std::exit(code);
}

[[noreturn]] void UsageError(const std::string& message, const std::string& topic) {
  std::fprintf(stderr, "usersctl: %s\n", message.c_str());
  const char* h = topic.empty() ? nullptr : HelpFor(topic);
  std::fprintf(stderr, "%s", h ? h : "run 'usersctl --help' for the commands\n");
  std::exit(kExitUsage);
}

// The message of an @effect/rpc Cause, for humans.
std::string CauseMessage(const Json& cause) {
  if (!cause.is_object()) return cause.dump();
  std::string tag = cause.value("_tag", "");
  if (tag == "Fail") {
    const Json& e = cause.contains("error") ? cause["error"] : Json();
    if (!e.is_object()) return e.dump();
    std::string etag = e.value("_tag", "");
    if (etag == "UserNotFoundError") return "user not found: " + e.value("userId", "");
    std::string m = e.value("message", etag.empty() ? e.dump() : etag);
    if (e.contains("detail") && e["detail"].is_string() && !e["detail"].get<std::string>().empty())
      m += ": " + e["detail"].get<std::string>();
    return m;
  }
  if (tag == "Die") {
    const Json& d = cause.contains("defect") ? cause["defect"] : Json();
    if (d.is_string()) return d.get<std::string>();
    if (d.is_object()) {
      std::string name = d.value("name", "");
      std::string m = d.value("message", d.dump());
      return name.empty() || name == "Error" ? m : name + ": " + m;
    }
    return d.dump();
  }
  if (tag == "Interrupt") return "interrupted";
  for (const char* k : {"left", "right"}) {
    if (cause.contains(k)) {
      std::string m = CauseMessage(cause[k]);
      if (!m.empty() && cause[k].value("_tag", "") != "Empty") return m;
    }
  }
  return cause.dump();
}

// ----------------------------------------------------------------- client

struct Options {
  std::string socket;
  bool json = false;
  std::optional<double> timeout;  // seconds; nullopt = the command's default
};

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string PermissionMessage(const std::string& path) {
  return "permission denied on " + path + " (run as root or a user in admin_socket.allowed_uids)";
}

// One connection to the admin socket. Blocking I/O with poll() for the
// timeouts and for Ctrl-C (SIGINT interrupts poll).
class Client {
 public:
  Client(std::string path, std::optional<double> timeout_sec) : path_(std::move(path)), timeout_(timeout_sec) {}
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }

  void Connect() {
    sockaddr_un addr{};
    if (path_.size() >= sizeof addr.sun_path) UsageError("socket path longer than 107 bytes: " + path_, "");
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) Die(kExitConnect, std::string("socket: ") + std::strerror(errno));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      if (err == ENOENT || err == ENOTDIR) Die(kExitConnect, "usersd is not running (no socket at " + path_ + ")");
      if (err == ECONNREFUSED) Die(kExitConnect, "usersd is not running (nothing listens on " + path_ + ")");
      if (err == EACCES || err == EPERM) Die(kExitConnect, PermissionMessage(path_));
      Die(kExitConnect, "cannot connect to " + path_ + ": " + std::strerror(err));
    }
  }

  // Sends one frame. A peer that closed (EPIPE) is not reported here: the
  // reason (e.g. a peer-credential refusal) is waiting to be read.
  void Send(const Json& frame) {
    std::string line = frame.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EPIPE || errno == ECONNRESET) return;
        Die(kExitRemote, std::string("cannot write to ") + path_ + ": " + std::strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
  }

  std::string SendRequest(const std::string& tag, const Json& payload) {
    std::string id = std::to_string(next_id_++);
    Send(Json{{"_tag", "Request"}, {"id", id}, {"tag", tag}, {"payload", payload}, {"headers", Json::array()}});
    return id;
  }

  enum class Read { kFrame, kTimeout, kEof, kInterrupted };

  // Reads the next frame. `deadline_ms` < 0 waits without limit; with
  // `interruptible`, a SIGINT returns kInterrupted.
  Read Next(Json* frame, int64_t deadline_ms, bool interruptible) {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (line.empty() || line == "\r") continue;
        try {
          *frame = Json::parse(line);
        } catch (const std::exception&) {
          Die(kExitRemote, "usersd sent a line that is not JSON: " + line.substr(0, 200));
        }
        return Read::kFrame;
      }
      if (interruptible && g_interrupted) return Read::kInterrupted;
      int wait = -1;
      if (deadline_ms >= 0) {
        int64_t left = deadline_ms - NowMs();
        if (left <= 0) return Read::kTimeout;
        wait = static_cast<int>(std::min<int64_t>(left, 1 << 30));
      }
      pollfd p{fd_, POLLIN, 0};
      int rc = poll(&p, 1, wait);
      if (rc < 0) {
        if (errno == EINTR) continue;
        Die(kExitRemote, std::string("poll: ") + std::strerror(errno));
      }
      if (rc == 0) continue;
      char tmp[65536];
      ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        if (errno == ECONNRESET) return Read::kEof;
        Die(kExitRemote, std::string("cannot read from ") + path_ + ": " + std::strerror(errno));
      }
      if (n == 0) return Read::kEof;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  int64_t Deadline(double default_sec) const {
    double t = timeout_ ? *timeout_ : default_sec;
    if (t <= 0) return -1;
    return NowMs() + static_cast<int64_t>(t * 1000);
  }

  // A protocol-level error frame (JSON-RPC form, id null): the daemon
  // refused the connection or the line. Exits.
  [[noreturn]] void ProtocolError(const Json& frame) {
    std::string m = frame.contains("error") && frame["error"].is_object() ? frame["error"].value("message", "")
                                                                          : frame.dump();
    if (m.rfind("permission denied", 0) == 0) Die(kExitConnect, PermissionMessage(path_) + ": " + m);
    Die(kExitRemote, "usersd refused the request: " + m);
  }

  // Calls `tag` and returns its success value; exits on failure.
  Json Call(const std::string& tag, const Json& payload, double default_timeout = kDefaultTimeoutSec) {
    std::string id = SendRequest(tag, payload);
    int64_t deadline = Deadline(default_timeout);
    for (;;) {
      Json f;
      switch (Next(&f, deadline, false)) {
        case Read::kTimeout:
          Die(kExitRemote, "no answer from usersd within the timeout (" + tag + "); see --timeout");
        case Read::kEof:
          Die(received_any_ ? kExitRemote : kExitConnect,
              received_any_ ? "usersd closed the connection" : "usersd closed the connection before answering");
        case Read::kInterrupted:
          Die(kExitRemote, "interrupted");
        case Read::kFrame:
          break;
      }
      received_any_ = true;
      if (f.contains("jsonrpc") && f.contains("error") && f["id"].is_null()) ProtocolError(f);
      std::string ftag = f.value("_tag", "");
      if (ftag != "Exit" || f.value("requestId", "") != id) continue;  // Pong, stray chunks
      const Json& exit = f["exit"];
      if (exit.value("_tag", "") == "Success") return exit.contains("value") ? exit["value"] : Json();
      Die(kExitRemote, CauseMessage(exit.contains("cause") ? exit["cause"] : Json()));
    }
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::optional<double> timeout_;
  int fd_ = -1;
  std::string buf_;
  int next_id_ = 1;
  bool received_any_ = false;
};

// ------------------------------------------------------- argument parsing

// The arguments of one subcommand: flags with values, boolean flags and
// positionals, checked against what the subcommand accepts.
struct Args {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> flags;
  std::vector<std::string> positional;
};

Args ParseArgs(const std::vector<std::string>& in, const std::string& topic, std::vector<std::string> value_flags,
               std::vector<std::string> bool_flags, size_t max_positional) {
  Args a;
  auto is = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  for (size_t i = 0; i < in.size(); ++i) {
    std::string s = in[i];
    if (s.size() > 2 && s.rfind("--", 0) == 0) {
      std::string name = s, value;
      bool has_value = false;
      if (auto eq = s.find('='); eq != std::string::npos) {
        name = s.substr(0, eq);
        value = s.substr(eq + 1);
        has_value = true;
      }
      if (is(value_flags, name)) {
        if (!has_value) {
          if (i + 1 >= in.size()) UsageError(name + " needs a value", topic);
          value = in[++i];
        }
        a.values[name] = value;
      } else if (is(bool_flags, name) && !has_value) {
        a.flags[name] = true;
      } else {
        UsageError("unknown option " + name + " for '" + topic + "'", topic);
      }
    } else if (s == "--") {
      for (++i; i < in.size(); ++i) a.positional.push_back(in[i]);
    } else {
      a.positional.push_back(s);
    }
  }
  if (a.positional.size() > max_positional)
    UsageError("unexpected argument '" + a.positional[max_positional] + "' for '" + topic + "'", topic);
  return a;
}

int64_t ParseInt(const std::string& s, const std::string& what, const std::string& topic, int64_t min, int64_t max) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < min || v > max)
    UsageError(what + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max), topic);
  return v;
}

void PrintJson(const Json& j) { std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str()); }

// ---------------------------------------------------------------- commands

int CmdStatus(Client& c, const Options& o) {
  Json s = c.Call("admin.status", Json::object());
  if (o.json) return PrintJson(s), kExitOk;
  auto line = [](const char* k, const std::string& v) { std::printf("%-18s %s\n", k, v.c_str()); };
  line("version", s.value("version", "?"));
  line("uptime", Duration(s.value("uptimeSeconds", int64_t(0))));
  line("users", Str(s["users"]));
  line("last transaction", Str(s["lastTransactionId"]));
  const Json& st = s["store"];
  std::string store = st.value("path", "?") + " (" + Bytes(st.value("sizeBytes", 0.0)) + " on disk, " +
                      Bytes(st.value("usedBytes", 0.0)) + " used of a " + Bytes(st.value("mapSizeBytes", 0.0)) +
                      " map";
  if (st.contains("maxMapSizeBytes")) store += ", max " + Bytes(st.value("maxMapSizeBytes", 0.0));
  line("store", store + ")");
  const Json& ob = s["outbox"];
  std::string outbox = Str(ob["depth"]) + " job(s)";
  if (!ob["oldestAgeSeconds"].is_null()) outbox += ", oldest " + Duration(ob["oldestAgeSeconds"].get<int64_t>());
  line("outbox", outbox);
  line("dead letters", Str(s["deadLetters"]));
  const Json& up = s["upstream"];
  std::string upstream = up.value("state", "?");
  if (!up["since"].is_null()) upstream += " since " + up["since"].get<std::string>();
  line("upstream", upstream);
  line("events cursor", Str(s["eventsCursor"]));
  const Json& jw = s["jwks"];
  std::string jwks = Str(jw["keys"]) + " key(s)";
  if (!jw["ageSeconds"].is_null()) jwks += ", fetched " + Duration(jw["ageSeconds"].get<int64_t>()) + " ago";
  line("jwks", jwks);
  return kExitOk;
}

int CmdHealth(Client& c, const Options& o) {
  Json h = c.Call("admin.health", Json::object());
  bool ok = h.value("ok", false);
  if (o.json) {
    PrintJson(h);
    return ok ? kExitOk : kExitRemote;
  }
  std::printf("health: %s\n", ok ? "ok" : "NOT OK");
  std::vector<std::vector<std::string>> rows;
  for (const char* name : {"store", "writer", "jwks", "upstream", "outbox", "deadLetters"}) {
    if (!h["checks"].contains(name)) continue;
    const Json& ch = h["checks"][name];
    std::string detail;
    if (ch.contains("detail")) {
      detail = ch["detail"].get<std::string>();
    } else {
      for (const auto& [k, v] : ch.items()) {
        if (k == "ok") continue;
        detail += (detail.empty() ? "" : ", ") + k + "=" + Str(v);
      }
    }
    bool advisory = std::string(name) != "store" && std::string(name) != "writer" && std::string(name) != "jwks";
    std::string state = ch.value("ok", false) ? "ok" : (advisory ? "warn" : "FAIL");
    rows.push_back({std::string("  ") + name, state, detail});
  }
  for (const auto& [k, ch] : h["checks"].items()) {
    bool known = false;
    for (const char* name : {"store", "writer", "jwks", "upstream", "outbox", "deadLetters"}) known |= k == name;
    if (!known) rows.push_back({"  " + k, ch.value("ok", false) ? "ok" : "FAIL", ch.dump()});
  }
  PrintTable({"  CHECK", "STATE", "DETAIL"}, rows);
  return ok ? kExitOk : kExitRemote;
}

int CmdMetrics(Client& c, const Options& o) {
  Json m = c.Call("admin.metrics", Json::object());
  if (o.json) return PrintJson(m), kExitOk;
  std::fputs(m.value("text", "").c_str(), stdout);
  return kExitOk;
}

void PrintUser(const Json& u) {
  const char* order[] = {"id", "workosId", "email", "firstName", "lastName", "organizationId", "role", "userType",
                         "isOnboarded", "avatarUrl", "timezone", "settings", "createdAt", "updatedAt", "deletedAt"};
  for (const char* k : order)
    if (u.contains(k)) std::printf("%-16s %s\n", k, Str(u[k]).c_str());
  for (const auto& [k, v] : u.items()) {
    bool known = false;
    for (const char* o : order) known |= k == o;
    if (!known) std::printf("%-16s %s\n", k.c_str(), Str(v).c_str());
  }
}

int CmdUsers(Client& c, const Options& o, const std::vector<std::string>& rest) {
  if (rest.empty()) UsageError("users: missing subcommand (list, get, export, import)", "users");
  std::string sub = rest[0];
  std::vector<std::string> args(rest.begin() + 1, rest.end());
  std::string topic = "users " + sub;
  if (sub == "list") {
    Args a = ParseArgs(args, topic, {"--after", "--limit"}, {}, 0);
    Json p = Json::object();
    if (a.values.count("--after")) p["after"] = a.values["--after"];
    if (a.values.count("--limit")) p["limit"] = ParseInt(a.values["--limit"], "--limit", topic, 1, 1000);
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
  if (sub == "get") {
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
  if (sub == "export") {
    Args a = ParseArgs(args, topic, {}, {}, 1);
    FILE* out = stdout;
    std::string file = a.positional.empty() || a.positional[0] == "-" ? "" : a.positional[0];
    // A file is written under a temporary name and renamed when complete,
    // so a failed export never leaves a truncated FILE behind.
    std::string tmp = file.empty() ? "" : file + ".tmp." + std::to_string(getpid());
    if (!file.empty()) {
      out = std::fopen(tmp.c_str(), "w");
      if (!out) Die(kExitRemote, "cannot write " + tmp + ": " + std::strerror(errno));
      g_unlink_on_failure = tmp;
    }
    auto fail = [&](const std::string& m) {
      if (out != stdout) std::fclose(out);
      Die(kExitRemote, m);  // removes the temporary file
    };
    c.Connect();
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
      after = r["next"];
      if (after.is_null()) break;
    }
    if (std::fflush(out) != 0) fail("cannot write the export: " + std::string(std::strerror(errno)));
    if (out != stdout) {
      if (std::fclose(out) != 0) Die(kExitRemote, "cannot write " + tmp + ": " + std::strerror(errno));
      if (std::rename(tmp.c_str(), file.c_str()) != 0)
        Die(kExitRemote, "cannot rename " + tmp + " to " + file + ": " + std::strerror(errno));
      g_unlink_on_failure.clear();
      if (o.json) PrintJson(Json{{"count", count}, {"file", file}});
      else std::printf("exported %zu user(s) to %s\n", count, file.c_str());
    }
    return kExitOk;
  }
  if (sub == "import") {
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
    // Read and parse everything first: a malformed line fails the import
    // before anything is written.
    struct Entry {
      size_t line;
      Json user;
      size_t bytes;
    };
    std::vector<Entry> entries;
    std::string line;
    size_t lineno = 0;
    while (std::getline(*in, line)) {
      lineno++;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      Json j;
      try {
        j = Json::parse(line);
      } catch (const std::exception& e) {
        Die(kExitRemote, name + ":" + std::to_string(lineno) + ": not valid JSON: " + e.what());
      }
      if (!j.is_object()) Die(kExitRemote, name + ":" + std::to_string(lineno) + ": not a JSON object");
      entries.push_back({lineno, std::move(j), line.size()});
    }
    c.Connect();
    size_t done = 0;
    Json last_txid = nullptr;
    size_t i = 0;
    while (i < entries.size()) {
      size_t j = i, bytes = 0;
      Json batch = Json::array();
      while (j < entries.size() && batch.size() < kImportBatchUsers &&
             (batch.empty() || bytes + entries[j].bytes < kImportBatchBytes)) {
        bytes += entries[j].bytes;
        batch.push_back(entries[j].user);
        j++;
      }
      std::string id = c.SendRequest("admin.users.import", Json{{"users", batch}});
      // Inline Call() so a failure can name the input line.
      int64_t deadline = c.Deadline(kDefaultTimeoutSec);
      for (;;) {
        Json f;
        auto rr = c.Next(&f, deadline, false);
        if (rr == Client::Read::kTimeout) Die(kExitRemote, "no answer from usersd within the timeout; see --timeout");
        if (rr != Client::Read::kFrame) Die(kExitRemote, "usersd closed the connection");
        if (f.contains("jsonrpc") && f.contains("error") && f["id"].is_null()) c.ProtocolError(f);
        if (f.value("_tag", "") != "Exit" || f.value("requestId", "") != id) continue;
        const Json& exit = f["exit"];
        if (exit.value("_tag", "") == "Success") {
          done += exit["value"].value("count", size_t(0));
          last_txid = exit["value"]["transactionId"];
          break;
        }
        std::string m = CauseMessage(exit["cause"]);
        // "users[3].email: ..." names the batch's entry: turn it into the line.
        if (size_t at = m.find("users["); at != std::string::npos) {
          size_t close = m.find(']', at);
          std::string digits = close == std::string::npos ? "" : m.substr(at + 6, close - at - 6);
          if (!digits.empty() && digits.size() < 10 &&
              digits.find_first_not_of("0123456789") == std::string::npos) {
            size_t k = std::stoul(digits);
            std::string rest = m.substr(close + 1);
            if (!rest.empty() && rest[0] == '.') rest = ": " + rest.substr(1);
            if (i + k < j) m = m.substr(0, at) + name + ":" + std::to_string(entries[i + k].line) + rest;
          }
        }
        std::fflush(stdout);
        std::fprintf(stderr, "usersctl: import failed: %s\n", m.c_str());
        std::fprintf(stderr, "usersctl: %zu user(s) imported before the failing batch (lines %zu-%zu)\n", done,
                     entries[i].line, entries[j - 1].line);
        return kExitRemote;
      }
      i = j;
    }
    if (o.json) PrintJson(Json{{"count", done}, {"transactionId", last_txid}});
    else std::printf("imported %zu user(s)%s\n", done,
                     last_txid.is_null() ? "" : (" (last transactionId " + Str(last_txid) + ")").c_str());
    return kExitOk;
  }
  UsageError("users: unknown subcommand '" + sub + "'", "users");
}

int CmdOutbox(Client& c, const Options& o, const std::vector<std::string>& rest) {
  Args a = ParseArgs(rest, "outbox", {"--limit"}, {}, 0);
  Json p = Json::object();
  if (a.values.count("--limit")) p["limit"] = ParseInt(a.values["--limit"], "--limit", "outbox", 1, 10000);
  c.Connect();
  Json r = c.Call("admin.outbox.list", p);
  if (o.json) return PrintJson(r), kExitOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : r["jobs"]) {
    rows.push_back({Str(j["id"]), Str(j["userId"]), Str(j["op"]), Str(j["attempts"]), Str(j["nextAttemptAt"]),
                    Truncate(Str(j["lastError"]), 60)});
  }
  if (rows.empty()) std::printf("the outbox is empty\n");
  else PrintTable({"ID", "USER", "OP", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"}, rows);
  return kExitOk;
}

int CmdDeadLetters(Client& c, const Options& o, const std::vector<std::string>& rest) {
  if (rest.empty()) UsageError("dead-letters: missing subcommand (list, retry, discard)", "dead-letters");
  std::string sub = rest[0];
  std::vector<std::string> args(rest.begin() + 1, rest.end());
  std::string topic = "dead-letters " + sub;
  if (sub == "list") {
    Args a = ParseArgs(args, topic, {"--limit"}, {}, 0);
    Json p = Json::object();
    if (a.values.count("--limit")) p["limit"] = ParseInt(a.values["--limit"], "--limit", topic, 1, 10000);
    c.Connect();
    Json r = c.Call("admin.deadLetters.list", p);
    if (o.json) return PrintJson(r), kExitOk;
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : r["deadLetters"]) {
      rows.push_back({Str(d["id"]), Str(d["userId"]), Str(d["op"]), Str(d["status"]), Str(d["failedAt"]),
                      Truncate(Str(d["body"]), 60)});
    }
    if (rows.empty()) std::printf("no dead letters\n");
    else PrintTable({"ID", "USER", "OP", "STATUS", "FAILED AT", "BODY"}, rows);
    return kExitOk;
  }
  if (sub == "retry" || sub == "discard") {
    Args a = ParseArgs(args, topic, {}, {"--all"}, 1);
    bool all = a.flags.count("--all") > 0;
    if (all == !a.positional.empty()) UsageError(topic + ": give a dead letter ID or --all", topic);
    Json p = all ? Json{{"all", true}}
                 : Json{{"id", ParseInt(a.positional[0], "ID", topic, 1, INT64_MAX)}};
    c.Connect();
    Json r = c.Call(sub == "retry" ? "admin.deadLetters.retry" : "admin.deadLetters.discard", p);
    if (o.json) return PrintJson(r), kExitOk;
    std::printf("%s %s dead letter(s)\n", sub == "retry" ? "re-queued" : "discarded", Str(r["count"]).c_str());
    return kExitOk;
  }
  UsageError("dead-letters: unknown subcommand '" + sub + "'", "dead-letters");
}

int CmdJwks(Client& c, const Options& o, const std::vector<std::string>& rest) {
  if (rest.empty() || rest[0] != "refresh") UsageError("jwks: the only subcommand is 'refresh'", "jwks");
  ParseArgs({rest.begin() + 1, rest.end()}, "jwks refresh", {}, {}, 0);
  c.Connect();
  Json r = c.Call("admin.jwks.refresh", Json::object());
  if (o.json) return PrintJson(r), kExitOk;
  std::printf("JWKS refreshed: %s key(s)\n", Str(r["keys"]).c_str());
  return kExitOk;
}

int CmdBackup(Client& c, const Options& o, const std::vector<std::string>& rest) {
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
  // A big store takes a while to copy: no default timeout.
  Json r = c.Call("admin.backup", Json{{"path", path}}, 0);
  if (o.json) return PrintJson(r), kExitOk;
  std::printf("backup written to %s (%s, transactionId %s)\n", Str(r["path"]).c_str(),
              Bytes(r.value("bytes", 0.0)).c_str(), Str(r["transactionId"]).c_str());
  return kExitOk;
}

int CmdReload(Client& c, const Options& o, const std::vector<std::string>& rest) {
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

void OnSigint(int) { g_interrupted = 1; }

int CmdWatch(Client& c, const Options& o, const std::vector<std::string>& rest) {
  Args a = ParseArgs(rest, "watch", {"--since"}, {}, 0);
  c.Connect();
  struct sigaction sa {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() must return on Ctrl-C
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
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

}  // namespace

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
  std::vector<std::string> rest(cmd.begin() + 1, cmd.end());
  auto simple = [&](const char* topic, int (*fn)(Client&, const Options&)) {
    ParseArgs(rest, topic, {}, {}, 0);
    c.Connect();
    return fn(c, o);
  };
  if (name == "status") return simple("status", CmdStatus);
  if (name == "health") return simple("health", CmdHealth);
  if (name == "metrics") return simple("metrics", CmdMetrics);
  if (name == "users") return CmdUsers(c, o, rest);
  if (name == "outbox") return CmdOutbox(c, o, rest);
  if (name == "dead-letters" || name == "deadletters") return CmdDeadLetters(c, o, rest);
  if (name == "jwks") return CmdJwks(c, o, rest);
  if (name == "backup") return CmdBackup(c, o, rest);
  if (name == "reload") return CmdReload(c, o, rest);
  if (name == "watch") return CmdWatch(c, o, rest);
  UsageError("unknown command '" + name + "'", "");
}
