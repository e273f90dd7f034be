// UvTimer: one libuv timer with exactly one owner, safe to destroy at any
// time on the loop thread.
//
// The uv_timer_t lives on the heap, apart from the UvTimer. Close() (and the
// destructor, which calls it) stops the timer and uv_closes the handle; the
// heap part, and the callback with whatever it captured, are freed in the
// close callback. So the owner may be destroyed before the loop runs that
// callback, also from inside the timer's own callback (CMake's
// cm::uv_timer_ptr works the same way). The loop must still run once after
// Close() before uv_loop_close, as for any handle.
//
// The callback never runs after Stop(), Close() or destruction. An exception
// it throws is logged and swallowed: none reaches libuv.
//
// Loop thread only. Movable, not copyable.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>

namespace usersd {

class UvTimer {
 public:
  UvTimer() = default;
  ~UvTimer() { Close(); }
  UvTimer(UvTimer&& other) noexcept;
  UvTimer& operator=(UvTimer&& other) noexcept;
  UvTimer(const UvTimer&) = delete;
  UvTimer& operator=(const UvTimer&) = delete;

  // Arms the timer: `cb` runs after `timeout_ms`, then every `repeat_ms`
  // (0: once). Initialises the handle on `loop` on first use (or after
  // Close()); a timer already open keeps its loop, which must be `loop`.
  // Re-arming replaces the callback, also from inside the callback.
  void Start(uv_loop_t* loop, uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> cb);
  // Disarms; the handle stays open for the next Start().
  void Stop();
  // Stops and closes the handle (freed in the close callback). A later
  // Start() opens a new one.
  void Close();

  // Armed: the callback will run unless stopped.
  bool active() const;
  // A handle is open (Start() ran and Close() has not).
  bool open() const { return state_ != nullptr; }

 private:
  struct State;
  static void OnTimer(uv_timer_t* handle) noexcept;
  State* state_ = nullptr;
};

}  // namespace usersd
