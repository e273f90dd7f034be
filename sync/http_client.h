// HttpClient: HTTP/1.1 requests on the daemon's libuv loop, driven by
// libcurl's multi interface.
//
// All WorkOS traffic goes through one HttpClient. It keeps connections alive
// between requests (the multi handle's connection cache), runs at most
// max_concurrency transfers at once and queues the rest in FIFO order. Every
// request ends in exactly one callback; transport failures (DNS, refused,
// reset, timeout, cancellation) are ordinary results with status == 0, never
// exceptions.
//
// Request headers carry the API key: nothing here ever logs them.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace usersd::sync {

// Calls curl_global_init exactly once per process. main calls it before any
// thread starts (libcurl's global init is not safe to race with other threads
// that use OpenSSL). Later calls, including the one HttpClient's constructor
// makes as a safety net, do nothing. Aborts if libcurl cannot initialise.
void GlobalHttpInit();

struct HttpRequest {
  std::string method;  // GET, PUT, POST, DELETE (any HTTP token is accepted)
  std::string url;     // http:// or https:// only
  // Sent as given; never logged. A value containing CR, LF or NUL fails the
  // request (status 0) instead of being sent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Sent when non-empty, and always for PUT/POST (as Content-Length: 0 when
  // empty). Content-Type comes from `headers`; without one none is sent.
  std::string body;
  int64_t timeout_ms = 10000;  // whole request; connect timeout = min(timeout, 5000)
  // A request its caller can answer without (a read on a client's request
  // path): refused at once, with queue_full, when max_queued requests are
  // already waiting. Other requests (the outbox, the poller, the JWKS) come
  // from producers bounded on their own and are always queued.
  bool sheddable = false;
};

struct HttpResponse {
  int status = 0;  // 0 = transport failure (DNS, refused, reset, timeout, cancelled)
  std::string body;  // at most kMaxResponseBodyBytes; the rest is dropped
  bool truncated = false;
  bool timed_out = false;
  bool cancelled = false;  // Shutdown() ran while the request was queued or in flight
  bool queue_full = false;  // a sheddable request refused by the bounded queue; nothing was sent
  std::string error;       // libcurl's error text when status == 0
  // From Retry-After (delta-seconds, or an HTTP-date relative to the client's
  // Clock::NowMs, clamped at 0). Unset when absent or unparsable.
  std::optional<int64_t> retry_after_ms;
};

inline constexpr size_t kMaxResponseBodyBytes = size_t{1} << 20;

using HttpCallback = std::function<void(HttpResponse&&)>;

// Parses a Retry-After value: delta-seconds ("7") or an HTTP-date in any of the
// three RFC 9110 forms. Returns milliseconds from now_ms (0 for a date in the
// past), or nullopt when the value is neither.
std::optional<int64_t> ParseRetryAfterMs(std::string_view value, int64_t now_ms);

// Thread affinity: loop thread only, including construction and destruction.
// Ownership: owns one CURLM, one uv_poll_t per socket libcurl asks it to watch
// and one uv_timer_t, all on `loop`. `loop` and `clock` must outlive it. The
// object never moves (handles point into it). Shutdown() must have completed
// (its `done` ran) before the destructor runs; the destructor aborts otherwise.
class HttpClient {
 public:
  // max_concurrency 0 is treated as 1.
  HttpClient(uv_loop_t* loop, const Clock& clock, uint32_t max_concurrency);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Queues the request. At most max_concurrency transfers run at once; the
  // rest wait in FIFO order. A sheddable request that finds max_queued
  // requests waiting is not queued: its callback gets status 0 and
  // queue_full (on a later loop turn, like every callback). `cb` runs exactly once on the loop thread, never
  // inside Send itself, and may call Send (or Shutdown) again. An exception
  // thrown by `cb` is logged and swallowed.
  // After Shutdown() has been called there is no loop handle left to defer
  // with, so Send runs `cb` immediately with cancelled=true: a callback that
  // re-sends must stop when it sees cancelled.
  void Send(HttpRequest req, HttpCallback cb);

  // For config reload. Raising the limit starts queued requests at once;
  // lowering it lets transfers in flight finish. 0 is treated as 1.
  void SetMaxConcurrency(uint32_t n);
  // How many requests may wait before a sheddable one is refused
  // (workos.max_queued_requests; default 64). 0 is treated as 1.
  void SetMaxQueued(size_t n);

  size_t in_flight() const;
  size_t queued() const;

  // Stops accepting work, cancels queued and in-flight requests (their
  // callbacks run before Shutdown returns, with cancelled=true, in the order
  // they were sent), releases libcurl while the loop still runs and closes
  // every uv handle. `done` runs on a later loop turn once all handles are
  // closed; after that the object may be destroyed. Call at most once.
  void Shutdown(std::function<void()> done);

 private:
  struct Impl;  // heap-allocated so the uv handles inside it never move
  std::unique_ptr<Impl> impl_;
};

}  // namespace usersd::sync
