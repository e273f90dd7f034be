#include "common/uv_timer.h"

#include <cassert>
#include <exception>
#include <string>
#include <utility>

#include "common/log.h"

namespace usersd {

struct UvTimer::State {
  uv_timer_t handle{};
  std::function<void()> cb;
  bool replaced = false;  // Start() ran while `cb` was running (see OnTimer)
};

UvTimer::UvTimer(UvTimer&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

UvTimer& UvTimer::operator=(UvTimer&& other) noexcept {
  if (this != &other) {
    Close();
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

void UvTimer::Start(uv_loop_t* loop, uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> cb) {
  if (state_ == nullptr) {
    state_ = new State;
    uv_timer_init(loop, &state_->handle);  // cannot fail
    state_->handle.data = state_;
  }
  assert(state_->handle.loop == loop);
  state_->cb = std::move(cb);
  state_->replaced = true;
  uv_timer_start(&state_->handle, &UvTimer::OnTimer, timeout_ms, repeat_ms);
}

void UvTimer::Stop() {
  if (state_ != nullptr) uv_timer_stop(&state_->handle);
}

void UvTimer::Close() {
  State* s = std::exchange(state_, nullptr);
  if (s == nullptr) return;
  uv_timer_stop(&s->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->handle), [](uv_handle_t* h) { delete static_cast<State*>(h->data); });
}

bool UvTimer::active() const {
  return state_ != nullptr && uv_is_active(reinterpret_cast<const uv_handle_t*>(&state_->handle)) != 0;
}

void UvTimer::OnTimer(uv_timer_t* handle) noexcept {
  auto* s = static_cast<State*>(handle->data);
  // The callback may Start() (replacing itself), Close() or destroy the
  // owner. The State outlives this call either way (it is freed in the close
  // callback, a later phase of the loop), but the std::function being
  // replaced must not be destroyed while it runs: run a moved-out copy and
  // put it back only if nothing replaced it and the handle is still open.
  std::function<void()> cb = std::move(s->cb);
  s->cb = nullptr;
  s->replaced = false;
  try {
    if (cb) cb();
  } catch (const std::exception& e) {
    LogError("exception caught at a timer callback", {{"error", e.what()}});
  } catch (...) {
    LogError("exception caught at a timer callback", {{"error", "unknown"}});
  }
  if (!s->replaced && !uv_is_closing(reinterpret_cast<uv_handle_t*>(handle))) s->cb = std::move(cb);
}

}  // namespace usersd
