#include "ipc/server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "ipc/line_splitter.h"

namespace usersd::ipc {

// One request's shared state: the Responder copies point here.
struct RequestState {
  std::weak_ptr<Connection> conn;
  Request request;
  PeerCred peer;
  bool replied = false;
  bool stream = false;
  std::function<void(StreamEvent)> stream_handler;
  ~RequestState();
};

// One accepted client. Owned by the Server (shared_ptr so that
// RequestStates can hold weak references); freed after its pipe closed.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server* server) : server_(server), in_(server->options_.max_line_bytes) {}
  ~Connection() { assert(closed_ && "Connection destroyed before its pipe closed"); }

  uv_pipe_t pipe_{};
  Server* server_;
  PeerCred peer_;
  LineSplitter in_;         // bytes read, not yet handled as lines
  std::string out_;         // replies waiting for the next flush
  size_t bytes_in_uv_ = 0;  // bytes handed to uv_write, not yet written
  size_t inflight_ = 0;
  bool reading_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool close_after_flush_ = false;
  // After a protocol error that ends the connection: input is read and
  // dropped (up to another max_line_bytes) and, once the error is written,
  // our side is shut down; the pipe closes when the client closes its side.
  // Closing at once, with the client's bytes unread, would make its next
  // write fail (EPIPE/ECONNRESET) and many clients then drop the error
  // reply they have not read yet.
  bool linger_ = false;
  bool shut_down_ = false;
  size_t lingered_bytes_ = 0;
  uv_shutdown_t shutdown_req_{};
  bool eof_ = false;  // the client sent Eof or half-closed
  bool dirty_ = false;
  // Deadlines and accounting (loop time, ms; see Server::Sweep/Account).
  uint64_t accepted_at_ms_ = 0;
  uint64_t last_line_ms_ = 0;
  uint64_t linger_since_ms_ = 0;
  bool got_line_ = false;
  size_t accounted_ = 0;      // in_.held() as last added to Server::buffered_
  bool counted_uid_ = false;  // counted in Server::per_uid_
  std::unordered_map<std::string, std::weak_ptr<RequestState>> streams_;
  // Responder::connection_state(), made by the dispatcher on first use.
  std::unique_ptr<ConnectionState> state_;
  bool state_made_ = false;
  ConnectionState* State() {
    if (!state_made_) {
      state_made_ = true;
      state_ = server_->dispatcher_->NewConnectionState();
    }
    return state_.get();
  }

  void Start();
  void Send(std::string_view frame);
  // Encodes the reply straight into the out buffer.
  void SendExit(const Request& req, const Outcome& outcome);
  void Flush();
  void Close();
  void CloseAfterFlush();
  void LingerAfterFlush();
  void RequestDone();
  void OnEof();
  void UpdateReading();
  // The server closes this connection to free input memory or a slot: a
  // final -32600 frame (when `message` is not empty), its buffered input
  // dropped, then the linger of an overlong line.
  void Evict(const std::string& message);
  // Nothing in flight, no open stream, no reply waiting to be written.
  bool Quiet() const { return inflight_ == 0 && streams_.empty() && out_.empty() && bytes_in_uv_ == 0; }

 private:
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  void ProcessLines();
  void HandleLine(std::string_view line);
  void MaybeFinish();
};

namespace {

struct WriteReq {
  uv_write_t req;
  std::string data;
  std::weak_ptr<Connection> conn;
};

}  // namespace

RequestState::~RequestState() {
  // A request whose every Responder was dropped without a reply would leave
  // the client waiting forever; answer it instead.
  if (!replied) {
    if (auto c = conn.lock()) {
      if (!c->closing_) {
        c->Send(EncodeExit(request, Outcome::Die("request was dropped without a reply", -32603, "InternalError")));
      }
      c->RequestDone();
    }
  }
}

// ------------------------------------------------------------- Responder

void Responder::Reply(const Outcome& outcome) const {
  if (s_->replied) return;
  s_->replied = true;
  auto c = s_->conn.lock();
  if (!c) return;
  if (s_->stream) c->streams_.erase(s_->request.IdString());
  // JSON-RPC notifications (no id) get no reply, as JSON-RPC 2.0 says.
  bool notification = s_->request.wire == Wire::kJsonRpc && s_->request.id.is_null();
  if (!c->closing_ && !notification) c->SendExit(s_->request, outcome);
  c->RequestDone();
}

