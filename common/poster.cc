#include "common/poster.h"

#include <cassert>

#include "common/log.h"

namespace usersd {

Poster::Poster(uv_loop_t* loop) {
  uv_async_init(loop, &async_, &Poster::OnAsync);
  async_.data = this;
}

Poster::~Poster() { assert(closed_ && "Poster destroyed before its uv_async_t closed"); }

void Poster::Post(std::function<void()> fn) {
  MutexLock lock(mu_);
  if (closing_) return;
  queue_.push_back(std::move(fn));
  uv_async_send(&async_);
}

void Poster::OnAsync(uv_async_t* h) { static_cast<Poster*>(h->data)->Drain(); }

void Poster::Drain() {
  std::deque<std::function<void()>> batch;
  {
    MutexLock lock(mu_);
    batch.swap(queue_);
  }
  for (auto& fn : batch) {
    // No exception may cross back into libuv.
    try {
      fn();
    } catch (const std::exception& e) {
      LogError("posted task threw", {{"error", e.what()}});
    } catch (...) {
      LogError("posted task threw a non-standard exception");
    }
  }
}

void Poster::Close() {
  {
    MutexLock lock(mu_);
    if (closing_) return;
  }
  Drain();
  {
    MutexLock lock(mu_);
    closing_ = true;
    queue_.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), [](uv_handle_t* h) {
    static_cast<Poster*>(h->data)->closed_ = true;
  });
}

}  // namespace usersd
