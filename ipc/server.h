// Server: a libuv Unix-socket server speaking newline-delimited JSON.
//
// Each accepted connection reads lines, parses them (ipc/protocol.h) and hands
// requests to a Dispatcher. Replies may come in any order and at any later
// loop turn through the request's Responder. Replies are buffered per
// connection and written once per loop iteration (one uv_write carries every
// frame that became ready in that iteration).
//
// Memory per connection is bounded: a line longer than max_line_bytes gets a
// final -32600 error frame, after which the server shuts down its write side
// and reads and drops the client's input (up to another max_line_bytes)
// until the client closes (docs/ARCHITECTURE.md, step 1); a client whose
// replies pile up (it does not read) or that has too many requests in flight
// is not read from until it catches up.
//
// Memory and slots over all connections are bounded too (issue 21): the
// input buffered by every connection together stays under
// max_buffered_bytes (above it, the connection holding the most gets a
// -32600 frame and is closed); a connection must complete its first line
// within first_request_timeout_ms; one that is idle (no complete line for
// idle_timeout_ms, nothing in flight, no open stream, no reply waiting to be
// written) is closed, as is one still lingering after an error frame
// kLingerMs ago; one uid holds at most max_connections_per_uid
// connections. Reads use one buffer shared by every connection.
//
// Threads: loop thread only, including every Responder method.
// Ownership: the Server owns its listener, its uv_check_t and every
// connection; Close() must complete (its callback run) before destruction.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "ipc/protocol.h"

namespace usersd::ipc {

// The peer of an accepted connection, as the kernel recorded it at
// connect(): SO_PEERCRED, and SO_PEERGROUPS for the supplementary groups.
// Until SO_PEERCRED has been read, the peer is unknown (`known` false) and
// its ids are -1, never root: a check that looks only at `uid` fails closed.
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::vector<gid_t> groups;  // supplementary groups (read only for a socket with an authorize hook)
  bool known = false;         // SO_PEERCRED was read
};

struct ServerOptions {
  std::string name = "app";  // for logs and metrics
  std::string path;
  uint32_t mode = 0660;
  std::optional<std::string> group;  // name or numeric gid
  size_t max_line_bytes = 1 << 20;
  size_t max_connections = 4096;
  size_t max_inflight_per_connection = 256;
  size_t write_high_watermark = 1 << 20;  // stop reading above this many queued reply bytes
  // 0 disables each of these (see the file comment).
  int64_t first_request_timeout_ms = 0;
  int64_t idle_timeout_ms = 0;
  size_t max_buffered_bytes = 0;
  size_t max_connections_per_uid = 0;
  // Called with the peer's credentials on accept; false refuses the caller.
  std::function<bool(const PeerCred&)> authorize;
};

class Connection;
struct RequestState;

// Base of a Dispatcher's per-connection state; the Server owns each value
// and destroys it with its connection.
class ConnectionState {
 public:
  virtual ~ConnectionState() = default;
};

enum class StreamEvent { kAck, kInterrupt, kClosed };

// A handle for answering one request; cheap to copy. Replying more than once
// is ignored. If every copy is dropped without a reply the client gets an
// InternalServerError defect, so a request never hangs.
class Responder {
 public:
  explicit Responder(std::shared_ptr<RequestState> s) : s_(std::move(s)) {}
  void Reply(const Outcome& outcome) const;
  // Streams: send one Chunk. Flow control is the client's Ack, delivered to
  // the stream handler.
  void Chunk(const Json& values) const;
  void EndStream() const;
  // Registers the handler of Ack/Interrupt/closed events for a stream.
  void OnStreamEvent(std::function<void(StreamEvent)> handler) const;
  bool connected() const;
  // The dispatcher's state for this request's connection (one value per
  // connection, kept until it closes; e.g. the last token it presented),
  // made by Dispatcher::NewConnectionState on first use. The connection data
  // slot belongs to the server's one dispatcher: only it creates the value,
  // so it may static_cast it to its own type. nullptr when the connection is
  // gone or the dispatcher keeps no state. Valid during the current callback.
  ConnectionState* connection_state() const;
  const Request& request() const;
  const PeerCred& peer() const;