void Responder::Chunk(const Json& values) const {
  if (s_->replied) return;
  auto c = s_->conn.lock();
  if (!c || c->closing_) return;
  c->Send(EncodeChunk(s_->request, values));
}

void Responder::EndStream() const {
  if (s_->replied) return;
  s_->replied = true;
  auto c = s_->conn.lock();
  if (!c) return;
  c->streams_.erase(s_->request.IdString());
  if (!c->closing_) c->Send(EncodeStreamEnd(s_->request));
  c->RequestDone();
}

void Responder::OnStreamEvent(std::function<void(StreamEvent)> handler) const {
  auto c = s_->conn.lock();
  s_->stream = true;
  s_->stream_handler = std::move(handler);
  if (c) c->streams_[s_->request.IdString()] = s_;
}

bool Responder::connected() const {
  auto c = s_->conn.lock();
  return c && !c->closing_;
}

ConnectionState* Responder::connection_state() const {
  auto c = s_->conn.lock();
  // The Server's connection table keeps the connection alive past `c`.
  return c && !c->closing_ ? c->State() : nullptr;
}

const Request& Responder::request() const { return s_->request; }
const PeerCred& Responder::peer() const { return s_->peer; }

// ------------------------------------------------------------ Connection

void Connection::Start() {
  pipe_.data = this;
  reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&pipe_), &Connection::OnAlloc, &Connection::OnRead);
}

namespace {
constexpr size_t kReadBufBytes = 64 * 1024;
}  // namespace

void Connection::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  buf->base = c->server_->read_buf_.get();
  buf->len = kReadBufBytes;
}

void Connection::OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  auto self = c->shared_from_this();  // keep alive through this callback
  if (n < 0) {
    if (n == UV_EOF) {
      // Half-close: answer what is in flight, then close.
      uv_read_stop(s);
      c->reading_ = false;
      c->OnEof();
    } else {
      c->Close();
    }
    return;
  }
  if (c->linger_) {
    c->lingered_bytes_ += static_cast<size_t>(n);
    if (c->lingered_bytes_ > c->server_->options_.max_line_bytes) c->Close();
    return;
  }
  if (n == 0 || c->closing_ || c->close_after_flush_) return;
  c->in_.Append(std::string_view(buf->base, static_cast<size_t>(n)));
  c->ProcessLines();
  c->server_->Account(c);
}

void Connection::ProcessLines() {
  // Read on every call so that Server::set_max_line_bytes reaches open
  // connections too.
  const size_t limit = server_->options_.max_line_bytes;
  in_.set_max_line_bytes(limit);
  std::string_view line;
  while (!closing_ && !close_after_flush_) {
    switch (in_.NextLine(&line)) {
      case LineSplitter::Next::kLine:
        got_line_ = true;
        last_line_ms_ = uv_now(server_->loop_);
        HandleLine(line);
        break;
      case LineSplitter::Next::kNeedMore:
        UpdateReading();
        return;
      case LineSplitter::Next::kOverlong:
        // Either a complete line over the limit, or a partial one already
        // over it: refuse without buffering more.
        server_->stats_.overlong_lines++;
        Send(EncodeProtocolError(kInvalidRequest,
                                 "Invalid Request: line exceeds the maximum of " + std::to_string(limit) + " bytes"));
        LingerAfterFlush();
        return;
    }
  }
}

