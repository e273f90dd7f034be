#include "sync/events_poller.h"

#include <algorithm>
#include <cstdlib>
#include <unordered_map>
#include <vector>

#include "common/backoff.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/uv_timer.h"
#include "domain/remote_user.h"
#include "store/apply_nested.h"
#include "store/meta_keys.h"
#include "sync/workos_pages.h"

namespace usersd::sync {

using domain::RemoteOutcome;
using store::WriteTxn;

namespace {

// Persisting the caught-up time costs a commit; after an empty poll it is
// written only when the stored one is older than this.
constexpr int64_t kCaughtUpPersistMs = 3600 * 1000;
// The longest wait between two polls while WorkOS refuses the API key.
constexpr int64_t kUnauthorizedMaxWaitMs = 300 * 1000;

// A user event to apply.
struct Event {
  FeedEvent ev;
};

struct PageOutcome {
  uint64_t ignored = 0;
  uint64_t stale = 0;
  std::map<std::string, uint64_t> applied;  // by event type
};

std::optional<int64_t> MetaInt(store::ReadTxn& t, std::string_view key) {
  auto v = t.GetMeta(key);
  if (!v.ok() || !v->has_value() || (*v)->empty()) return std::nullopt;
  char* end = nullptr;
  long long n = std::strtoll((*v)->c_str(), &end, 10);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return n;
}

// Applies one event in `t` (a nested transaction of the page).
Result<RemoteOutcome> ApplyEvent(WriteTxn& t, const FeedEvent& ev, const domain::MutationContext& ctx) {
  if (ev.workos_id.empty()) return Status::InvalidArgument("event data has no user id");
  auto profile = ParseWorkosUser(ev.data);
  if (ev.type == "user.deleted") {
    if (profile && profile->workos_id.empty()) profile->workos_id = ev.workos_id;
    return domain::ApplyRemoteDelete(t, ev.workos_id, ctx, profile ? &*profile : nullptr);
  }
  if (!profile) return Status::InvalidArgument("event data is not a user");
  return domain::ApplyRemoteUser(t, *profile, ctx);
}

}  // namespace

struct EventsPoller::Impl {
  Impl(uv_loop_t* l, WorkosApi* w, store::Store* s, store::Writer* wr, const Clock& c, EventsOptions o)
      : loop(l), workos(w), store(s), writer(wr), clock(c), opt(o) {}

  uv_loop_t* loop;
  WorkosApi* workos;
  store::Store* store;
  store::Writer* writer;
  const Clock& clock;
  EventsOptions opt;
  std::function<Status(const std::string&)> request_reconcile;
  bool cursor_rejected = false;  // the server refused the cursor; not sent again until Load()
  std::function<bool()> reconciling;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  UvTimer timer;
  bool started = false;
  bool closed = false;
  bool polling = false;
  bool warned_newest_first = false;
  std::vector<std::function<void(Status)>> waiting;
  std::optional<std::string> cursor;
  int64_t range_start_ms = 0;
  int64_t caught_up_persisted_ms = 0;
  uint32_t unauthorized_polls = 0;  // polls in a row that WorkOS answered 401/403
  bool logged_skip = false;         // the range_start skip was logged (once per process)
  EventsStats stats;

  void Load() {
    cursor.reset();
    cursor_rejected = false;
    stats.cursor_at_ms = 0;
    range_start_ms = store->created_at_ms();
    auto txn = store->BeginRead();
    if (!txn.ok()) return;
    auto c = txn->GetMeta(store::kMetaEventsCursor);
    if (c.ok() && c->has_value() && !(*c)->empty()) cursor = **c;
    stats.cursor_at_ms = MetaInt(*txn, store::kMetaEventsCursorAt).value_or(0);
    if (auto rs = MetaInt(*txn, store::kMetaEventsRangeStart)) range_start_ms = *rs;
    caught_up_persisted_ms = MetaInt(*txn, store::kMetaEventsCaughtUpAt).value_or(0);
    // Before the first caught-up poll, the feed position is as old as where
    // it starts: the cursor event, or range_start.
    // A cursor taken from events before range_start (a server that ignores
    // range_start, see OnPage) stands for range_start, not for its own time.
    stats.caught_up_ms =
        caught_up_persisted_ms
            ? caught_up_persisted_ms
            : (cursor && stats.cursor_at_ms ? std::max(stats.cursor_at_ms, range_start_ms) : range_start_ms);
  }

