// TEMPORARY placeholder so the daemon links while the poller is being
// written (issue 3). Replaced wholesale by the real implementation.
#include "sync/events_poller.h"

namespace usersd::sync {
struct EventsPoller::Impl {};
EventsPoller::EventsPoller(uv_loop_t*, WorkosClient*, store::Store*, store::Writer*, const Clock&, int64_t)
    : impl_(std::make_unique<Impl>()) {}
EventsPoller::~EventsPoller() = default;
void EventsPoller::Start() {}
void EventsPoller::PollNow(std::function<void(Status)> done) { done(Status::Unavailable("not implemented yet")); }
void EventsPoller::SetPollSeconds(int64_t) {}
void EventsPoller::Close() {}
std::optional<std::string> EventsPoller::cursor() const { return std::nullopt; }
EventsStats EventsPoller::stats() const { return {}; }
}  // namespace usersd::sync