void Connection::HandleLine(std::string_view line) {
  if (line.empty() || line == "\r") return;  // blank lines are harmless
  Frame f = ParseLine(line);
  switch (f.kind) {
    case FrameKind::kRequest: {
      server_->stats_.requests++;
      inflight_++;
      auto st = std::make_shared<RequestState>();
      st->conn = weak_from_this();
      st->request = std::move(f.request);
      st->peer = peer_;
      Responder r(st);
      try {
        server_->dispatcher_->Dispatch(st->request, r);
      } catch (const std::exception& e) {
        LogError("dispatch threw", {{"method", st->request.tag}, {"error", e.what()}});
        r.Reply(Outcome::Die("internal error", -32603, "InternalError"));
      }
      break;
    }
    case FrameKind::kPing:
      Send(EncodePong(f.wire));
      break;
    case FrameKind::kAck:
    case FrameKind::kInterrupt: {
      auto it = streams_.find(f.request_id);
      if (it == streams_.end()) break;
      auto st = it->second.lock();
      if (!st) {
        streams_.erase(it);
        break;
      }
      auto handler = st->stream_handler;  // the handler may end the stream
      if (handler) handler(f.kind == FrameKind::kAck ? StreamEvent::kAck : StreamEvent::kInterrupt);
      break;
    }
    case FrameKind::kEof:
      OnEof();
      break;
    case FrameKind::kIgnored:
      break;
    case FrameKind::kError:
      server_->stats_.protocol_errors++;
      if (f.error_has_request) {
        Send(EncodeExit(f.request, Outcome::Die(f.error_message, f.error_code)));
      } else {
        Send(EncodeProtocolError(f.error_code, f.error_message));
      }
      break;
  }
}

void Connection::SendExit(const Request& req, const Outcome& outcome) {
  if (closing_) return;
  size_t before = out_.size();
  try {
    AppendExit(out_, req, outcome);
  } catch (...) {
    out_.resize(before);  // never leave half a frame behind
    throw;
  }
  Send(std::string_view());
}

void Connection::Send(std::string_view frame) {
  if (closing_) return;
  out_.append(frame);
  if (server_->closing_) {
    // The flush check is gone while closing; write at once.
    Flush();
    return;
  }
  if (!dirty_) {
    dirty_ = true;
    server_->MarkDirty(shared_from_this());
  }
  UpdateReading();
}

void Connection::Flush() {
  dirty_ = false;
  if (closing_ || out_.empty()) {
    MaybeFinish();
    return;
  }
  if (bytes_in_uv_ == 0) {
    // Nothing queued in libuv: try the write now. On a Unix socket it almost
    // always completes, and out_ keeps its capacity for the next replies.
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&pipe_), &b, 1);
    if (n == static_cast<int>(out_.size())) {
      out_.clear();
      UpdateReading();
      MaybeFinish();
      return;
    }
    if (n > 0) out_.erase(0, static_cast<size_t>(n));
    else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      Close();
      return;
    }
  }
  auto* w = new WriteReq;
  w->data.swap(out_);
  w->conn = weak_from_this();
  w->req.data = w;
  bytes_in_uv_ += w->data.size();
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&pipe_), &b, 1, [](uv_write_t* req, int status) {
    auto* w = static_cast<WriteReq*>(req->data);
    if (auto c = w->conn.lock()) {
      c->bytes_in_uv_ -= w->data.size();
      if (status < 0) c->Close();
      else {
        c->UpdateReading();
        c->MaybeFinish();
      }
    }
    delete w;
  });
  if (rc != 0) {
    bytes_in_uv_ -= w->data.size();
    delete w;
    Close();
  }
}

void Connection::UpdateReading() {
  if (closing_ || eof_ || close_after_flush_) return;
  const auto& o = server_->options_;
  bool over = out_.size() + bytes_in_uv_ > o.write_high_watermark || inflight_ >= o.max_inflight_per_connection;
  auto* s = reinterpret_cast<uv_stream_t*>(&pipe_);
  if (over && reading_) {
    uv_read_stop(s);
    reading_ = false;
    server_->stats_.read_pauses++;
  } else if (!over && !reading_) {
    // Resume below half the watermark, so a client at the edge does not
    // flip the reader on and off for every reply.
    if (out_.size() + bytes_in_uv_ <= o.write_high_watermark / 2 && inflight_ < o.max_inflight_per_connection) {
      reading_ = true;
      uv_read_start(s, &Connection::OnAlloc, &Connection::OnRead);
    }
  }
}

void Connection::OnEof() {
  eof_ = true;
  // A client that sends nothing more can never Ack again: end its streams
  // as if interrupted, so the connection can close once replies are out.
  auto streams = streams_;
  for (auto& [id, weak] : streams) {
    if (auto st = weak.lock()) {
      auto handler = st->stream_handler;
      if (handler) handler(StreamEvent::kInterrupt);
    }
  }
  MaybeFinish();
}