  void ArmNextPoll() {
    int64_t delay = PollDelayMs(opt.poll_seconds, opt.random ? opt.random() : 0.0);
    // While WorkOS refuses the API key, each refused poll doubles the wait
    // (from the poll interval, at least a second, up to 5 minutes); the
    // first accepted answer ends it, and App wakes the poller when another
    // request finds the key accepted again.
    if (unauthorized_polls > 0) {
      delay = Backoff{.initial_ms = std::max<int64_t>(delay, 1000), .max_ms = kUnauthorizedMaxWaitMs}.DelayMs(
          unauthorized_polls);
    }
    stats.next_poll_delay_ms = delay;
    Arm(delay);
  }

  void Arm(int64_t delay_ms) {
    if (!started || closed) return;
    if (opt.poll_seconds <= 0) {
      timer.Stop();
      return;
    }
    timer.Start(loop, static_cast<uint64_t>(delay_ms), 0, [this] { Poll([](Status) {}); });
  }

  void Poll(std::function<void(Status)> done) {
    if (closed) return done(Status::Unavailable("shutting down"));
    if (!workos->Configured()) {
      done(Status::Unavailable("WorkOS is not configured"));
      ArmNextPoll();
      return;
    }
    if (reconciling && reconciling()) {
      // The reconciliation replaces the feed position when it finishes.
      done(Status::Unavailable("a reconciliation is running"));
      ArmNextPoll();
      return;
    }
    int64_t now = clock.NowMs();
    bool too_old = opt.max_cursor_age_ms > 0 && now - stats.caught_up_ms > opt.max_cursor_age_ms;
    if ((too_old || cursor_rejected) && request_reconcile) {
      const char* reason = cursor_rejected ? "cursor_rejected" : "cursor_too_old";
      Status st = request_reconcile(reason);
      if (st.ok() && too_old && !cursor_rejected) {
        LogWarn("events: the feed position is older than sync.reconcile.max_cursor_age_days; reconciling instead",
                {{"cursor", cursor.value_or("")}, {"caught_up_at", FormatIso8601Ms(stats.caught_up_ms)}});
      } else if (!st.ok()) {
        LogDebug("events: waiting for a reconciliation", {{"reason", reason}, {"error", st.message()}});
      }
      done(Status::Unavailable(st.ok() ? std::string("the events cursor is ") +
                                             (cursor_rejected ? "rejected" : "too old") + "; a reconciliation runs"
                                       : "the events cursor needs a reconciliation: " + st.message()));
      ArmNextPoll();
      return;
    }
    if (too_old) {
      LogWarn("events: the feed position is older than sync.reconcile.max_cursor_age_days",
              {{"cursor", cursor.value_or("")}, {"caught_up_at", FormatIso8601Ms(stats.caught_up_ms)}});
    }
    waiting.push_back(std::move(done));
    if (polling) return;
    polling = true;
    ++stats.polls;
    stats.last_poll_ms = now;
    stats.last_poll_events = 0;
    FetchPage();
  }

  void FetchPage() {
    std::optional<std::string> range_start;
    if (!cursor) range_start = FormatIso8601Ms(range_start_ms);
    bool with_cursor = cursor.has_value();
    workos->ListEvents(cursor, range_start, kPageLimit, [this, alive = alive, with_cursor](HttpResponse&& r) {
      if (!*alive) return;
      OnPage(std::move(r), with_cursor);
    });
  }

