// ipc::Server's per-connection state (Responder::connection_state): made by
// the dispatcher once per connection on first use, the same object for every
// request of that connection, none for a dispatcher that keeps none, and
// destroyed with its connection. A real Server on a temp socket, blocking
// clients, and the loop driven by the test.
#include "ipc/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>

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
// -1 when it has no state.
class CountingDispatcher : public Dispatcher {
 public:
  explicit CountingDispatcher(bool keeps_state) : keeps_state_(keeps_state) {}
  void Dispatch(const Request&, Responder responder) override {
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

 private:
  bool keeps_state_;
};

struct Rig {
  explicit Rig(bool keeps_state) : dispatcher(keeps_state) {
    REQUIRE(uv_loop_init(&loop) == 0);
    ServerOptions o;
    o.name = "test";
    o.path = dir / "app.sock";
    o.mode = 0600;
    server = std::make_unique<Server>(&loop, o, &dispatcher);
    REQUIRE(server->Listen().ok());
  }
  ~Rig() {
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

}  // namespace
}  // namespace usersd::ipc
