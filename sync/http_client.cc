#include "sync/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/log.h"
#include "common/text.h"

namespace usersd::sync {
namespace {

constexpr int64_t kMaxConnectTimeoutMs = 5000;
// Idle easy handles kept for reuse. The connection cache lives in the multi
// handle, so this only saves allocations; a few are plenty.
constexpr size_t kMaxPooledEasyHandles = 8;

// Runs f, logging instead of propagating any exception: nothing may unwind
// through libcurl or libuv frames.
template <class F>
void Guarded(std::string_view where, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    LogError("http: exception caught at callback boundary", {{"where", std::string(where)}, {"error", e.what()}});
  } catch (...) {
    LogError("http: exception caught at callback boundary", {{"where", std::string(where)}, {"error", "unknown"}});
  }
}

// RFC 9110 token: what a method or header name may consist of.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool IsSafeHeaderValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

void GlobalHttpInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
      LogError("http: curl_global_init failed", {{"error", curl_easy_strerror(rc)}});
      std::abort();
    }
  });
}

std::optional<int64_t> ParseRetryAfterMs(std::string_view value, int64_t now_ms) {
  value = Trim(value, kLineBlanks);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 12) return std::nullopt;  // beyond 30,000 years: not a real delay
    int64_t secs = 0;
    for (char c : value) secs = secs * 10 + (c - '0');
    return secs * 1000;
  }
  // Every HTTP-date form names the day and month in letters; curl_getdate alone
  // is lenient enough to accept things like "-5".
  bool alpha = std::any_of(value.begin(), value.end(), [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; });
  if (!alpha) return std::nullopt;
  std::string copy(value);  // curl_getdate needs a NUL-terminated string
  time_t when = curl_getdate(copy.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  return std::max<int64_t>(int64_t{when} * 1000 - now_ms, 0);
}

struct HttpClient::Impl {
  // One request from Send to its callback.
  struct Transfer {
    ~Transfer() {
      if (headers != nullptr) curl_slist_free_all(headers);
    }
    uint64_t seq = 0;  // Send order, for delivering cancellations in order
    HttpRequest req;   // req.body is what CURLOPT_POSTFIELDS points at
    HttpCallback cb;
    HttpResponse resp;
    curl_slist* headers = nullptr;
    std::string retry_after;  // raw Retry-After of the final response
    char error[CURL_ERROR_SIZE] = {};
  };
  using TransferPtr = std::unique_ptr<Transfer>;

  // One socket libcurl asked us to watch. kPendingInit: the uv_poll_t is not
  // initialised (see AcquireSocket); kPolling: initialised and owned by curl's
  // socket; kClosing: uv_close called, freed in OnSocketClosed.
  struct Socket {
    enum class State { kPendingInit, kPolling, kClosing };
    uv_poll_t poll;
    Impl* impl = nullptr;
    curl_socket_t fd = CURL_SOCKET_BAD;
    int events = 0;  // UV_READABLE | UV_WRITABLE as curl last asked
    State state = State::kPendingInit;
  };

  Impl(uv_loop_t* l, const Clock& c, uint32_t n) : loop(l), clock(c), max_concurrency(std::max<uint32_t>(n, 1)) {}

  uv_loop_t* const loop;
  const Clock& clock;
  uint32_t max_concurrency;
  size_t max_queued = 64;
  CURLM* multi = nullptr;
  uv_timer_t timer;
  // Loop time (uv_now) at which curl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT).
  std::optional<uint64_t> curl_due;
  uint64_t next_seq = 0;

  std::deque<TransferPtr> queue;
  std::unordered_map<CURL*, TransferPtr> active;
  // Requests that failed before reaching curl (bad header, curl refused the
  // handle). They complete on the next timer tick so Send never calls back.
  std::vector<TransferPtr> deferred;
  std::vector<CURL*> idle_easy;

  std::unordered_set<Socket*> sockets;                   // kPendingInit or kPolling
  std::unordered_map<curl_socket_t, Socket*> closing;    // kClosing, by fd
  std::unordered_map<curl_socket_t, Socket*> waiting;    // kPendingInit until closing[fd] is gone