  void OnPage(HttpResponse&& r, bool with_cursor) {
    if (closed || r.cancelled) return Finish(Status::Unavailable("shutting down"));
    if (IsUnauthorized(r)) {
      // Not a cursor problem: the key. WorkosClient logs it (once a minute);
      // the next poll waits longer (ArmNextPoll).
      ++unauthorized_polls;
      return Finish(Status::Unavailable("WorkOS refuses the API key (HTTP " + std::to_string(r.status) + ")"),
                    /*quiet=*/true);
    }
    unauthorized_polls = 0;
    if (r.status != 200) {
      bool rejected = with_cursor && (r.status == 400 || r.status == 404 || r.status == 410 || r.status == 422);
      if (rejected) {
        LogWarn("events: WorkOS rejected the cursor; reconciling",
                {{"cursor", cursor.value_or("")}, {"status", std::to_string(r.status)}, {"body", r.body.substr(0, 200)}});
        if (request_reconcile) {
          cursor_rejected = true;
          Status st = request_reconcile("cursor_rejected");
          if (!st.ok()) LogDebug("events: waiting for a reconciliation", {{"error", st.message()}});
        }
      }
      return Finish(Status::Unavailable(r.status == 0 ? "events poll failed: " + r.error
                                                      : "events poll returned HTTP " + std::to_string(r.status)));
    }
    auto page = ParseEventsPage(r.body);
    if (!page.ok()) return Finish(page.status());
    ++stats.pages;
    const size_t page_size = page->entries;
    stats.last_poll_events += page_size;
    if (page->newest_first) {
      ++stats.newest_first_pages;
      if (!warned_newest_first) {
        warned_newest_first = true;
        LogWarn("events: WorkOS returned a page newest first although order=asc was sent; applying it oldest first",
                {{"events", std::to_string(page->events.size())}});
      }
    }
    for (const auto& ev : page->events) stats.newest_seen_ms = std::max(stats.newest_seen_ms, ev.pos.at_ms);
    const bool had_events = !page->events.empty();
    const std::optional<FeedPos> page_last =
        had_events ? std::optional<FeedPos>(page->events.back().pos) : std::nullopt;
    const bool newest_first = page->newest_first;
    const bool full = page_size >= static_cast<size_t>(kPageLimit);
    const bool shows_cursor = cursor && std::any_of(page->events.begin(), page->events.end(),
                                                    [&](const FeedEvent& ev) { return ev.pos.id == *cursor; });

    // Keep what is newer than the feed position.
    const std::optional<FeedPos> floor =
        cursor ? std::optional<FeedPos>(FeedPos{stats.cursor_at_ms, *cursor}) : std::nullopt;
    uint64_t behind = 0;
    std::vector<FeedEvent> ahead = EventsAfter(std::move(page->events), floor, range_start_ms, &behind);
    // A cursor taken from a page of events before range_start (SkipTo) is
    // itself before range_start: what follows it up to range_start is
    // skipped too, until the position reaches range_start.
    const bool before_start = !cursor || stats.cursor_at_ms < range_start_ms;
    if (cursor && before_start) {
      auto old = std::remove_if(ahead.begin(), ahead.end(),
                                [&](const FeedEvent& ev) { return ev.pos.at_ms < range_start_ms; });
      behind += static_cast<uint64_t>(ahead.end() - old);
      ahead.erase(old, ahead.end());
    }
    stats.behind_cursor += behind;
    uint64_t ignored = page->unreadable;
    if (ahead.empty()) {
      stats.ignored += ignored;
      if (!had_events) {
        // Caught up.
        stats.stuck = false;
        return CaughtUp();
      }
      if (before_start) {
        // No position yet (or one still before range_start), and every event
        // of the page is before range_start:
        // a server that ignores range_start serves the feed from its start.
        // Nothing here is to be applied, so the page's last event becomes the
        // position and reading goes on from there (SPEC 4); waiting would get
        // the same page back forever.
        return SkipTo(*page_last, full, behind);
      }
      // Every event is at or before the cursor. Stuck when the feed cannot
      // move: a full page (what comes after it is never served), a page that
      // came newest first, or one without the cursor event (`after` walking
      // to older events, as `order=desc` does). A short oldest-first page
      // that still shows the cursor event is a server that ignores `after`
      // with nothing new yet: a new event would be on that page.
      if (!full && !newest_first && shows_cursor) {
        stats.stuck = false;
        return CaughtUp();
      }
      if (!stats.stuck) {
        LogWarn("events: the page had events but none newer than the cursor; the feed is not moving",
                {{"cursor", cursor.value_or("")}, {"events", std::to_string(behind)}});
      }
      stats.stuck = true;
      return Finish(Status::Ok());
    }
    const FeedPos new_pos = ahead.back().pos;

    // Of several events of one user, only the last matters (each carries the
    // whole user); applying just that one, in the order of these last
    // occurrences, keeps email hand-overs between users in order.
    std::vector<Event> events;
    for (auto& ev : LastPerUser(std::move(ahead), &ignored)) events.push_back(Event{std::move(ev)});
    stats.ignored += ignored;

    int64_t now = clock.NowMs();
    auto outcome = std::make_shared<PageOutcome>();
    const size_t page_events = events.size();
    writer->Submit(
        [events = std::move(events), new_pos, now, outcome, full, sync = opt.sync](WriteTxn& t) -> Status {
          *outcome = PageOutcome{};
          const domain::MutationContext ctx{now, sync.get()};
          for (const auto& ev : events) {
            auto [must_return, r] =
                store::ApplyNested(t, [&](WriteTxn& child) { return ApplyEvent(child, ev.ev, ctx); });
            USERSD_RETURN_IF_ERROR(must_return);
            if (r.ok()) {
              switch (*r) {
                case RemoteOutcome::kCreated:
                case RemoteOutcome::kUpdated:
                case RemoteOutcome::kDeleted: ++outcome->applied[ev.ev.type]; break;
                case RemoteOutcome::kStale: ++outcome->stale; break;
                case RemoteOutcome::kUnchanged: ++outcome->ignored; break;
              }
            } else {
              LogWarn("events: skipped an event that cannot be applied",
                      {{"event", ev.ev.pos.id}, {"type", ev.ev.type}, {"error", r.status().ToString()}});
              ++outcome->ignored;
            }
          }
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCursor, new_pos.id));
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCursorAt, std::to_string(new_pos.at_ms)));
          // A short page reaches the end of the feed.
          if (!full) USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCaughtUpAt, std::to_string(now)));
          return Status::Ok();
        },
        [this, alive = alive, outcome, new_pos, full, now, page_events](Status st) {
          if (!*alive) return;
          if (closed) return Finish(Status::Unavailable("shutting down"));
          if (!st.ok()) return Finish(st);
          cursor = new_pos.id;
          stats.cursor_at_ms = new_pos.at_ms;
          stats.stuck = false;
          // Any event may have queued a publish (a document older than what
          // this host holds), not only those that changed the user.
          if (page_events > 0 && opt.kick_outbox) opt.kick_outbox();
          for (const auto& [type, n] : outcome->applied) {
            stats.applied += n;
            stats.applied_by_type[type] += n;
          }
          stats.ignored += outcome->ignored;
          stats.stale += outcome->stale;
          if (full) return FetchPage();
          caught_up_persisted_ms = now;
          stats.caught_up_ms = now;
          Finish(Status::Ok());
        });
  }

  // Moves the position to `pos` without applying anything (a page of events
  // before range_start), in one transaction; then reads the next page, or,
  // after a short page, counts the feed as read to its end.
  void SkipTo(const FeedPos& pos, bool full, uint64_t skipped) {
    if (!logged_skip) {
      logged_skip = true;
      LogInfo(
          "events: the server sent events from before range_start (it ignores range_start); skipping them",
          {{"range_start", FormatIso8601Ms(range_start_ms)}, {"through", pos.id}, {"events", std::to_string(skipped)}});
    }
    int64_t now = clock.NowMs();
    writer->Submit(
        [pos, full, now](WriteTxn& t) -> Status {
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCursor, pos.id));
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCursorAt, std::to_string(pos.at_ms)));
          if (!full) USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCaughtUpAt, std::to_string(now)));
          return Status::Ok();
        },
        [this, alive = alive, pos, full, now](Status st) {
          if (!*alive) return;
          if (closed) return Finish(Status::Unavailable("shutting down"));
          if (!st.ok()) return Finish(st);
          cursor = pos.id;
          stats.cursor_at_ms = pos.at_ms;
          stats.stuck = false;
          if (full) return FetchPage();
          caught_up_persisted_ms = now;
          stats.caught_up_ms = now;
          Finish(Status::Ok());
        });
  }

  // An empty page: the feed is read to its end. The time is persisted now
  // and then (it decides whether a restart much later must reconcile).
  void CaughtUp() {
    int64_t now = clock.NowMs();
    stats.caught_up_ms = now;
    if (now - caught_up_persisted_ms < kCaughtUpPersistMs) return Finish(Status::Ok());
    writer->Submit([now](WriteTxn& t) { return t.PutMeta(store::kMetaEventsCaughtUpAt, std::to_string(now)); },
                   [this, alive = alive, now](Status st) {
                     if (!*alive) return;
                     if (st.ok()) caught_up_persisted_ms = now;
                     Finish(st);
                   });
  }

  void Finish(Status st, bool quiet = false) {
    polling = false;
    if (st.ok()) {
      stats.last_success_ms = clock.NowMs();
      LogDebug("events: poll done", {{"events", std::to_string(stats.last_poll_events)},
                                     {"cursor", cursor.value_or("")},
                                     {"stuck", stats.stuck ? "true" : "false"}});
    } else {
      ++stats.failures;
      if (closed) {
      } else if (quiet) {
        LogDebug("events poll failed", {{"error", st.ToString()}});
      } else {
        LogWarn("events poll failed", {{"error", st.ToString()}});
      }
    }
    auto w = std::move(waiting);
    waiting.clear();
    for (auto& f : w) f(st);
    ArmNextPoll();
  }
};