 private:
  std::shared_ptr<RequestState> s_;
};

class Dispatcher {
 public:
  virtual ~Dispatcher() = default;
  // Loop thread. Must eventually reply through `responder` (now or later).
  virtual void Dispatch(const Request& request, Responder responder) = 0;
  // A new connection's state (Responder::connection_state), made the first
  // time a request asks for it; nullptr (the default) keeps none.
  virtual std::unique_ptr<ConnectionState> NewConnectionState() { return nullptr; }
};

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t refused_limit = 0;
  uint64_t refused_peer = 0;
  uint64_t refused_uid_limit = 0;     // over max_connections_per_uid
  uint64_t closed_first_request = 0;  // no complete first line in time
  uint64_t closed_idle = 0;
  uint64_t closed_buffer_limit = 0;  // held the most input when the total went over
  uint64_t closed_linger = 0;        // lingered after an error frame too long
  uint64_t requests = 0;
  uint64_t protocol_errors = 0;
  uint64_t overlong_lines = 0;
  uint64_t read_pauses = 0;
};

class Server {
 public:
  Server(uv_loop_t* loop, ServerOptions options, Dispatcher* dispatcher);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Creates the socket file at options.path (removing a stale one only when
  // nothing listens on it), applies mode and group, and listens.
  Status Listen();
  // Listens on an inherited, already bound socket (systemd socket
  // activation). The socket file is left alone.
  Status ListenFd(int fd);
  // Stops accepting new connections; existing ones keep being served.
  void StopAccepting();
  // Closes the listener, then each connection once its buffered replies are
  // written (or after `grace_ms`, for clients that do not read), then calls
  // `done`.
  void Close(std::function<void()> done, uint64_t grace_ms = 1000);

  size_t connections() const { return conns_.size(); }
  size_t inflight() const;
  // Input bytes buffered over all connections (their line buffers' capacity).
  size_t buffered_bytes() const { return buffered_; }
  // How long a connection may linger after a final error frame.
  static constexpr int64_t kLingerMs = 5000;
  const ServerStats& stats() const { return stats_; }
  // The application socket's series, usersd_connections and
  // usersd_socket_refused_total (describes and sets them). Loop thread. The
  // names are not per server: call it for the application server only.
  void ExportMetrics(Metrics& m) const;
  const ServerOptions& options() const { return options_; }
  void set_max_line_bytes(size_t n) { options_.max_line_bytes = n; }

 private:
  friend class Connection;
  static void OnConnection(uv_stream_t* server, int status);
  static void OnCheck(uv_check_t* check);
  static void OnSweep(uv_timer_t* timer);
  void Accept();
  // Records connection `c`'s new buffer size; over max_buffered_bytes, closes
  // the connection that holds the most.
  void Account(Connection* c);
  void Sweep();
  void MarkDirty(const std::shared_ptr<Connection>& c);
  void Remove(Connection* c);
  void MaybeFinishClose();

  uv_loop_t* loop_;
  ServerOptions options_;
  Dispatcher* dispatcher_;
  uv_pipe_t listener_{};
  bool listening_ = false;
  bool listener_closed_ = true;
  bool owns_socket_file_ = false;
  uv_check_t check_{};
  bool check_closed_ = true;
  uv_timer_t grace_timer_{};
  bool grace_closed_ = true;
  uv_timer_t sweep_timer_{};  // deadlines (running when one is configured)
  bool sweep_closed_ = true;
  size_t buffered_ = 0;
  std::unordered_map<uid_t, size_t> per_uid_;  // accepted connections by peer uid
  // The one read buffer: libuv calls a stream's read callback right after
  // its alloc callback, and the bytes are copied out before it returns.
  std::unique_ptr<char[]> read_buf_;
  bool closing_ = false;
  std::function<void()> close_done_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;
  std::vector<std::shared_ptr<Connection>> dirty_;
  ServerStats stats_;
  uint64_t last_accept_error_log_ms_ = 0;
};

}  // namespace usersd::ipc