  size_t open_handles = 0;  // initialised uv handles whose close callback has not run
  bool shutting_down = false;
  std::function<void()> shutdown_done;

  // --- libcurl callbacks -------------------------------------------------

  static int OnCurlSocket(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) noexcept {
    auto* self = static_cast<Impl*>(userp);
    auto* sock = static_cast<Socket*>(socketp);
    int rc = -1;
    Guarded("curl socket callback", [&] {
      if (what == CURL_POLL_REMOVE) {
        if (sock != nullptr) {
          self->ReleaseSocket(sock);
          curl_multi_assign(self->multi, fd, nullptr);
        }
        rc = 0;
        return;
      }
      if (sock == nullptr) {
        sock = self->AcquireSocket(fd);
        if (sock == nullptr) return;  // -1: curl fails the transfers
        curl_multi_assign(self->multi, fd, sock);
      }
      int events = 0;
      if (what & CURL_POLL_IN) events |= UV_READABLE;
      if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
      if (self->WatchSocket(sock, events)) rc = 0;
    });
    return rc;
  }

  static int OnCurlTimer(CURLM*, long timeout_ms, void* userp) noexcept {
    auto* self = static_cast<Impl*>(userp);
    if (self->shutting_down) return 0;
    if (timeout_ms < 0) {
      self->curl_due.reset();
    } else {
      self->curl_due = uv_now(self->loop) + static_cast<uint64_t>(std::max<long>(timeout_ms, 1));
    }
    self->ArmTimer();
    return 0;
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* userp) noexcept {
    auto* t = static_cast<Transfer*>(userp);
    size_t total = size * n;
    try {
      std::string& body = t->resp.body;
      size_t room = kMaxResponseBodyBytes - body.size();
      if (total > room) {
        body.append(data, room);
        t->resp.truncated = true;  // keep reading so the connection stays reusable
      } else {
        body.append(data, total);
      }
    } catch (...) {
      return 0;  // CURLE_WRITE_ERROR
    }
    return total;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* userp) noexcept {
    auto* t = static_cast<Transfer*>(userp);
    size_t total = size * n;
    std::string_view line(data, total);
    try {
      if (line.substr(0, 5) == "HTTP/") {
        // A new response begins (the previous one was e.g. 100 Continue); only
        // the final response's header counts.
        t->retry_after.clear();
      } else if (size_t colon = line.find(':'); colon != std::string_view::npos &&
                                               EqualsIgnoreCaseAscii(Trim(line.substr(0, colon), kLineBlanks), "retry-after")) {
        t->retry_after = std::string(Trim(line.substr(colon + 1), kLineBlanks));
      }
    } catch (...) {
      return 0;
    }
    return total;
  }

  // --- libuv callbacks ---------------------------------------------------