int64_t PollDelayMs(int64_t poll_seconds, double r) {
  const int64_t full = poll_seconds * 1000;
  r = std::clamp(r, 0.0, 1.0);
  return full - static_cast<int64_t>(static_cast<double>(full / 10) * r);
}

EventsPoller::EventsPoller(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer,
                           const Clock& clock, EventsOptions options)
    : impl_(std::make_unique<Impl>(loop, workos, store, writer, clock, options)) {}

EventsPoller::~EventsPoller() {
  *impl_->alive = false;
}

void EventsPoller::SetReconcileHooks(std::function<Status(const std::string&)> request_reconcile,
                                     std::function<bool()> reconciling) {
  impl_->request_reconcile = std::move(request_reconcile);
  impl_->reconciling = std::move(reconciling);
}

void EventsPoller::Start() {
  Impl& m = *impl_;
  if (m.started || m.closed) return;
  m.Load();
  m.started = true;
  if (m.opt.poll_seconds > 0 && m.workos->Configured()) m.Arm(0);
}

void EventsPoller::PollNow(std::function<void(Status)> done) {
  impl_->Poll(std::move(done));
}

void EventsPoller::Reload() {
  impl_->Load();
}

void EventsPoller::SetOptions(EventsOptions o) {
  Impl& m = *impl_;
  bool was_off = m.opt.poll_seconds <= 0;
  m.opt = o;
  if (m.polling) return;  // re-armed when the poll ends
  if (was_off) {
    m.Arm(0);
  } else {
    m.ArmNextPoll();
  }
}

