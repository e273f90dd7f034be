// Tests for sync/http_client.h against a tiny HTTP/1.1 server inside the test
// (127.0.0.1, port 0, one thread per connection). No internet, no fixed ports.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/timefmt.h"
#include "sync/http_client.h"

namespace usersd::sync {
namespace {

// What the process does in main before any thread starts. no_proxy keeps a
// proxy configured in the environment away from the loopback server.
void InitOnce() {
  static bool done = [] {
    setenv("no_proxy", "127.0.0.1", 1);
    GlobalHttpInit();
    return true;
  }();
  (void)done;
}

struct RecordedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// Routes (query strings as shown):
//   /ok               200 "hello"
//   /echo             200 "<METHOD> <body>"
//   /retry            503, Retry-After: 7
//   /retry-date       503, Retry-After: Wed, 21 Oct 2026 07:28:00 GMT
//   /slow?ms=N        200 after N ms (cut short when the server stops)
//   /close            closes the connection without a response
//   /hold?id=N        200 after 20 ms; tracks simultaneous requests and arrival order
//   /big              200 with 1.5 MiB
//   /drop-reused      closes without a response on a reused connection; else 200 "fresh"
class TestServer {
 public:
  TestServer() {
    InitOnce();
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(listen_fd_, 128) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestServer() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : conn_fds_) shutdown(fd, SHUT_RDWR);  // wakes recv()
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    for (int fd : conn_fds_) close(fd);
    close(listen_fd_);
  }

