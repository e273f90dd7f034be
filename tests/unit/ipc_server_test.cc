// ipc::Server's per-connection state (Responder::connection_state): made by
// the dispatcher once per connection on first use, the same object for every
// request of that connection, none for a dispatcher that keeps none, and
// destroyed with its connection. And the limits over all connections (issue
// 21): deadlines, the per-uid cap, the cap on buffered input. A real Server
// on a temp socket, blocking clients, and the loop driven by the test.
#include "ipc/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "tests/unit/temp_dir.h"

namespace usersd::ipc {
namespace {

using usersd::testing::TempDir;

struct CountingState : ConnectionState {
  explicit CountingState(int* live) : live(live) { ++*live; }
  ~CountingState() override { --*live; }
  int* live;
  int requests = 0;
};

// Answers each request with how many requests its connection has made, or
// -1 when it has no state. A request tagged "hold" gets no answer until the
// test releases it (held).
class CountingDispatcher : public Dispatcher {
 public:
  explicit CountingDispatcher(bool keeps_state) : keeps_state_(keeps_state) {}
  void Dispatch(const Request& request, Responder responder) override {
    if (request.tag == "hold") {
      held.push_back(responder);
      return;
    }
    ConnectionState* s = responder.connection_state();
    if (!s) {
      responder.Reply(Outcome::Success(-1));
      return;
    }
    // This dispatcher made it, so the cast is to its own type.
    auto* state = static_cast<CountingState*>(s);
    CHECK(responder.connection_state() == s);  // made once
    responder.Reply(Outcome::Success(++state->requests));
  }
  std::unique_ptr<ConnectionState> NewConnectionState() override {
    if (!keeps_state_) return nullptr;
    ++made;
    return std::make_unique<CountingState>(&live);
  }
  int made = 0;
  int live = 0;
  std::vector<Responder> held;

 private:
  bool keeps_state_;
};

struct Rig {
  explicit Rig(bool keeps_state, std::function<void(ServerOptions&)> tweak = nullptr) : dispatcher(keeps_state) {
    REQUIRE(uv_loop_init(&loop) == 0);
    ServerOptions o;
    o.name = "test";
    o.path = dir / "app.sock";
    o.mode = 0600;
    if (tweak) tweak(o);
    server = std::make_unique<Server>(&loop, o, &dispatcher);
    REQUIRE(server->Listen().ok());
  }
  ~Rig() {
    dispatcher.held.clear();
    bool done = false;
    server->Close([&] { done = true; }, 100);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(done);
    CHECK(dispatcher.live == 0);
    server.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }
  // Runs the loop until `pred` holds (or fails after 10 s).
  template <class Pred>
  void RunUntil(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      uv_run(&loop, UV_RUN_NOWAIT);
      usleep(1000);
    }
  }

  TempDir dir;
  uv_loop_t loop{};
  CountingDispatcher dispatcher;
  std::unique_ptr<Server> server;
};

class Client {
 public:
  explicit Client(Rig& rig) : rig_(rig) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string p = rig.dir / "app.sock";
    std::memcpy(a.sun_path, p.data(), p.size());
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Sends bytes as they are (as much as the socket takes; returns how many).
  size_t SendRaw(std::string_view bytes) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  // Runs the loop and reads until the server closed the connection (true)
  // or `ms` passed (false); what was read is in received().
  bool WaitClosed(int ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      uv_run(&rig_.loop, UV_RUN_NOWAIT);
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 2) > 0) {
        char tmp[65536];
        ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
        if (n > 0) buf_.append(tmp, static_cast<size_t>(n));
      }
    }
    return false;
  }
  const std::string& received() const { return buf_; }

  // Sends one request and returns its success value.
  Json Call() {
    std::string id = std::to_string(next_++);
    Json req{{"_tag", "Request"}, {"id", id}, {"tag", "t"}, {"headers", Json::array()}};
    std::string line = req.dump() + "\n";
    REQUIRE(send(fd_, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        Json f = Json::parse(buf_.substr(0, nl));
        buf_.erase(0, nl + 1);
        if (f["_tag"] == "Exit" && f["requestId"] == id) {
          INFO(f.dump());
          REQUIRE(f["exit"]["_tag"] == "Success");
          return f["exit"]["value"];
        }
        continue;
      }
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      uv_run(&rig_.loop, UV_RUN_NOWAIT);
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 2) > 0) {
        char tmp[4096];
        ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
        if (n > 0) buf_.append(tmp, static_cast<size_t>(n));
      }
    }
  }

 private:
  Rig& rig_;
  int fd_ = -1;
  std::string buf_;
  int next_ = 1;
};

TEST_CASE("ipc server: one dispatcher state per connection, kept across its requests, freed with it", "[ipc]") {
  Rig rig(true);
  Client a(rig), b(rig);
  CHECK(a.Call() == 1);
  CHECK(a.Call() == 2);
  CHECK(b.Call() == 1);
  CHECK(a.Call() == 3);
  CHECK(b.Call() == 2);
  CHECK(rig.dispatcher.made == 2);
  CHECK(rig.dispatcher.live == 2);
  a.Close();
  rig.RunUntil([&] { return rig.server->connections() == 1; });
  CHECK(rig.dispatcher.live == 1);
  CHECK(b.Call() == 3);
  // A connection that never asks gets no state.
  Client idle(rig);
  rig.RunUntil([&] { return rig.server->connections() == 2; });
  CHECK(rig.dispatcher.made == 2);
}

