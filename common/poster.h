// Poster: the one way another thread reaches the event loop.
//
// Post() may be called from any thread; the function runs later on the loop
// thread, in order of posting. Built on a single uv_async_t (libuv coalesces
// wakeups, so the queue is drained completely on each wakeup).
// Ownership: owns its uv_async_t; Close() must be called on the loop thread and
// the loop run until the close callback fires before the Poster is destroyed.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>

#include "common/mutex.h"

namespace usersd {

class Poster {
 public:
  explicit Poster(uv_loop_t* loop);
  ~Poster();
  Poster(const Poster&) = delete;
  Poster& operator=(const Poster&) = delete;

  // Thread-safe. After Close(), posted functions are dropped.
  void Post(std::function<void()> fn);
  // Loop thread only. Runs what is queued, then closes the handle.
  void Close();

 private:
  static void OnAsync(uv_async_t* h);
  void Drain();

  uv_async_t async_;
  Mutex mu_;
  std::deque<std::function<void()>> queue_ GUARDED_BY(mu_);
  bool closing_ GUARDED_BY(mu_) = false;
  bool closed_ = false;  // set by the close callback (loop thread)
};

}  // namespace usersd
