// TEMPORARY placeholder so the daemon links while the sender is being
// written (issue 3). Replaced wholesale by the real implementation.
#include "sync/outbox_sender.h"

namespace usersd::sync {
struct OutboxSender::Impl {};
int64_t BackoffDelayMs(const OutboxOptions& o, uint32_t, double, std::optional<int64_t>) { return o.initial_backoff_ms; }
OutboxSender::OutboxSender(uv_loop_t*, WorkosClient*, store::Store*, store::Writer*, const Clock&, OutboxOptions, Random)
    : impl_(std::make_unique<Impl>()) {}
OutboxSender::~OutboxSender() = default;
void OutboxSender::Start() {}
void OutboxSender::Kick() {}
void OutboxSender::SetOptions(OutboxOptions) {}
void OutboxSender::Close() {}
OutboxStats OutboxSender::stats() const { return {}; }
}  // namespace usersd::sync
