#include "usersctl/client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "usersctl/help.h"
#include "usersctl/progress.h"

namespace usersd::usersctl {

volatile sig_atomic_t g_interrupted = 0;

namespace {

std::string g_unlink_on_failure;

void OnInterrupt(int) { g_interrupted = 1; }

std::string PermissionMessage(const std::string& path) {
  return "permission denied on " + path + " (run as root or a user in admin_socket.allowed_uids)";
}

}  // namespace

void InstallInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() must return on Ctrl-C
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void SetUnlinkOnFailure(std::string path) { g_unlink_on_failure = std::move(path); }

[[noreturn]] void Die(int code, const std::string& message) {
  if (!g_unlink_on_failure.empty()) unlink(g_unlink_on_failure.c_str());
  std::fflush(stdout);
  EndProgressLine();
  std::fprintf(stderr, "usersctl: %s\n", message.c_str());
  std::exit(code);
}

[[noreturn]] void UsageError(const std::string& message, const std::string& topic) {
  std::fprintf(stderr, "usersctl: %s\n", message.c_str());
  const char* h = topic.empty() ? nullptr : HelpFor(topic);
  std::fprintf(stderr, "%s", h ? h : "run 'usersctl --help' for the commands\n");
  std::exit(kExitUsage);
}

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

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Client::~Client() {
  if (fd_ >= 0) close(fd_);
}

void Client::Connect() {
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

void Client::Send(const Json& frame) { SendLine(frame.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"); }

void Client::SendLine(const std::string& line) {
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

std::string Client::SendRequest(const std::string& tag, const Json& payload) {
  std::string id = std::to_string(next_id_++);
  Send(Json{{"_tag", "Request"}, {"id", id}, {"tag", tag}, {"payload", payload}, {"headers", Json::array()}});
  return id;
}

std::string Client::SendRequestRaw(const std::string& tag, const std::string& payload_json) {
  std::string id = std::to_string(next_id_++);
  // The id and the tag go through nlohmann-json for their escaping.
  SendLine("{\"_tag\":\"Request\",\"id\":" + Json(id).dump() + ",\"tag\":" +
           Json(tag).dump(-1, ' ', false, Json::error_handler_t::replace) + ",\"payload\":" + payload_json +
           ",\"headers\":[]}\n");
  return id;
}

Client::Read Client::Next(Json* frame, int64_t deadline_ms, bool interruptible) {
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

int64_t Client::Deadline(double default_sec) const {
  double t = timeout_ ? *timeout_ : default_sec;
  if (t <= 0) return -1;
  return NowMs() + static_cast<int64_t>(t * 1000);
}

[[noreturn]] void Client::ProtocolError(const Json& frame) {
  std::string m =
      frame.contains("error") && frame["error"].is_object() ? frame["error"].value("message", "") : frame.dump();
  if (m.rfind("permission denied", 0) == 0) Die(kExitConnect, PermissionMessage(path_) + ": " + m);
  Die(kExitRemote, "usersd refused the request: " + m);
}

std::optional<Json> Client::TryCall(const std::string& tag, const Json& payload, std::string* error,
                                    double default_timeout, const std::function<void()>& tick, int tick_ms) {
  return Await(SendRequest(tag, payload), tag, error, default_timeout, tick, tick_ms);
}

std::optional<Json> Client::TryCallRaw(const std::string& tag, const std::string& payload_json, std::string* error,
                                       double default_timeout) {
  return Await(SendRequestRaw(tag, payload_json), tag, error, default_timeout, nullptr, 0);
}

std::optional<Json> Client::Await(const std::string& id, const std::string& tag, std::string* error,
                                  double default_timeout, const std::function<void()>& tick, int tick_ms) {
  int64_t deadline = Deadline(default_timeout);
  for (;;) {
    // With a tick, wake up every tick_ms to run it; the real deadline
    // still decides when to give up.
    int64_t wake = deadline;
    if (tick) {
      int64_t t = NowMs() + tick_ms;
      wake = deadline < 0 ? t : std::min(deadline, t);
    }
    Json f;
    switch (Next(&f, wake, false)) {
      case Read::kTimeout:
        if (tick && (deadline < 0 || NowMs() < deadline)) {
          tick();
          continue;
        }
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
    *error = CauseMessage(exit.contains("cause") ? exit["cause"] : Json());
    return std::nullopt;
  }
}

Json Client::Call(const std::string& tag, const Json& payload, double default_timeout,
                  const std::function<void()>& tick, int tick_ms) {
  std::string error;
  std::optional<Json> r = TryCall(tag, payload, &error, default_timeout, tick, tick_ms);
  if (!r) Die(kExitRemote, error);
  return *std::move(r);
}

}  // namespace usersd::usersctl
