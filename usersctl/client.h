// usersctl's connection to the admin socket (SPEC section 5), and the ways
// it ends: exit codes, Die, UsageError.
//
// A plain blocking client: one Unix stream socket, the NDJSON form of the
// @effect/rpc protocol (one request, then its Exit; Chunk frames and Acks
// for `watch`), nlohmann-json for the frames. usersctl is single-threaded;
// nothing here is thread-safe.
#pragma once

#include <signal.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace usersd::usersctl {

using Json = nlohmann::json;

// Exit codes: 0 ok, 1 the operation failed (remote error, bad input data,
// `health` not ok), 2 usage error, 3 cannot reach the daemon (not running,
// permission denied by the socket's mode or by SO_PEERCRED).
constexpr int kExitOk = 0;
constexpr int kExitRemote = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnect = 3;

constexpr const char* kDefaultSocket = "/run/usersd/admin.sock";
constexpr double kDefaultTimeoutSec = 60;

// The global options, valid for every command.
struct Options {
  std::string socket;
  bool json = false;
  std::optional<double> timeout;  // seconds; nullopt = the command's default
};

// Set by the SIGINT/SIGTERM handler that `watch` and `users resync --wait`
// install; Client::Next returns kInterrupted once it is set.
extern volatile sig_atomic_t g_interrupted;
void InstallInterruptHandler();

// A partial output file to remove when usersctl fails (users export); ""
// for none.
void SetUnlinkOnFailure(std::string path);

// Prints "usersctl: MESSAGE" to stderr (ending a progress line first) and
// exits with `code`.
[[noreturn]] void Die(int code, const std::string& message);
// Prints the message and the help of `topic` ("" for a pointer to --help)
// and exits 2.
[[noreturn]] void UsageError(const std::string& message, const std::string& topic);

// The message of an @effect/rpc Cause, for humans.
std::string CauseMessage(const Json& cause);

int64_t NowMs();  // CLOCK_MONOTONIC

// One connection to the admin socket. Blocking I/O with poll() for the
// timeouts and for Ctrl-C (SIGINT interrupts poll). Owns its socket.
class Client {
 public:
  Client(std::string path, std::optional<double> timeout_sec) : path_(std::move(path)), timeout_(timeout_sec) {}
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects or exits 3 with the reason (not running, permission denied).
  void Connect();

  // Sends one frame. A peer that closed (EPIPE) is not reported here: the
  // reason (e.g. a peer-credential refusal) is waiting to be read.
  void Send(const Json& frame);
  // Sends a Request frame; returns its id.
  std::string SendRequest(const std::string& tag, const Json& payload);

  enum class Read { kFrame, kTimeout, kEof, kInterrupted };

  // Reads the next frame. `deadline_ms` (NowMs) < 0 waits without limit;
  // with `interruptible`, a SIGINT returns kInterrupted.
  Read Next(Json* frame, int64_t deadline_ms, bool interruptible);

  // NowMs() + --timeout (or `default_sec` without it); -1 for no limit.
  int64_t Deadline(double default_sec) const;

  // A protocol-level error frame (JSON-RPC form, id null): the daemon
  // refused the connection or the line. Exits.
  [[noreturn]] void ProtocolError(const Json& frame);

  // Calls `tag` and returns its success value; exits 1 on failure with the
  // remote message. `default_timeout` 0 waits without limit (unless
  // --timeout is given). `tick`, when set, runs about every `tick_ms` while
  // the answer is awaited (progress displays).
  Json Call(const std::string& tag, const Json& payload, double default_timeout = kDefaultTimeoutSec,
            const std::function<void()>& tick = nullptr, int tick_ms = 250);

  // Like Call, but returns the failure instead of exiting: the success
  // value, or nullopt with *error set to the remote message. Timeouts and
  // a closed connection still exit.
  std::optional<Json> TryCall(const std::string& tag, const Json& payload, std::string* error,
                              double default_timeout = kDefaultTimeoutSec, const std::function<void()>& tick = nullptr,
                              int tick_ms = 250);
  // TryCall with the payload already serialised (one line of valid JSON):
  // users import sends batches it built from the input's lines.
  std::optional<Json> TryCallRaw(const std::string& tag, const std::string& payload_json, std::string* error,
                                 double default_timeout = kDefaultTimeoutSec);

  const std::string& path() const { return path_; }

 private:
  // Sends a Request frame whose payload is `payload_json`; returns its id.
  std::string SendRequestRaw(const std::string& tag, const std::string& payload_json);
  // Waits for the Exit of request `id` (see TryCall).
  std::optional<Json> Await(const std::string& id, const std::string& tag, std::string* error, double default_timeout,
                            const std::function<void()>& tick, int tick_ms);
  void SendLine(const std::string& line);

  std::string path_;
  std::optional<double> timeout_;
  int fd_ = -1;
  std::string buf_;
  int next_id_ = 1;
  bool received_any_ = false;
};

}  // namespace usersd::usersctl