TEST_CASE("ipc server: a dispatcher that keeps no state gets nullptr", "[ipc]") {
  Rig rig(false);
  Client a(rig);
  CHECK(a.Call() == -1);
  CHECK(a.Call() == -1);
  CHECK(rig.dispatcher.made == 0);
}

TEST_CASE("ipc server: a peer's credentials are read at accept (uid, gid, known)", "[ipc]") {
  Rig rig(false);
  struct PeerDispatcher : Dispatcher {
    void Dispatch(const Request&, Responder r) override {
      peer = r.peer();
      r.Reply(Outcome::Success(1));
    }
    PeerCred peer;
  } peers;
  ServerOptions o;
  o.name = "peer";
  o.path = rig.dir / "peer.sock";
  o.mode = 0600;
  // A second server on the rig's loop, closed before the rig's.
  auto s = std::make_unique<Server>(&rig.loop, o, &peers);
  REQUIRE(s->Listen().ok());
  {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, o.path.data(), o.path.size());
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    std::string line = R"({"_tag":"Request","id":"1","tag":"t","headers":[]})"
                       "\n";
    REQUIRE(send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
    rig.RunUntil([&] { return peers.peer.known; });
    CHECK(peers.peer.uid == getuid());
    CHECK(peers.peer.gid == getgid());
    close(fd);
  }
  bool done = false;
  s->Close([&] { done = true; }, 100);
  rig.RunUntil([&] { return done; });
}

TEST_CASE("ipc server: a uid's connections beyond max_connections_per_uid are refused with a message", "[ipc]") {
  Rig rig(false, [](ServerOptions& o) { o.max_connections_per_uid = 3; });
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(std::make_unique<Client>(rig));
  for (auto& c : clients) CHECK(c->Call() == -1);
  Client over(rig);
  REQUIRE(over.WaitClosed());
  CHECK(over.received().find("too many connections from uid " + std::to_string(getuid())) != std::string::npos);
  CHECK(rig.server->stats().refused_uid_limit == 1);
  // A slot freed is a slot to take again.
  clients[0]->Close();
  rig.RunUntil([&] { return rig.server->connections() == 2; });
  Client again(rig);
  CHECK(again.Call() == -1);
}

TEST_CASE("ipc server: a connection without a complete first line is closed at first_request_timeout_ms", "[ipc]") {
  Rig rig(false, [](ServerOptions& o) { o.first_request_timeout_ms = 200; });
  Client silent(rig), partial(rig), talker(rig);
  partial.SendRaw(R"({"_tag":"Request","id":"1")");  // half a line, then nothing
  CHECK(talker.Call() == -1);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(silent.WaitClosed());
  REQUIRE(partial.WaitClosed());
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(100));
  CHECK(silent.received().find("no request within 200 ms") != std::string::npos);
  CHECK(rig.server->stats().closed_first_request == 2);
  // The client that asked is not subject to it.
  CHECK(talker.Call() == -1);
  CHECK_FALSE(talker.WaitClosed(400));
}

TEST_CASE("ipc server: an idle connection is closed at idle_timeout_ms, unless a request is in flight", "[ipc]") {
  Rig rig(false, [](ServerOptions& o) { o.idle_timeout_ms = 200; });
  Client idle(rig), waiting(rig);
  CHECK(idle.Call() == -1);
  std::string hold = R"({"_tag":"Request","id":"h","tag":"hold","headers":[]})"
                     "\n";
  waiting.SendRaw(hold);
  rig.RunUntil([&] { return rig.dispatcher.held.size() == 1; });
  REQUIRE(idle.WaitClosed());
  CHECK(rig.server->stats().closed_idle == 1);
  // The one waiting for its answer stays, and hears it.
  CHECK_FALSE(waiting.WaitClosed(600));
  rig.dispatcher.held[0].Reply(Outcome::Success(7));
  rig.dispatcher.held.clear();
  REQUIRE(waiting.WaitClosed());  // then idle in its turn
  CHECK(waiting.received().find(R"("value":7)") != std::string::npos);
}

TEST_CASE("ipc server: over max_buffered_bytes the connection holding the most input is closed; others go on",
          "[ipc]") {
  Rig rig(false, [](ServerOptions& o) {
    o.max_line_bytes = 1 << 20;
    o.max_buffered_bytes = 1 << 20;
  });
  Client small(rig), big(rig), bigger(rig), fine(rig);
  CHECK(fine.Call() == -1);
  small.SendRaw(std::string(1000, 'a'));
  std::string chunk(64 * 1024, 'b');
  for (int i = 0; i < 3; ++i) big.SendRaw(chunk);  // 192 KiB, no newline
  rig.RunUntil([&] { return rig.server->buffered_bytes() >= 3 * chunk.size(); });
  size_t sent = 0;
  while (sent < 700 * 1024 && !bigger.WaitClosed(1)) sent += bigger.SendRaw(chunk);
  REQUIRE(bigger.WaitClosed());
  CHECK(bigger.received().find("input buffer limit reached") != std::string::npos);
  CHECK(rig.server->stats().closed_buffer_limit >= 1);
  CHECK(rig.server->buffered_bytes() <= size_t{1} << 20);
  // The others keep their connections and their bytes.
  CHECK_FALSE(big.WaitClosed(100));
  CHECK_FALSE(small.WaitClosed(100));
  CHECK(fine.Call() == -1);
}

}  // namespace
}  // namespace usersd::ipc