void Connection::RequestDone() {
  if (inflight_ > 0) inflight_--;
  UpdateReading();
  MaybeFinish();
}

namespace {

// The peer's supplementary groups at connect() (Linux 4.13 and later).
std::vector<gid_t> PeerGroups(int fd) {
  std::vector<gid_t> groups(32);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) break;
    groups.resize(len / sizeof(gid_t) + 1);  // len now says how much is needed
  }
  return {};
}

}  // namespace

void Connection::CloseAfterFlush() {
  linger_ = false;  // e.g. the server stops: no waiting for the client
  close_after_flush_ = true;
  if (reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&pipe_));
    reading_ = false;
  }
  MaybeFinish();
}

void Connection::Evict(const std::string& message) {
  if (closing_ || linger_) return;
  in_.Discard();
  server_->Account(this);
  if (!message.empty()) Send(EncodeProtocolError(kInvalidRequest, message));
  LingerAfterFlush();
}

void Connection::LingerAfterFlush() {
  close_after_flush_ = true;  // no more lines are handled
  if (!linger_) linger_since_ms_ = uv_now(server_->loop_);
  linger_ = true;
  if (!reading_ && !eof_) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&pipe_), &Connection::OnAlloc, &Connection::OnRead);
    reading_ = true;
  }
  MaybeFinish();
}

void Connection::MaybeFinish() {
  if (closing_) return;
  bool drained = out_.empty() && bytes_in_uv_ == 0;
  if (close_after_flush_ && drained && linger_ && !eof_) {
    if (!shut_down_) {
      shut_down_ = true;
      // The callback may be cancelled by Close(); nothing to do either way.
      if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&pipe_), nullptr) != 0) Close();
    }
    return;
  }
  if (close_after_flush_ && drained) Close();
  else if (eof_ && drained && inflight_ == 0 && streams_.empty()) Close();
}

void Connection::Close() {
  if (closing_) return;
  closing_ = true;
  // Its bytes no longer count (they are freed with the connection, a loop
  // turn later: a line of it may still be in use further up this stack).
  server_->Account(this);
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, weak] : streams) {
    if (auto st = weak.lock()) {
      auto handler = st->stream_handler;
      if (handler) handler(StreamEvent::kClosed);
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), [](uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    c->closed_ = true;
    c->server_->Remove(c);
  });
}

// ---------------------------------------------------------------- Server

Server::Server(uv_loop_t* loop, ServerOptions options, Dispatcher* dispatcher)
    : loop_(loop),
      options_(std::move(options)),
      dispatcher_(dispatcher),
      read_buf_(std::make_unique<char[]>(kReadBufBytes)) {}

Server::~Server() {
  assert(listener_closed_ && check_closed_ && grace_closed_ && sweep_closed_ && conns_.empty() &&
         "Server destroyed before Close() completed");
}

