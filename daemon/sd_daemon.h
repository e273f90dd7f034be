// The three calls of systemd's sd-daemon protocol that the daemon makes
// (readiness and status, the watchdog, socket activation), without
// libsystemd. The library would bring libgcrypt, libgpg-error, liblzma,
// liblz4 and libcap into the process, about 1 MiB of resident memory
// (SPEC 7: idle RSS under 16 MiB), for calls that read a few environment
// variables and send a datagram. systemd documents the protocol as stable
// and meant to be implemented without it (sd_notify(3): "this protocol is
// an interface"; sd_listen_fds(3), sd_watchdog_enabled(3)); each function
// here behaves as the libsystemd call named beside it.
//
// Threads: any, but ListenFds changes the environment; call it before
// threads start.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace usersd::daemon::sd {

// SD_LISTEN_FDS_START: the first descriptor systemd passes.
inline constexpr int kListenFdsStart = 3;

// sd_notify(0, state): sends `state` (e.g. "READY=1\nSTATUS=serving") as one
// datagram to $NOTIFY_SOCKET (a path, or "@name" in the abstract
// namespace). Returns 1 when sent, 0 when there is no $NOTIFY_SOCKET (not
// run by systemd with Type=notify), -errno on failure.
int Notify(std::string_view state);

// sd_watchdog_enabled(0, &usec): 1 and the interval in `usec` when
// $WATCHDOG_USEC is set and $WATCHDOG_PID, if set, is this process; 0 when
// the watchdog is not for this process; -EINVAL for values that are not
// numbers.
int WatchdogEnabled(uint64_t* usec);

// sd_listen_fds_with_names(1, ...): the descriptors systemd passed
// ($LISTEN_FDS of them from kListenFdsStart, when $LISTEN_PID is this
// process), each with its name from $LISTEN_FDNAMES ("unknown" without
// one), marked close-on-exec. Unsets LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES, so that children do not take them. Empty when none were
// passed or the variables are malformed.
std::vector<std::pair<int, std::string>> ListenFds();

}  // namespace usersd::daemon::sd