  std::string Url(const std::string& target) const { return "http://127.0.0.1:" + std::to_string(port_) + target; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int max_simultaneous() const { return max_active_.load(); }
  RecordedRequest last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }
  std::vector<int> arrivals() {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stop_) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      // The fd is closed only in the destructor, after the thread is joined,
      // so shutdown() there never hits a reused descriptor.
      conn_fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  static bool SendAll(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  static bool Respond(int fd, int code, const std::string& body, const std::string& extra_headers = "") {
    std::string head = "HTTP/1.1 " + std::to_string(code) + (code == 200 ? " OK" : " Status") +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n";
    return SendAll(fd, head + body);
  }

  // Reads one request from fd (bytes past it stay in buf). False on EOF/error.
  static bool ReadRequest(int fd, std::string& buf, RecordedRequest* out) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(fd, buf)) return false;
    }
    std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    *out = RecordedRequest{};
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.find(' ', sp1 + 1);
    out->method = request_line.substr(0, sp1);
    out->target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string line = head.substr(pos, next - pos);
      pos = next + 2;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      size_t v = line.find_first_not_of(' ', colon + 1);
      out->headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    size_t length = 0;
    if (auto it = out->headers.find("content-length"); it != out->headers.end()) length = std::stoul(it->second);
    while (buf.size() < length) {
      if (!Fill(fd, buf)) return false;
    }
    out->body = buf.substr(0, length);
    buf.erase(0, length);
    return true;
  }

  static bool Fill(int fd, std::string& buf) {
    char chunk[65536];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }

  static int QueryInt(const std::string& target, const std::string& key) {
    size_t p = target.find(key + "=");
    return p == std::string::npos ? 0 : std::atoi(target.c_str() + p + key.size() + 1);
  }

  void SleepUnlessStopped(int ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  void Serve(int fd) {
    std::string buf;
    for (int served = 0; !stop_; ++served) {
      RecordedRequest req;
      if (!ReadRequest(fd, buf, &req)) return;
      ++requests_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_ = req;
      }
      std::string path = req.target.substr(0, req.target.find('?'));
      bool ok = true;
      if (path == "/ok") {
        ok = Respond(fd, 200, "hello");
      } else if (path == "/echo") {
        ok = Respond(fd, 200, req.method + " " + req.body);
      } else if (path == "/retry") {
        ok = Respond(fd, 503, "busy", "Retry-After: 7\r\n");
      } else if (path == "/retry-date") {
        ok = Respond(fd, 503, "busy", "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n");
      } else if (path == "/slow") {
        SleepUnlessStopped(QueryInt(req.target, "ms"));
        ok = Respond(fd, 200, "slow");
      } else if (path == "/close") {
        shutdown(fd, SHUT_RDWR);
        return;
      } else if (path == "/hold") {
        int now = ++active_;
        for (int seen = max_active_.load(); now > seen && !max_active_.compare_exchange_weak(seen, now);) {
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          arrivals_.push_back(QueryInt(req.target, "id"));
        }
        SleepUnlessStopped(20);
        --active_;
        ok = Respond(fd, 200, std::to_string(QueryInt(req.target, "id")));
      } else if (path == "/big") {
        ok = Respond(fd, 200, std::string(kMaxResponseBodyBytes + kMaxResponseBodyBytes / 2, 'x'));
      } else if (path == "/drop-reused") {
        if (served > 0) {
          shutdown(fd, SHUT_RDWR);
          return;
        }
        ok = Respond(fd, 200, "fresh");
      } else {
        ok = Respond(fd, 404, "not found");
      }
      if (!ok) return;
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> active_{0};
  std::atomic<int> max_active_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> conn_fds_;
  std::vector<std::thread> threads_;
  RecordedRequest last_;
  std::vector<int> arrivals_;
};

// A loop, a client on it, and a watchdog timer so a hang fails instead of
// blocking forever. Finish() shuts the client down and returns
// uv_loop_close's result: a leaked handle makes it non-zero.
class Harness {
 public:
  explicit Harness(uint32_t max_concurrency = 4, const Clock& clock = SystemClock()) {
    InitOnce();
    REQUIRE(uv_loop_init(&loop_) == 0);
    uv_timer_init(&loop_, &watchdog_);
    watchdog_.data = this;
    uv_prepare_init(&loop_, &check_pred_);
    check_pred_.data = this;
    client_ = std::make_unique<HttpClient>(&loop_, clock, max_concurrency);
  }
  ~Harness() {
    if (!finished_) (void)Finish();  // a failed REQUIRE unwound past Finish()
  }

  HttpClient& client() { return *client_; }
  uv_loop_t* loop() { return &loop_; }

  // Runs the loop until pred() holds; false if it did not within timeout_ms.
  // pred is checked in a prepare callback, just before the loop would block
  // for I/O. (A UV_RUN_ONCE loop would not do: when the awaited callback runs
  // in the timer phase, uv_run still blocks in poll until the next timer.)
  bool RunUntil(const std::function<bool()>& pred, uint64_t timeout_ms = 15000) {
    if (pred()) return true;
    pred_ = &pred;
    uv_timer_start(&watchdog_, [](uv_timer_t* t) { uv_stop(t->loop); }, timeout_ms, 0);
    uv_prepare_start(&check_pred_, [](uv_prepare_t* p) {
      if ((*static_cast<Harness*>(p->data)->pred_)()) uv_stop(p->loop);
    });
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_prepare_stop(&check_pred_);
    uv_timer_stop(&watchdog_);
    pred_ = nullptr;
    return pred();
  }

  // Calls Shutdown and runs the loop until its done callback ran.
  bool Shutdown() {
    shutdown_called_ = true;
    bool done = false;
    client_->Shutdown([&done] { done = true; });
    shutdown_completed_ = RunUntil([&done] { return done; });
    return shutdown_completed_;
  }
  void ShutdownWithoutWaiting(std::function<void()> done) {
    shutdown_called_ = true;
    client_->Shutdown(std::move(done));
  }
  void MarkShutdownCompleted() { shutdown_completed_ = true; }

  int Finish() {
    finished_ = true;
    if (!shutdown_called_) Shutdown();
    if (!shutdown_completed_) {
      (void)client_.release();  // destroying it now would abort; leak it instead
      return -1;
    }
    client_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&check_pred_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    return uv_loop_close(&loop_);
  }

 private:
  uv_loop_t loop_;
  uv_timer_t watchdog_;
  uv_prepare_t check_pred_;
  const std::function<bool()>* pred_ = nullptr;
  bool finished_ = false;
  bool shutdown_called_ = false;
  bool shutdown_completed_ = false;
  std::unique_ptr<HttpClient> client_;
};

HttpRequest Get(std::string url, int64_t timeout_ms = 10000) {
  HttpRequest r;
  r.method = "GET";
  r.url = std::move(url);
  r.timeout_ms = timeout_ms;
  return r;
}

// Returns a loopback port nobody listens on.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("http: GET returns status and body", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::optional<HttpResponse> got;
  h.client().Send(Get(srv.Url("/ok")), [&](HttpResponse&& r) { got = std::move(r); });
  CHECK(h.client().in_flight() == 1);
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 200);
  CHECK(got->body == "hello");
  CHECK_FALSE(got->truncated);
  CHECK_FALSE(got->timed_out);
  CHECK_FALSE(got->cancelled);
  CHECK(got->error.empty());
  CHECK_FALSE(got->retry_after_ms.has_value());
  CHECK(srv.last_request().method == "GET");
  CHECK(h.client().in_flight() == 0);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: PUT delivers a large body intact, with headers and without Expect", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::string body;
  for (size_t i = 0; i < 1'500'000; ++i) body.push_back(static_cast<char>((i * 7919) % 251));  // includes NULs
  HttpRequest req;
  req.method = "PUT";
  req.url = srv.Url("/ok");
  req.headers = {{"Authorization", "Bearer sk_test"}, {"Content-Type", "application/json"}};
  req.body = body;
  std::optional<HttpResponse> got;
  h.client().Send(std::move(req), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 200);
  RecordedRequest seen = srv.last_request();
  CHECK(seen.method == "PUT");
  CHECK(seen.body.size() == body.size());
  CHECK(seen.body == body);
  CHECK(seen.headers["authorization"] == "Bearer sk_test");
  CHECK(seen.headers["content-type"] == "application/json");
  CHECK(seen.headers.count("expect") == 0);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: POST, DELETE and bodiless PUT send the right method and length", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::vector<HttpResponse> got;
  std::vector<RecordedRequest> seen;
  auto send = [&](std::string method, std::string body) {
    HttpRequest req;
    req.method = std::move(method);
    req.url = srv.Url("/echo");
    req.body = std::move(body);
    h.client().Send(std::move(req), [&](HttpResponse&& r) {
      got.push_back(std::move(r));
      seen.push_back(srv.last_request());
    });
    size_t want = got.size() + 1;
    REQUIRE(h.RunUntil([&] { return got.size() == want; }));
  };
  send("POST", R"({"a":1})");
  send("DELETE", "");
  send("PUT", "");
  REQUIRE(got.size() == 3);
  CHECK(got[0].body == R"(POST {"a":1})");
  CHECK(seen[0].headers.count("content-type") == 0);  // curl's form default is suppressed
  CHECK(got[1].body == "DELETE ");
  CHECK(seen[1].headers.count("content-length") == 0);
  CHECK(got[2].body == "PUT ");
  CHECK(seen[2].headers["content-length"] == "0");
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a request slower than its timeout fails with timed_out", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::optional<HttpResponse> got;
  auto start = std::chrono::steady_clock::now();
  h.client().Send(Get(srv.Url("/slow?ms=5000"), 300), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(got->status == 0);
  CHECK(got->timed_out);
  CHECK_FALSE(got->cancelled);
  CHECK_FALSE(got->error.empty());
  CHECK(got->body.empty());
  CHECK(elapsed < std::chrono::seconds(3));
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a refused connection is a transport failure", "[sync][http]") {
  Harness h;
  std::optional<HttpResponse> got;
  h.client().Send(Get("http://127.0.0.1:" + std::to_string(ClosedPort()) + "/ok"),
                  [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK_FALSE(got->timed_out);
  CHECK_FALSE(got->cancelled);
  CHECK_FALSE(got->error.empty());
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a connection closed without a response is a transport failure", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::optional<HttpResponse> got;
  h.client().Send(Get(srv.Url("/close")), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK_FALSE(got->timed_out);
  CHECK_FALSE(got->error.empty());
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a non-HTTP URL scheme is refused", "[sync][http]") {
  Harness h;
  std::optional<HttpResponse> got;
  h.client().Send(Get("file:///etc/passwd"), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK(got->body.empty());
  CHECK_FALSE(got->error.empty());
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: Retry-After in delta-seconds", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::optional<HttpResponse> got;
  h.client().Send(Get(srv.Url("/retry")), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 503);
  CHECK(got->body == "busy");
  REQUIRE(got->retry_after_ms.has_value());
  CHECK(*got->retry_after_ms == 7000);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: Retry-After as an HTTP-date is relative to the injected clock", "[sync][http]") {
  std::optional<int64_t> date = ParseIso8601Ms("2026-10-21T07:28:00Z");
  REQUIRE(date.has_value());
  FakeClock clock(*date - 90'000);
  Harness h(4, clock);
  TestServer srv;
  std::optional<HttpResponse> got;
  h.client().Send(Get(srv.Url("/retry-date")), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 503);
  REQUIRE(got->retry_after_ms.has_value());
  CHECK(*got->retry_after_ms == 90'000);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: ParseRetryAfterMs accepts delta-seconds and all HTTP-date forms", "[sync][http]") {
  const int64_t date = *ParseIso8601Ms("1994-11-06T08:49:37Z");
  CHECK(ParseRetryAfterMs("7", 0) == 7000);
  CHECK(ParseRetryAfterMs(" 120 ", 0) == 120'000);
  CHECK(ParseRetryAfterMs("0", 0) == 0);
  CHECK(ParseRetryAfterMs("Sun, 06 Nov 1994 08:49:37 GMT", date - 5000) == 5000);
  CHECK(ParseRetryAfterMs("Sunday, 06-Nov-94 08:49:37 GMT", date - 5000) == 5000);
  CHECK(ParseRetryAfterMs("Sun Nov  6 08:49:37 1994", date - 5000) == 5000);
  CHECK(ParseRetryAfterMs("Sun, 06 Nov 1994 08:49:37 GMT", date + 5000) == 0);  // past: retry now
  CHECK_FALSE(ParseRetryAfterMs("", 0).has_value());
  CHECK_FALSE(ParseRetryAfterMs("-5", 0).has_value());
  CHECK_FALSE(ParseRetryAfterMs("1.5", 0).has_value());
  CHECK_FALSE(ParseRetryAfterMs("soon", 0).has_value());
  CHECK_FALSE(ParseRetryAfterMs("99999999999999999999", 0).has_value());
}

TEST_CASE("http: at most max_concurrency transfers run at once, the rest start in FIFO order", "[sync][http]") {
  Harness h(4);
  TestServer srv;
  constexpr int kRequests = 50;
  int completed = 0;
  size_t max_in_flight_seen = 0;
  std::vector<int> statuses;
  for (int i = 0; i < kRequests; ++i) {
    h.client().Send(Get(srv.Url("/hold?id=" + std::to_string(i))), [&](HttpResponse&& r) {
      ++completed;
      statuses.push_back(r.status);
      max_in_flight_seen = std::max(max_in_flight_seen, h.client().in_flight());
    });
  }
  CHECK(h.client().in_flight() == 4);
  CHECK(h.client().queued() == kRequests - 4);
  REQUIRE(h.RunUntil([&] { return completed == kRequests; }, 30000));
  CHECK(std::all_of(statuses.begin(), statuses.end(), [](int s) { return s == 200; }));
  CHECK(max_in_flight_seen <= 4);
  CHECK(srv.max_simultaneous() <= 4);
  CHECK(srv.max_simultaneous() >= 2);  // the limit was actually exercised
  std::vector<int> order = srv.arrivals();
  REQUIRE(order.size() == kRequests);
  // With 4 slots, the i-th request to reach the server can only be one of
  // the first i + 4 sent.
  for (size_t i = 0; i < order.size(); ++i) CHECK(order[i] < static_cast<int>(i) + 4);
  CHECK(srv.connections() <= 4);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: raising the concurrency limit starts queued requests", "[sync][http]") {
  Harness h(1);
  TestServer srv;
  int completed = 0;
  for (int i = 0; i < 4; ++i) h.client().Send(Get(srv.Url("/hold?id=" + std::to_string(i))), [&](HttpResponse&&) { ++completed; });
  CHECK(h.client().in_flight() == 1);
  CHECK(h.client().queued() == 3);
  h.client().SetMaxConcurrency(4);
  CHECK(h.client().in_flight() == 4);
  CHECK(h.client().queued() == 0);
  REQUIRE(h.RunUntil([&] { return completed == 4; }));
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a sheddable request finding max_queued requests waiting fails fast with queue_full; others queue",
          "[sync][http]") {
  Harness h(1);
  h.client().SetMaxQueued(2);
  TestServer srv;
  std::vector<HttpResponse> got(6);
  int completed = 0;
  for (int i = 0; i < 6; ++i) {
    HttpRequest req = Get(srv.Url("/hold?id=" + std::to_string(i)));
    req.sheddable = i < 5;  // the last one is a background request
    h.client().Send(std::move(req), [&, i](HttpResponse&& r) {
      got[i] = std::move(r);
      ++completed;
    });
  }
  // One in flight, two waiting, two refused, and the background one queued
  // whatever the limit.
  CHECK(h.client().in_flight() == 1);
  CHECK(h.client().queued() == 3);
  REQUIRE(h.RunUntil([&] { return completed == 6; }, 30000));
  for (int i : {0, 1, 2, 5}) {
    INFO(i);
    CHECK(got[i].status == 200);
    CHECK_FALSE(got[i].queue_full);
  }
  for (int i : {3, 4}) {
    INFO(i);
    CHECK(got[i].status == 0);
    CHECK(got[i].queue_full);
    CHECK(got[i].error.find("workos.max_queued_requests 2") != std::string::npos);
  }
  CHECK(srv.arrivals().size() == 4);  // the refused ones were never sent
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: sequential requests reuse one keep-alive connection, re-sent from the callback", "[sync][http]") {
  Harness h;
  TestServer srv;
  int completed = 0;
  int ok = 0;
  bool inside_send = false;
  bool called_inside_send = false;
  std::function<void()> next;
  next = [&] {
    inside_send = true;
    h.client().Send(Get(srv.Url("/ok")), [&](HttpResponse&& r) {
      called_inside_send |= inside_send;
      ++completed;
      if (r.status == 200 && r.body == "hello") ++ok;
      if (completed < 20) next();
    });
    inside_send = false;
  };
  next();
  REQUIRE(h.RunUntil([&] { return completed == 20; }));
  CHECK(ok == 20);
  CHECK_FALSE(called_inside_send);
  CHECK(srv.connections() == 1);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a dead keep-alive connection is retried on a fresh socket", "[sync][http]") {
  // The second request goes out on the cached connection, which the server
  // then closes without answering; curl closes that fd and reconnects inside
  // one socket_action, usually getting the same fd number back while the old
  // uv_poll_t is still closing.
  Harness h(1);
  TestServer srv;
  std::vector<HttpResponse> got;
  h.client().Send(Get(srv.Url("/drop-reused")), [&](HttpResponse&& r) { got.push_back(std::move(r)); });
  REQUIRE(h.RunUntil([&] { return got.size() == 1; }));
  for (int i = 0; i < 5; ++i) {
    h.client().Send(Get(srv.Url("/drop-reused")), [&](HttpResponse&& r) { got.push_back(std::move(r)); });
    REQUIRE(h.RunUntil([&] { return got.size() == static_cast<size_t>(i) + 2; }));
  }
  for (const HttpResponse& r : got) {
    CHECK(r.status == 200);
    CHECK(r.body == "fresh");
  }
  CHECK(srv.connections() == 6);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: response bodies are capped at 1 MiB", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::optional<HttpResponse> got;
  h.client().Send(Get(srv.Url("/big")), [&](HttpResponse&& r) { got = std::move(r); });
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 200);
  CHECK(got->body.size() == kMaxResponseBodyBytes);
  CHECK(got->truncated);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: a header with CR/LF fails the request without sending it, asynchronously", "[sync][http]") {
  Harness h;
  TestServer srv;
  std::optional<HttpResponse> got;
  HttpRequest req = Get(srv.Url("/ok"));
  req.headers = {{"X-Note", "a\r\nX-Injected: 1"}};
  h.client().Send(std::move(req), [&](HttpResponse&& r) { got = std::move(r); });
  CHECK_FALSE(got.has_value());
  REQUIRE(h.RunUntil([&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK(got->error == "invalid request header");
  CHECK(srv.requests() == 0);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: an exception thrown by a callback is contained", "[sync][http]") {
  Harness h;
  TestServer srv;
  bool second = false;
  h.client().Send(Get(srv.Url("/ok")), [](HttpResponse&&) { throw std::runtime_error("boom"); });
  h.client().Send(Get(srv.Url("/ok")), [&](HttpResponse&& r) { second = r.status == 200; });
  REQUIRE(h.RunUntil([&] { return second; }));
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: Shutdown cancels queued and in-flight requests and closes every handle", "[sync][http]") {
  Harness h(2);
  TestServer srv;
  std::vector<std::pair<int, HttpResponse>> got;
  for (int i = 0; i < 5; ++i) {
    h.client().Send(Get(srv.Url("/slow?ms=10000"), 20000),
                    [&got, i](HttpResponse&& r) { got.emplace_back(i, std::move(r)); });
  }
  REQUIRE(h.RunUntil([&] { return srv.requests() == 2; }));
  CHECK(h.client().in_flight() == 2);
  CHECK(h.client().queued() == 3);
  bool done = false;
  h.ShutdownWithoutWaiting([&] { done = true; });
  CHECK_FALSE(done);  // handles close asynchronously
  CHECK(got.size() == 5);  // cancellations are delivered by Shutdown itself
  REQUIRE(h.RunUntil([&] { return done; }));
  h.MarkShutdownCompleted();
  REQUIRE(got.size() == 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(got[i].first == i);
    CHECK(got[i].second.cancelled);
    CHECK(got[i].second.status == 0);
  }
  CHECK(h.client().in_flight() == 0);
  CHECK(h.client().queued() == 0);

  std::optional<HttpResponse> late;
  h.client().Send(Get(srv.Url("/ok")), [&](HttpResponse&& r) { late = std::move(r); });
  REQUIRE(late.has_value());  // nothing left to defer with: completes at once
  CHECK(late->cancelled);
  REQUIRE(h.Finish() == 0);
}

TEST_CASE("http: Shutdown from inside a response callback", "[sync][http]") {
  Harness h;
  TestServer srv;
  bool done = false;
  std::optional<HttpResponse> slow;
  h.client().Send(Get(srv.Url("/slow?ms=10000"), 20000), [&](HttpResponse&& r) { slow = std::move(r); });
  h.client().Send(Get(srv.Url("/ok")), [&](HttpResponse&& r) {
    CHECK(r.status == 200);
    h.ShutdownWithoutWaiting([&] { done = true; });
  });
  REQUIRE(h.RunUntil([&] { return done; }));
  h.MarkShutdownCompleted();
  REQUIRE(slow.has_value());
  CHECK(slow->cancelled);
  REQUIRE(h.Finish() == 0);
}

}  // namespace usersd::sync
