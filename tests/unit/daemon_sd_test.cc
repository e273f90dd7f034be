// Tests of daemon/sd_daemon.h: the sd-daemon protocol without libsystemd
// (readiness datagrams, the watchdog's variables, socket activation's
// descriptors and names), against what libsystemd's calls do.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "daemon/sd_daemon.h"
#include "tests/unit/temp_dir.h"

namespace usersd::daemon::sd {
namespace {

using usersd::testing::TempDir;

// A datagram socket bound at `path` (or in the abstract namespace for
// "@name"), as systemd's notify socket.
struct Listener {
  explicit Listener(const std::string& path) {
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (path[0] == '@') sa.sun_path[0] = '\0';
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sa), len) == 0);
  }
  ~Listener() { close(fd); }
  std::string Receive() {
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string() : std::string(buf, size_t(n));
  }
  int fd;
};

TEST_CASE("sd: Notify sends one datagram to $NOTIFY_SOCKET, path or abstract", "[daemon]") {
  TempDir dir;
  unsetenv("NOTIFY_SOCKET");
  CHECK(Notify("READY=1") == 0);  // not run by systemd

  const std::string path = dir / "notify";
  Listener l(path);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  CHECK(Notify("READY=1\nSTATUS=serving") == 1);
  CHECK(l.Receive() == "READY=1\nSTATUS=serving");

  const std::string abstract = "@usersd-sd-test-" + std::to_string(getpid());
  Listener la(abstract);
  setenv("NOTIFY_SOCKET", abstract.c_str(), 1);
  CHECK(Notify("WATCHDOG=1") == 1);
  CHECK(la.Receive() == "WATCHDOG=1");

  setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
  CHECK(Notify("READY=1") < 0);
  setenv("NOTIFY_SOCKET", (dir / "nobody-listens").c_str(), 1);
  CHECK(Notify("READY=1") < 0);
  unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("sd: WatchdogEnabled reads WATCHDOG_USEC for this pid only", "[daemon]") {
  uint64_t usec = 0;
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  CHECK(WatchdogEnabled(&usec) == 0);
  setenv("WATCHDOG_USEC", "3000000", 1);
  CHECK(WatchdogEnabled(&usec) == 1);
  CHECK(usec == 3000000);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  CHECK(WatchdogEnabled(&usec) == 1);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  CHECK(WatchdogEnabled(&usec) == 0);
  unsetenv("WATCHDOG_PID");
  setenv("WATCHDOG_USEC", "3s", 1);
  CHECK(WatchdogEnabled(&usec) < 0);
  unsetenv("WATCHDOG_USEC");
}

TEST_CASE("sd: ListenFds takes the passed descriptors with their names and unsets the variables", "[daemon]") {
  // Two descriptors at 3 and 4, as systemd passes them.
  int a = dup2(STDERR_FILENO, 50), b = dup2(STDERR_FILENO, 51);
  REQUIRE(a == 50);
  REQUIRE(b == 51);
  int saved3 = fcntl(3, F_DUPFD_CLOEXEC, 60), saved4 = fcntl(4, F_DUPFD_CLOEXEC, 60);
  REQUIRE(dup2(a, 3) == 3);
  REQUIRE(dup2(b, 4) == 4);
  const std::string pid = std::to_string(getpid());

  setenv("LISTEN_PID", pid.c_str(), 1);
  setenv("LISTEN_FDS", "2", 1);
  setenv("LISTEN_FDNAMES", "app:admin", 1);
  auto fds = ListenFds();
  REQUIRE(fds.size() == 2);
  CHECK(fds[0] == std::pair<int, std::string>(3, "app"));
  CHECK(fds[1] == std::pair<int, std::string>(4, "admin"));
  CHECK((fcntl(3, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(getenv("LISTEN_PID") == nullptr);
  CHECK(getenv("LISTEN_FDS") == nullptr);
  CHECK(getenv("LISTEN_FDNAMES") == nullptr);
  CHECK(ListenFds().empty());  // taken once

  setenv("LISTEN_PID", pid.c_str(), 1);
  setenv("LISTEN_FDS", "2", 1);
  fds = ListenFds();  // without names
  REQUIRE(fds.size() == 2);
  CHECK(fds[1].second == "unknown");

  setenv("LISTEN_PID", std::to_string(getpid() + 1).c_str(), 1);  // meant for another process
  setenv("LISTEN_FDS", "2", 1);
  CHECK(ListenFds().empty());
  CHECK(getenv("LISTEN_FDS") == nullptr);

  setenv("LISTEN_PID", pid.c_str(), 1);
  setenv("LISTEN_FDS", "2", 1);
  setenv("LISTEN_FDNAMES", "app", 1);  // a name list of another length
  CHECK(ListenFds().empty());

  // Put back what the test process had at 3 and 4 (or nothing).
  for (auto [fd, saved] : {std::pair{3, saved3}, std::pair{4, saved4}}) {
    if (saved >= 0) {
      dup2(saved, fd);
      close(saved);
    } else {
      close(fd);
    }
  }
  close(a);
  close(b);
}

}  // namespace
}  // namespace usersd::daemon::sd