  static void OnPoll(uv_poll_t* handle, int status, int events) noexcept {
    auto* sock = static_cast<Socket*>(handle->data);
    int flags = 0;
    if (status < 0) {
      flags = CURL_CSELECT_ERR;
    } else {
      if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
      if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    // curl may REMOVE (and we close) this socket inside the call: copy first.
    Impl* self = sock->impl;
    curl_socket_t fd = sock->fd;
    Guarded("poll callback", [&] { self->SocketAction(fd, flags); });
  }

  static void OnTimer(uv_timer_t* handle) noexcept {
    auto* self = static_cast<Impl*>(handle->data);
    Guarded("timer callback", [&] {
      if (self->curl_due && uv_now(self->loop) >= *self->curl_due) {
        self->curl_due.reset();
        self->SocketAction(CURL_SOCKET_TIMEOUT, 0);
        if (self->shutting_down) return;  // a callback called Shutdown
      }
      self->FlushDeferred();
      self->ArmTimer();
    });
  }

  static void OnSocketClosed(uv_handle_t* handle) noexcept {
    auto* sock = static_cast<Socket*>(handle->data);
    Impl* self = sock->impl;
    curl_socket_t fd = sock->fd;
    self->closing.erase(fd);
    delete sock;
    --self->open_handles;
    Guarded("socket close callback", [&] {
      if (auto it = self->waiting.find(fd); it != self->waiting.end()) {
        Socket* next = it->second;
        self->waiting.erase(it);
        self->StartPendingSocket(next);
      }
    });
    self->MaybeFinishShutdown();  // may destroy the client: nothing after this
  }

  static void OnTimerClosed(uv_handle_t* handle) noexcept {
    auto* self = static_cast<Impl*>(handle->data);
    --self->open_handles;
    self->MaybeFinishShutdown();
  }

  // --- sockets -------------------------------------------------------------

  Socket* AcquireSocket(curl_socket_t fd) {
    auto sock = std::make_unique<Socket>();
    sock->impl = this;
    sock->fd = fd;
    sock->poll.data = sock.get();
    if (closing.count(fd) != 0) {
      // curl closed this fd (CURL_POLL_REMOVE, then close) and the kernel gave
      // the number to the next socket curl opened, all inside one
      // curl_multi_socket_action: typically a reused keep-alive connection
      // that turned out dead, retried on a fresh one. The old uv_poll_t's close
      // is still pending, and a second poll handle must not be initialised on
      // the fd until it completes, so this one starts in OnSocketClosed.
      LogDebug("http: socket fd reused while its poll handle closes", {{"fd", std::to_string(fd)}});
      waiting[fd] = sock.get();
    } else {
      int rc = uv_poll_init_socket(loop, &sock->poll, fd);
      if (rc < 0) {
        LogError("http: uv_poll_init_socket failed", {{"error", uv_strerror(rc)}});
        return nullptr;
      }
      sock->state = Socket::State::kPolling;
      ++open_handles;
    }
    sockets.insert(sock.get());
    return sock.release();
  }

  bool WatchSocket(Socket* sock, int events) {
    sock->events = events;
    if (sock->state != Socket::State::kPolling) return true;  // applied in StartPendingSocket
    int rc = events == 0 ? uv_poll_stop(&sock->poll) : uv_poll_start(&sock->poll, events, OnPoll);
    if (rc < 0) {
      LogError("http: uv_poll_start failed", {{"error", uv_strerror(rc)}});
      return false;
    }
    return true;
  }

  // curl no longer needs the socket (it is about to close the fd).
  void ReleaseSocket(Socket* sock) {
    sockets.erase(sock);
    if (sock->state == Socket::State::kPendingInit) {
      if (auto it = waiting.find(sock->fd); it != waiting.end() && it->second == sock) waiting.erase(it);
      delete sock;
      return;
    }
    CloseSocket(sock);
  }

  void CloseSocket(Socket* sock) {
    sock->state = Socket::State::kClosing;
    closing[sock->fd] = sock;
    uv_close(reinterpret_cast<uv_handle_t*>(&sock->poll), OnSocketClosed);
  }

  // The fd's previous poll handle has closed; start watching for curl.
  void StartPendingSocket(Socket* sock) {
    if (shutting_down) return;  // Shutdown already freed it
    int rc = uv_poll_init_socket(loop, &sock->poll, sock->fd);
    if (rc == 0) {
      sock->state = Socket::State::kPolling;
      ++open_handles;
      if (sock->events == 0) return;
      rc = uv_poll_start(&sock->poll, sock->events, OnPoll);
      if (rc == 0) return;
    }
    LogError("http: cannot poll a curl socket", {{"error", uv_strerror(rc)}});
    // curl believes the socket is watched; report it failed so the transfer
    // ends now with an error instead of at its timeout.
    SocketAction(sock->fd, CURL_CSELECT_ERR);
  }

  // --- transfers -----------------------------------------------------------

  void SocketAction(curl_socket_t fd, int flags) {
    int running = 0;
    CURLMcode rc = curl_multi_socket_action(multi, fd, flags, &running);
    if (rc != CURLM_OK) LogError("http: curl_multi_socket_action failed", {{"error", curl_multi_strerror(rc)}});
    // curl skips its timer callback when the earliest timeout is unchanged, so
    // a timer that fired a little early (uv's loop time is coarse) would never
    // be re-armed. Ask curl directly instead of trusting the callback alone.
    long timeout_ms = -1;
    if (curl_multi_timeout(multi, &timeout_ms) == CURLM_OK) {
      if (timeout_ms < 0) {
        curl_due.reset();
      } else {
        curl_due = uv_now(loop) + static_cast<uint64_t>(std::max<long>(timeout_ms, 1));
      }
      ArmTimer();
    }
    ProcessCompleted();
  }

  void ProcessCompleted() {
    std::vector<TransferPtr> done;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      CURLcode result = msg->data.result;  // msg is invalid after remove_handle
      auto it = active.find(easy);
      if (it == active.end()) {
        LogError("http: curl finished an unknown transfer");
        continue;
      }
      TransferPtr t = std::move(it->second);
      active.erase(it);
      curl_multi_remove_handle(multi, easy);
      FillResponse(*t, easy, result);
      ReleaseEasy(easy);
      done.push_back(std::move(t));
    }
    StartQueued();  // before the callbacks, so requests they send queue behind these
    for (TransferPtr& t : done) Deliver(*t);
  }

