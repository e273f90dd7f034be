#include "daemon/sd_daemon.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace usersd::daemon::sd {

namespace {

// A whole decimal number, or false.
template <class T>
bool ParseNumber(const char* s, T* out) {
  if (s == nullptr || *s == '\0') return false;
  const char* end = s + std::strlen(s);
  auto [p, ec] = std::from_chars(s, end, *out);
  return ec == std::errc() && p == end;
}

// Whether $name holds this process's pid (what systemd sets so that a child
// that inherits the environment does not take what was meant for its parent).
bool IsOurPid(const char* name) {
  pid_t pid = 0;
  return ParseNumber(std::getenv(name), &pid) && pid == getpid();
}

}  // namespace

int Notify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return 0;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  const size_t len = std::strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) return -EAFNOSUPPORT;
  std::memcpy(sa.sun_path, path, len);
  socklen_t sa_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  if (path[0] == '@') {
    sa.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
  } else {
    sa_len += 1;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&sa), sa_len);
  int err = n < 0 ? errno : 0;
  close(fd);
  if (n < 0) return -err;
  return 1;
}

int WatchdogEnabled(uint64_t* usec) {
  const char* s = std::getenv("WATCHDOG_USEC");
  if (s == nullptr) return 0;
  uint64_t u = 0;
  if (!ParseNumber(s, &u) || u == 0) return -EINVAL;
  if (std::getenv("WATCHDOG_PID") != nullptr && !IsOurPid("WATCHDOG_PID")) return 0;
  if (usec) *usec = u;
  return 1;
}

std::vector<std::pair<int, std::string>> ListenFds() {
  std::vector<std::pair<int, std::string>> out;
  int n = 0;
  if (IsOurPid("LISTEN_PID") && ParseNumber(std::getenv("LISTEN_FDS"), &n) && n > 0 && n < 4096) {
    std::vector<std::string> names;
    if (const char* s = std::getenv("LISTEN_FDNAMES")) {
      std::string_view rest(s);
      for (;;) {
        size_t colon = rest.find(':');
        names.emplace_back(rest.substr(0, colon));
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
      }
    }
    // libsystemd refuses a name list of another length; so does this.
    if (names.empty() || names.size() == size_t(n)) {
      for (int i = 0; i < n; ++i) {
        const int fd = kListenFdsStart + i;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0) {
          out.clear();
          break;
        }
        if (!(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        out.emplace_back(fd, names.empty() ? std::string("unknown") : names[size_t(i)]);
      }
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return out;
}

}  // namespace usersd::daemon::sd