namespace {

// True when something accepts connections on `path`.
bool SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

Status ApplyGroup(const std::string& path, const std::string& group) {
  gid_t gid;
  char* end = nullptr;
  unsigned long n = std::strtoul(group.c_str(), &end, 10);
  if (!group.empty() && end && *end == '\0') {
    gid = static_cast<gid_t>(n);
  } else {
    struct group* g = getgrnam(group.c_str());
    if (!g) return Status::InvalidArgument("socket group \"" + group + "\" does not exist");
    gid = g->gr_gid;
  }
  if (chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0)
    return Status::IOError("chown " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Status Server::Listen() {
  const std::string& path = options_.path;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return Status::InvalidArgument("socket path longer than 107 bytes: " + path);
  struct stat st{};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::IOError(path + " exists and is not a socket");
    if (SomeoneListens(path))
      return Status::Unavailable("another process is already listening on " + path + " (is usersd running?)");
    unlink(path.c_str());
  }
  int rc = uv_pipe_init(loop_, &listener_, 0);
  if (rc != 0) return Status::Internal(std::string("uv_pipe_init: ") + uv_strerror(rc));
  listener_closed_ = false;
  listener_.data = this;
  // The socket is created with the permissions the umask allows; make that
  // nothing so no one can connect before chmod sets the configured mode.
  mode_t old = umask(0177);
  rc = uv_pipe_bind(&listener_, path.c_str());
  umask(old);
  if (rc != 0) return Status::IOError("bind " + path + ": " + uv_strerror(rc));
  owns_socket_file_ = true;
  if (chmod(path.c_str(), options_.mode) != 0) return Status::IOError("chmod " + path + ": " + std::strerror(errno));
  if (options_.group) USERSD_RETURN_IF_ERROR(ApplyGroup(path, *options_.group));
  return ListenFd(-1);
}

Status Server::ListenFd(int fd) {
  if (fd >= 0) {
    int rc = uv_pipe_init(loop_, &listener_, 0);
    if (rc != 0) return Status::Internal(std::string("uv_pipe_init: ") + uv_strerror(rc));
    listener_closed_ = false;
    listener_.data = this;
    rc = uv_pipe_open(&listener_, fd);
    if (rc != 0) return Status::IOError(std::string("uv_pipe_open(inherited fd): ") + uv_strerror(rc));
  }
  int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 1024, &Server::OnConnection);
  if (rc != 0) return Status::IOError("listen " + options_.path + ": " + uv_strerror(rc));
  listening_ = true;
  uv_check_init(loop_, &check_);
  check_.data = this;
  check_closed_ = false;
  uv_check_start(&check_, &Server::OnCheck);
  if (options_.first_request_timeout_ms > 0 || options_.idle_timeout_ms > 0) {
    // A quarter of the shortest deadline, within [50 ms, 1 s]: a connection
    // is closed at most that much after its deadline.
    int64_t shortest = INT64_MAX;
    for (int64_t t : {options_.first_request_timeout_ms, options_.idle_timeout_ms})
      if (t > 0) shortest = std::min(shortest, t);
    uint64_t period = static_cast<uint64_t>(std::clamp<int64_t>(shortest / 4, 50, 1000));
    uv_timer_init(loop_, &sweep_timer_);
    sweep_timer_.data = this;
    sweep_closed_ = false;
    uv_timer_start(&sweep_timer_, &Server::OnSweep, period, period);
  }
  return Status::Ok();
}

void Server::OnConnection(uv_stream_t* s, int status) {
  auto* self = static_cast<Server*>(s->data);
  if (status < 0) {
    // libuv already applies the reserve-fd trick for EMFILE; log at most
    // once a second so a storm cannot flood the journal.
    uint64_t now = uv_now(self->loop_);
    if (now - self->last_accept_error_log_ms_ >= 1000) {
      self->last_accept_error_log_ms_ = now;
      LogWarn("accept failed", {{"socket", self->options_.name}, {"error", uv_strerror(status)}});
    }
    return;
  }
  self->Accept();
}

void Server::Accept() {
  auto conn = std::make_shared<Connection>(this);
  uv_pipe_init(loop_, &conn->pipe_, 0);
  conn->pipe_.data = conn.get();
  conns_[conn.get()] = conn;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), reinterpret_cast<uv_stream_t*>(&conn->pipe_)) != 0) {
    conn->Close();
    return;
  }
  uv_os_fd_t fd;
  conn->accepted_at_ms_ = uv_now(loop_);
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&conn->pipe_), &fd) == 0) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      conn->peer_.pid = cred.pid;
      conn->peer_.uid = cred.uid;
      conn->peer_.gid = cred.gid;
      conn->peer_.known = true;
    }
    if (options_.authorize) conn->peer_.groups = PeerGroups(fd);  // only a peer check reads them
  }
  if (closing_) {
    conn->Close();
    return;
  }
  if (options_.authorize && !options_.authorize(conn->peer_)) {
    stats_.refused_peer++;
    LogWarn("refused connection: peer not allowed",
            {{"socket", options_.name},
             {"pid", std::to_string(conn->peer_.pid)},
             {"uid", std::to_string(conn->peer_.uid)},
             {"gid", std::to_string(conn->peer_.gid)}});
    conn->Send(EncodeProtocolError(kInvalidRequest, "permission denied: uid " + std::to_string(conn->peer_.uid) +
                                                        " may not use this socket"));
    conn->CloseAfterFlush();
    return;
  }
  if (conns_.size() > options_.max_connections) {
    stats_.refused_limit++;
    conn->Send(EncodeProtocolError(kInvalidRequest, "too many connections (limit " +
                                                        std::to_string(options_.max_connections) + ")"));
    conn->CloseAfterFlush();
    return;
  }
  if (options_.max_connections_per_uid > 0) {
    size_t& n = per_uid_[conn->peer_.uid];
    if (n >= options_.max_connections_per_uid) {
      stats_.refused_uid_limit++;
      if (n == options_.max_connections_per_uid) {
        // Logged when a uid first reaches its limit, not for every refusal.
        LogWarn("refused connection: too many connections from one uid",
                {{"socket", options_.name},
                 {"uid", std::to_string(conn->peer_.uid)},
                 {"limit", std::to_string(options_.max_connections_per_uid)}});
      }
      conn->Send(EncodeProtocolError(kInvalidRequest, "too many connections from uid " +
                                                          std::to_string(conn->peer_.uid) + " (limit " +
                                                          std::to_string(options_.max_connections_per_uid) + ")"));
      conn->CloseAfterFlush();
      return;
    }
    n++;
    conn->counted_uid_ = true;
  }
  stats_.accepted++;
  conn->Start();
}