  void FillResponse(Transfer& t, CURL* easy, CURLcode result) {
    HttpResponse& r = t.resp;
    long code = 0;
    if (result == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (result == CURLE_OK && code > 0) {
      r.status = static_cast<int>(code);
      if (!t.retry_after.empty()) r.retry_after_ms = ParseRetryAfterMs(t.retry_after, clock.NowMs());
      return;
    }
    r = HttpResponse{};
    r.timed_out = result == CURLE_OPERATION_TIMEDOUT;
    if (t.error[0] != '\0') {
      r.error = t.error;
    } else if (result != CURLE_OK) {
      r.error = curl_easy_strerror(result);
    } else {
      r.error = "no HTTP status in response";
    }
  }

  void StartQueued() {
    while (!shutting_down && !queue.empty() && active.size() < max_concurrency) {
      TransferPtr t = std::move(queue.front());
      queue.pop_front();
      Start(std::move(t));
    }
  }

  void Start(TransferPtr t) {
    CURL* easy = nullptr;
    if (!idle_easy.empty()) {
      easy = idle_easy.back();
      idle_easy.pop_back();
    } else {
      easy = curl_easy_init();
      if (easy == nullptr) return Fail(std::move(t), "curl_easy_init failed");
    }
    std::string err = Configure(*t, easy);
    if (!err.empty()) {
      ReleaseEasy(easy);
      return Fail(std::move(t), std::move(err));
    }
    auto it = active.emplace(easy, std::move(t)).first;
    CURLMcode rc = curl_multi_add_handle(multi, easy);
    if (rc != CURLM_OK) {
      TransferPtr back = std::move(it->second);
      active.erase(it);
      ReleaseEasy(easy);
      return Fail(std::move(back), curl_multi_strerror(rc));
    }
  }

  // Returns an error message, or "" when the handle is ready.
  static std::string Configure(Transfer& t, CURL* easy) {
    const HttpRequest& req = t.req;
    if (!IsToken(req.method)) return "invalid HTTP method";
    bool has_content_type = false;
    for (const auto& [name, value] : req.headers) {
      if (!IsToken(name) || !IsSafeHeaderValue(value)) return "invalid request header";
      if (EqualsIgnoreCaseAscii(name, "content-type")) has_content_type = true;
      // "Name;" is curl's spelling for a header with an empty value ("Name:" removes it).
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      curl_slist* next = curl_slist_append(t.headers, line.c_str());
      if (next == nullptr) return "out of memory";
      t.headers = next;
    }
    bool send_body = !req.body.empty() || req.method == "PUT" || req.method == "POST";
    if (send_body) {
      // Without these curl adds "Expect: 100-continue" (a round trip of delay)
      // and a form Content-Type the caller did not ask for.
      std::vector<const char*> extra = {"Expect:"};
      if (!has_content_type) extra.push_back("Content-Type:");
      for (const char* line : extra) {
        curl_slist* next = curl_slist_append(t.headers, line);
        if (next == nullptr) return "out of memory";
        t.headers = next;
      }
    }
    int64_t timeout = std::max<int64_t>(req.timeout_ms, 1);  // curl reads 0 as "no timeout"
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption opt, auto value) {
      if (rc == CURLE_OK) rc = curl_easy_setopt(easy, opt, value);
    };
    set(CURLOPT_URL, req.url.c_str());
    set(CURLOPT_PROTOCOLS_STR, "http,https");
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_TIMEOUT_MS, static_cast<long>(timeout));
    set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(timeout, kMaxConnectTimeoutMs)));
    set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    set(CURLOPT_SSL_VERIFYPEER, 1L);
    set(CURLOPT_SSL_VERIFYHOST, 2L);
    set(CURLOPT_USERAGENT, "usersd/" USERSD_VERSION);
    set(CURLOPT_ERRORBUFFER, t.error);
    set(CURLOPT_WRITEFUNCTION, &OnBody);
    set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
    set(CURLOPT_HEADERFUNCTION, &OnHeader);
    set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
    set(CURLOPT_HTTPHEADER, t.headers);
    if (send_body) {
      set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      set(CURLOPT_POSTFIELDS, req.body.data());
      if (req.method != "POST") set(CURLOPT_CUSTOMREQUEST, req.method.c_str());
    } else if (req.method == "GET") {
      set(CURLOPT_HTTPGET, 1L);
    } else if (req.method == "HEAD") {
      set(CURLOPT_NOBODY, 1L);
    } else {
      set(CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    if (rc != CURLE_OK) return curl_easy_strerror(rc);
    return {};
  }

  // Resets the handle before pooling it, so an idle handle never points into
  // a finished request (its body, header list or error buffer).
  void ReleaseEasy(CURL* easy) {
    if (!shutting_down && idle_easy.size() < kMaxPooledEasyHandles) {
      curl_easy_reset(easy);
      idle_easy.push_back(easy);
    } else {
      curl_easy_cleanup(easy);
    }
  }

  void Fail(TransferPtr t, std::string error) {
    t->resp = HttpResponse{};
    t->resp.error = std::move(error);
    deferred.push_back(std::move(t));
    ArmTimer();
  }

  void FlushDeferred() {
    std::vector<TransferPtr> batch;
    batch.swap(deferred);
    for (TransferPtr& t : batch) Deliver(*t);
  }

  static void Deliver(Transfer& t) {
    if (!t.cb) return;
    Guarded("response callback", [&] { t.cb(std::move(t.resp)); });
  }

  // One uv timer serves both curl's timeout and deferred completions.
  void ArmTimer() {
    if (shutting_down) return;
    uint64_t now = uv_now(loop);
    std::optional<uint64_t> due = curl_due;
    if (!deferred.empty()) due = now;
    if (!due) {
      uv_timer_stop(&timer);
      return;
    }
    // Never 0: a 0 ms timer started from a timer callback runs again in the
    // same pass of libuv's timer phase, starving I/O.
    uint64_t delay = *due > now ? *due - now : 1;
    uv_timer_start(&timer, OnTimer, delay, 0);
  }

  void MaybeFinishShutdown() {
    if (!shutting_down || open_handles != 0 || !shutdown_done) return;
    std::function<void()> done = std::move(shutdown_done);
    shutdown_done = nullptr;
    Guarded("shutdown done callback", [&] { done(); });
  }

  void ApplyLimits() {
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(max_concurrency));
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(max_concurrency));
  }
};