void EventsPoller::Close() {
  Impl& m = *impl_;
  if (m.closed) return;
  m.closed = true;
  m.timer.Close();
}

std::optional<std::string> EventsPoller::cursor() const {
  return impl_->cursor;
}

EventsStats EventsPoller::stats() const {
  return impl_->stats;
}

void EventsPoller::ExportMetrics(Metrics& m) const {
  const EventsStats& s = impl_->stats;
  const int64_t now = impl_->clock.NowMs();
  m.Describe("usersd_events_polls_total", "counter", "WorkOS events polls.");
  m.Describe("usersd_events_applied_total", "counter", "WorkOS events that changed the store, by event type.");
  m.Describe("usersd_events_stale_total", "counter", "User states older than the stored one, not applied.");
  m.Describe("usersd_events_behind_cursor_total", "counter",
             "Events served at or before the cursor (a server ignoring order or filters), skipped.");
  m.Describe("usersd_events_newest_first_pages_total", "counter", "Events pages that came back newest first.");
  m.Describe("usersd_events_failures_total", "counter", "Failed WorkOS events polls.");
  m.Describe("usersd_events_last_success_timestamp_seconds", "gauge",
             "Time of the last successful events poll (0: never).");
  m.Describe("usersd_events_cursor_timestamp_seconds", "gauge", "created_at of the newest event applied (0: none).");
  m.Describe("usersd_events_newest_seen_timestamp_seconds", "gauge",
             "created_at of the newest event any page showed (0: none).");
  m.Describe("usersd_events_cursor_age_seconds", "gauge",
             "Seconds since the feed was last read to its end (what sync.reconcile.max_cursor_age_days bounds).");
  m.Describe("usersd_events_stuck", "gauge", "1 while pages have events but none newer than the cursor.");
  m.Set("usersd_events_polls_total", {}, static_cast<double>(s.polls));
  for (const char* type : {"user.created", "user.updated", "user.deleted"}) {
    auto it = s.applied_by_type.find(type);
    m.Set("usersd_events_applied_total", {{"type", type}},
          static_cast<double>(it == s.applied_by_type.end() ? 0 : it->second));
  }
  m.Set("usersd_events_stale_total", {}, static_cast<double>(s.stale));
  m.Set("usersd_events_behind_cursor_total", {}, static_cast<double>(s.behind_cursor));
  m.Set("usersd_events_newest_first_pages_total", {}, static_cast<double>(s.newest_first_pages));
  m.Set("usersd_events_failures_total", {}, static_cast<double>(s.failures));
  m.Set("usersd_events_last_success_timestamp_seconds", {}, s.last_success_ms / 1000.0);
  m.Set("usersd_events_cursor_timestamp_seconds", {}, s.cursor_at_ms / 1000.0);
  m.Set("usersd_events_newest_seen_timestamp_seconds", {}, s.newest_seen_ms / 1000.0);
  m.Set("usersd_events_cursor_age_seconds", {}, std::max<int64_t>(0, now - s.caught_up_ms) / 1000.0);
  m.Set("usersd_events_stuck", {}, s.stuck ? 1 : 0);
}

}  // namespace usersd::sync