void Server::OnCheck(uv_check_t* check) {
  auto* self = static_cast<Server*>(check->data);
  auto dirty = std::move(self->dirty_);
  self->dirty_.clear();
  for (auto& c : dirty) c->Flush();
}

void Server::MarkDirty(const std::shared_ptr<Connection>& c) { dirty_.push_back(c); }

void Server::Remove(Connection* c) {
  if (c->counted_uid_) {
    auto it = per_uid_.find(c->peer_.uid);
    if (it != per_uid_.end() && --it->second == 0) per_uid_.erase(it);
  }
  conns_.erase(c);
  MaybeFinishClose();
}

void Server::Account(Connection* c) {
  size_t now_held = c->closing_ ? 0 : c->in_.held();
  bool grew = now_held > c->accounted_;
  buffered_ = buffered_ - c->accounted_ + now_held;
  c->accounted_ = now_held;
  // Only growth can cross the cap, and growth happens only at the end of a
  // read callback, when no line of any connection is being handled: so no
  // connection is evicted while a view into its buffer is alive.
  if (!grew || options_.max_buffered_bytes == 0) return;
  while (buffered_ > options_.max_buffered_bytes) {
    // The connection holding the most goes: the one building the longest
    // unterminated line, never a client whose lines are short.
    Connection* largest = nullptr;
    for (auto& [p, conn] : conns_) {
      if (conn->closing_ || conn->linger_) continue;
      if (!largest || conn->accounted_ > largest->accounted_) largest = p;
    }
    if (!largest) return;
    stats_.closed_buffer_limit++;
    LogWarn("closing the connection that holds the most unfinished input: the socket's input buffers are full",
            {{"socket", options_.name},
             {"held_bytes", std::to_string(largest->accounted_)},
             {"total_bytes", std::to_string(buffered_)},
             {"uid", std::to_string(largest->peer_.uid)}});
    largest->Evict("input buffer limit reached (socket.max_buffered_bytes " +
                   std::to_string(options_.max_buffered_bytes) + "); send shorter lines");
  }
}

void Server::OnSweep(uv_timer_t* timer) {
  static_cast<Server*>(timer->data)->Sweep();
}

void Server::Sweep() {
  const uint64_t now = uv_now(loop_);
  const auto first = static_cast<uint64_t>(options_.first_request_timeout_ms);
  const auto idle = static_cast<uint64_t>(options_.idle_timeout_ms);
  std::vector<std::shared_ptr<Connection>> expired;
  for (auto& [p, c] : conns_) {
    if (c->closing_) continue;
    if (c->linger_) {
      if (now - c->linger_since_ms_ >= static_cast<uint64_t>(kLingerMs)) expired.push_back(c);
    } else if (c->close_after_flush_) {
      continue;  // closes once its last frame is written
    } else if (!c->got_line_) {
      if (first > 0 && now - c->accepted_at_ms_ >= first) expired.push_back(c);
    } else if (idle > 0 && c->Quiet() && now - c->last_line_ms_ >= idle) {
      expired.push_back(c);
    }
  }
  for (auto& c : expired) {
    if (c->linger_) {
      stats_.closed_linger++;
      c->Close();
    } else if (!c->got_line_) {
      stats_.closed_first_request++;
      c->Evict("no request within " + std::to_string(first) + " ms of connecting (socket.first_request_timeout_ms)");
    } else {
      // An idle client is simply let go; Effect clients ping every few
      // seconds and never get here, others reconnect.
      stats_.closed_idle++;
      c->CloseAfterFlush();
    }
  }
}