HttpClient::HttpClient(uv_loop_t* loop, const Clock& clock, uint32_t max_concurrency)
    : impl_(std::make_unique<Impl>(loop, clock, max_concurrency)) {
  GlobalHttpInit();
  Impl& s = *impl_;
  s.multi = curl_multi_init();
  if (s.multi == nullptr) {
    LogError("http: curl_multi_init failed");
    std::abort();
  }
  curl_multi_setopt(s.multi, CURLMOPT_SOCKETFUNCTION, &Impl::OnCurlSocket);
  curl_multi_setopt(s.multi, CURLMOPT_SOCKETDATA, impl_.get());
  curl_multi_setopt(s.multi, CURLMOPT_TIMERFUNCTION, &Impl::OnCurlTimer);
  curl_multi_setopt(s.multi, CURLMOPT_TIMERDATA, impl_.get());
  curl_multi_setopt(s.multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_NOTHING));
  s.ApplyLimits();
  uv_timer_init(loop, &s.timer);  // cannot fail
  s.timer.data = impl_.get();
  ++s.open_handles;
}

HttpClient::~HttpClient() {
  if (impl_->multi != nullptr || impl_->open_handles != 0) {
    LogError("http: HttpClient destroyed before Shutdown completed");
    std::abort();
  }
}

void HttpClient::Send(HttpRequest req, HttpCallback cb) {
  Impl& s = *impl_;
  auto t = std::make_unique<Impl::Transfer>();
  t->seq = s.next_seq++;
  t->req = std::move(req);
  t->cb = std::move(cb);
  if (s.shutting_down) {
    t->resp.cancelled = true;
    t->resp.error = "http client is shut down";
    Impl::Deliver(*t);
    return;
  }
  if (t->req.sheddable && s.active.size() >= s.max_concurrency && s.queue.size() >= s.max_queued) {
    // Fail fast: a caller waiting behind this many reads would time out
    // anyway, and an unbounded queue lets one client hold the daemon's
    // memory and WorkOS budget.
    std::string error =
        "too many WorkOS requests waiting (workos.max_queued_requests " + std::to_string(s.max_queued) + ")";
    s.Fail(std::move(t), std::move(error));
    s.deferred.back()->resp.queue_full = true;
    return;
  }
  s.queue.push_back(std::move(t));
  s.StartQueued();
}

void HttpClient::SetMaxQueued(size_t n) {
  impl_->max_queued = std::max<size_t>(n, 1);
}

void HttpClient::SetMaxConcurrency(uint32_t n) {
  Impl& s = *impl_;
  s.max_concurrency = std::max<uint32_t>(n, 1);
  if (s.shutting_down) return;
  s.ApplyLimits();
  s.StartQueued();
}

size_t HttpClient::in_flight() const { return impl_->active.size(); }
size_t HttpClient::queued() const { return impl_->queue.size(); }

void HttpClient::Shutdown(std::function<void()> done) {
  Impl& s = *impl_;
  if (s.shutting_down) {
    LogError("http: Shutdown called twice");
    std::abort();
  }
  s.shutting_down = true;
  s.shutdown_done = std::move(done);

  std::vector<Impl::TransferPtr> finished;
  auto cancel = [&](Impl::TransferPtr t) {
    t->resp = HttpResponse{};
    t->resp.cancelled = true;
    t->resp.error = "cancelled: http client shutting down";
    finished.push_back(std::move(t));
  };
  // Removing a handle may call OnCurlSocket(REMOVE), which closes that poll
  // handle normally; it never touches `active`.
  for (auto& [easy, t] : s.active) {
    curl_multi_remove_handle(s.multi, easy);
    curl_easy_cleanup(easy);
    cancel(std::move(t));
  }
  s.active.clear();
  for (auto& t : s.queue) cancel(std::move(t));
  s.queue.clear();
  for (auto& t : s.deferred) finished.push_back(std::move(t));  // already failed; keep their error
  s.deferred.clear();
  std::sort(finished.begin(), finished.end(), [](const auto& a, const auto& b) { return a->seq < b->seq; });
  for (CURL* easy : s.idle_easy) curl_easy_cleanup(easy);
  s.idle_easy.clear();

  // curl_multi_cleanup closes the cached keep-alive connections and may call
  // the socket callback for them; detach first and close our handles
  // ourselves, so no callback reaches a half-dismantled client and no poll
  // handle watches an fd after curl has closed it.
  curl_multi_setopt(s.multi, CURLMOPT_SOCKETFUNCTION, nullptr);
  curl_multi_setopt(s.multi, CURLMOPT_TIMERFUNCTION, nullptr);
  for (Impl::Socket* sock : s.sockets) {
    if (sock->state == Impl::Socket::State::kPolling) {
      s.CloseSocket(sock);
    } else {
      delete sock;  // kPendingInit: no uv handle behind it
    }
  }
  s.sockets.clear();
  s.waiting.clear();
  curl_multi_cleanup(s.multi);
  s.multi = nullptr;

  s.curl_due.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&s.timer), &Impl::OnTimerClosed);

  for (auto& t : finished) Impl::Deliver(*t);
}

}  // namespace usersd::sync