size_t Server::inflight() const {
  size_t n = 0;
  for (const auto& [p, c] : conns_) n += c->inflight_;
  return n;
}

void Server::StopAccepting() {
  if (!listener_closed_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      self->listener_closed_ = true;
      self->MaybeFinishClose();
    });
    if (owns_socket_file_) unlink(options_.path.c_str());
    owns_socket_file_ = false;
  }
  listening_ = false;
}

void Server::Close(std::function<void()> done, uint64_t grace_ms) {
  closing_ = true;
  close_done_ = std::move(done);
  StopAccepting();
  // Write what is buffered, then close each connection once it is written.
  for (auto& c : dirty_) c->Flush();
  dirty_.clear();
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [p, c] : conns_) all.push_back(c);
  for (auto& c : all) c->CloseAfterFlush();
  if (!sweep_closed_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&sweep_timer_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sweep_timer_), [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      self->sweep_closed_ = true;
      self->MaybeFinishClose();
    });
  }
  if (!check_closed_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&check_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&check_), [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      self->check_closed_ = true;
      self->MaybeFinishClose();
    });
  }
  if (!conns_.empty()) {
    // Clients that do not read would hold the close forever.
    uv_timer_init(loop_, &grace_timer_);
    grace_timer_.data = this;
    grace_closed_ = false;
    uv_timer_start(&grace_timer_, [](uv_timer_t* t) {
      auto* self = static_cast<Server*>(t->data);
      std::vector<std::shared_ptr<Connection>> left;
      for (auto& [p, c] : self->conns_) left.push_back(c);
      for (auto& c : left) c->Close();
    }, grace_ms, 0);
  }
  MaybeFinishClose();
}

void Server::MaybeFinishClose() {
  if (closing_ && conns_.empty() && !grace_closed_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&grace_timer_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&grace_timer_), [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      self->grace_closed_ = true;
      self->MaybeFinishClose();
    });
  }
  if (closing_ && listener_closed_ && check_closed_ && grace_closed_ && sweep_closed_ && conns_.empty() &&
      close_done_) {
    auto done = std::move(close_done_);
    close_done_ = nullptr;
    done();
  }
}

void Server::ExportMetrics(Metrics& m) const {
  m.Describe("usersd_connections", "gauge", "Open application socket connections.");
  m.Describe("usersd_socket_refused_total", "counter", "Application socket connections refused, by reason.");
  m.Set("usersd_connections", {}, static_cast<double>(connections()));
  m.Set("usersd_socket_refused_total", {{"reason", "peer"}}, static_cast<double>(stats_.refused_peer));
  m.Set("usersd_socket_refused_total", {{"reason", "limit"}}, static_cast<double>(stats_.refused_limit));
  m.Set("usersd_socket_refused_total", {{"reason", "uid_limit"}}, static_cast<double>(stats_.refused_uid_limit));
  m.Describe("usersd_socket_closed_total", "counter",
             "Application socket connections the daemon closed to protect the others, by reason.");
  m.Set("usersd_socket_closed_total", {{"reason", "first_request_timeout"}},
        static_cast<double>(stats_.closed_first_request));
  m.Set("usersd_socket_closed_total", {{"reason", "idle"}}, static_cast<double>(stats_.closed_idle));
  m.Set("usersd_socket_closed_total", {{"reason", "buffer_limit"}}, static_cast<double>(stats_.closed_buffer_limit));
  m.Set("usersd_socket_closed_total", {{"reason", "linger"}}, static_cast<double>(stats_.closed_linger));
  m.Describe("usersd_socket_buffered_bytes", "gauge", "Unfinished input held by application socket connections.");
  m.Set("usersd_socket_buffered_bytes", {}, static_cast<double>(buffered_));
}

}  // namespace usersd::ipc
