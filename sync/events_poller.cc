#include "sync/events_poller.h"

#include <cstdlib>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "common/timefmt.h"
#include "domain/users_service.h"

namespace usersd::sync {

using store::ChangeOp;
using store::UserRecord;
using store::WriteTxn;

namespace {

struct Event {
  std::string id;
  std::string type;
  Json data;
  std::string new_user_id;  // chosen up front so the WriteOp is re-runnable
};

struct PageOutcome {
  uint64_t applied = 0;
  uint64_t ignored = 0;
};

bool IsUserEvent(const std::string& t) {
  return t == "user.created" || t == "user.updated" || t == "user.deleted";
}

// Fields with an undelivered local change, by local user id.
using PendingFields = std::unordered_map<std::string, std::set<std::string>>;

Result<PendingFields> ReadPendingFields(WriteTxn& t) {
  PendingFields out;
  auto jobs = t.ListJobs(0);
  if (!jobs.ok()) return jobs.status();
  for (const auto& j : *jobs) {
    if (j.op != store::JobOp::kUpdate || !j.fields.is_object()) continue;
    auto& s = out[j.user_id];
    for (auto it = j.fields.begin(); it != j.fields.end(); ++it) s.insert(it.key());
  }
  return out;
}

// Applies one event in `t` (a nested transaction of the page). Returns ok
// with *changed telling whether the store changed.
Status ApplyEvent(WriteTxn& t, const Event& ev, const PendingFields& pending, int64_t now, bool* changed) {
  *changed = false;
  auto wid_it = ev.data.find("id");
  if (!ev.data.is_object() || wid_it == ev.data.end() || !wid_it->is_string()) {
    return Status::InvalidArgument("event data has no user id");
  }
  std::string wid = wid_it->get<std::string>();
  auto existing = t.FindByWorkosId(wid);
  if (!existing.ok()) return existing.status();

  if (ev.type == "user.deleted") {
    if (!existing->has_value() || !(*existing)->live()) return Status::Ok();
    UserRecord after = **existing;
    after.deleted_at_ms = now;
    after.updated_at_ms = now;
    USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, *existing, ChangeOp::kDelete, now));
    *changed = true;
    return Status::Ok();
  }

  auto profile = WorkosClient::ParseProfile(ev.data);
  if (!profile) return Status::InvalidArgument("event data is not a user");

  // The email goes in only when no other live local user holds it.
  auto email_free = [&](const std::string& email, const std::string& self) -> Result<bool> {
    auto holder = t.FindByEmail(email);
    if (!holder.ok()) return holder.status();
    if (holder->has_value() && (*holder)->id != self) {
      LogWarn("events: WorkOS email is held by another local user; email not changed",
              {{"workos_id", wid}, {"other", (*holder)->id}});
      return false;
    }
    return true;
  };

  if (!existing->has_value()) {
    UserRecord u;
    u.id = ev.new_user_id;
    u.workos_id = wid;
    u.first_name = profile->first_name;
    u.last_name = profile->last_name;
    u.role = "member";
    u.created_at_ms = now;
    if (auto c = ev.data.find("created_at"); c != ev.data.end() && c->is_string()) {
      if (auto ms = ParseIso8601Ms(c->get<std::string>())) u.created_at_ms = *ms;
    }
    AdoptProfilePicture(u, profile->profile_picture_url);
    if (!profile->email.empty()) {
      auto free = email_free(profile->email, u.id);
      if (!free.ok()) return free.status();
      if (*free) u.email = profile->email;
    }
    USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, u, std::nullopt, ChangeOp::kUpsert, now));
    *changed = true;
    return Status::Ok();
  }

  const UserRecord& before = **existing;
  if (!before.live()) return Status::Ok();  // deleted here; the DELETE is on its way or done
  UserRecord after = before;
  static const std::set<std::string> kNone;
  auto pit = pending.find(before.id);
  const std::set<std::string>& held = pit == pending.end() ? kNone : pit->second;
  if (!held.count("email") && !profile->email.empty() && profile->email != after.email) {
    auto free = email_free(profile->email, after.id);
    if (!free.ok()) return free.status();
    if (*free) after.email = profile->email;
  }
  if (!held.count("first_name")) after.first_name = profile->first_name;
  if (!held.count("last_name")) after.last_name = profile->last_name;
  AdoptProfilePicture(after, profile->profile_picture_url);
  bool differs = after.email != before.email || after.first_name != before.first_name ||
                 after.last_name != before.last_name || after.avatar_url != before.avatar_url ||
                 after.profile_picture_url != before.profile_picture_url;
  if (!differs) return Status::Ok();
  after.updated_at_ms = now;
  USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, existing.value(), ChangeOp::kUpsert, now));
  *changed = true;
  return Status::Ok();
}

}  // namespace

struct EventsPoller::Impl {
  Impl(uv_loop_t* l, WorkosApi* w, store::Store* s, store::Writer* wr, const Clock& c, int64_t secs)
      : loop(l), workos(w), store(s), writer(wr), clock(c), poll_seconds(secs) {}

  uv_loop_t* loop;
  WorkosApi* workos;
  store::Store* store;
  store::Writer* writer;
  const Clock& clock;
  int64_t poll_seconds;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  uv_timer_t timer{};
  bool timer_open = false;
  bool timer_closed = false;
  bool closed = false;
  bool polling = false;
  std::vector<std::function<void(Status)>> waiting;
  std::optional<std::string> cursor;
  EventsStats stats;

  void Arm(int64_t delay_ms) {
    if (!timer_open || closed) return;
    if (poll_seconds <= 0) {
      uv_timer_stop(&timer);
      return;
    }
    uv_timer_start(
        &timer,
        [](uv_timer_t* t) {
          auto* self = static_cast<Impl*>(t->data);
          self->Poll([](Status) {});
        },
        static_cast<uint64_t>(delay_ms), 0);
  }

  void Poll(std::function<void(Status)> done) {
    if (closed) return done(Status::Unavailable("shutting down"));
    if (!workos->Configured()) {
      done(Status::Unavailable("WorkOS is not configured"));
      Arm(poll_seconds * 1000);
      return;
    }
    waiting.push_back(std::move(done));
    if (polling) return;
    polling = true;
    ++stats.polls;
    FetchPage();
  }

  void FetchPage() {
    std::optional<std::string> range_start;
    if (!cursor) range_start = FormatIso8601Ms(store->created_at_ms());
    workos->ListEvents(cursor, range_start, kPageLimit, [this, alive = alive](HttpResponse&& r) {
      if (!*alive) return;
      OnPage(std::move(r));
    });
  }

  void OnPage(HttpResponse&& r) {
    if (closed || r.cancelled) return Finish(Status::Unavailable("shutting down"));
    if (r.status != 200) {
      return Finish(Status::Unavailable(r.status == 0 ? "events poll failed: " + r.error
                                                      : "events poll returned HTTP " + std::to_string(r.status)));
    }
    Json body = Json::parse(r.body, nullptr, false);
    auto data = body.is_object() ? body.find("data") : body.end();
    if (!body.is_object() || data == body.end() || !data->is_array()) {
      return Finish(Status::InvalidArgument("events poll returned an unreadable page"));
    }
    std::vector<Event> events;
    std::optional<std::string> last_id;
    uint64_t ignored = 0;
    for (const auto& e : *data) {
      if (!e.is_object()) continue;
      auto id = e.find("id");
      if (id != e.end() && id->is_string()) last_id = id->get<std::string>();
      auto type = e.find("event");
      std::string t = type != e.end() && type->is_string() ? type->get<std::string>() : std::string();
      if (!IsUserEvent(t)) {
        ++ignored;
        continue;
      }
      auto d = e.find("data");
      events.push_back(Event{last_id.value_or(std::string()), t, d != e.end() ? *d : Json(), domain::NewUuid()});
    }
    // Each event carries the whole user, so only the last one of each user
    // in the page matters; applying just that one (in the order of these
    // last occurrences, which keeps email hand-overs between users in
    // order) makes re-reading a page a no-op rather than a replay of its
    // intermediate states.
    {
      std::unordered_map<std::string, size_t> last_of;
      for (size_t i = 0; i < events.size(); ++i) {
        auto id = events[i].data.is_object() ? events[i].data.find("id") : events[i].data.end();
        if (id != events[i].data.end() && id->is_string()) last_of[id->get<std::string>()] = i;
      }
      std::vector<Event> kept;
      for (size_t i = 0; i < events.size(); ++i) {
        auto id = events[i].data.is_object() ? events[i].data.find("id") : events[i].data.end();
        if (id != events[i].data.end() && id->is_string() && last_of[id->get<std::string>()] != i) {
          ++ignored;
          continue;
        }
        kept.push_back(std::move(events[i]));
      }
      events = std::move(kept);
    }
    std::optional<std::string> next = last_id;
    if (auto md = body.find("list_metadata"); md != body.end() && md->is_object()) {
      if (auto a = md->find("after"); a != md->end() && a->is_string() && !a->get<std::string>().empty()) {
        next = a->get<std::string>();
      }
    }
    ++stats.pages;
    stats.ignored += ignored;
    size_t page_size = data->size();
    if (!next || next == cursor) {
      // An empty page (or one that does not move the cursor): caught up.
      return Finish(Status::Ok());
    }
    int64_t now = clock.NowMs();
    auto outcome = std::make_shared<PageOutcome>();
    std::string new_cursor = *next;
    writer->Submit(
        [events = std::move(events), new_cursor, now, outcome](WriteTxn& t) -> Status {
          *outcome = PageOutcome{};
          PendingFields pending;
          for (const auto& ev : events) {
            if (ev.type != "user.deleted") {
              auto p = ReadPendingFields(t);
              if (!p.ok()) return p.status();
              pending = std::move(*p);
              break;
            }
          }
          for (const auto& ev : events) {
            auto child = t.BeginNested();
            if (!child.ok()) return child.status();
            bool changed = false;
            Status st = ApplyEvent(*child, ev, pending, now, &changed);
            if (st.ok()) {
              USERSD_RETURN_IF_ERROR(child->Commit());
              if (changed)
                ++outcome->applied;
              else
                ++outcome->ignored;
            } else {
              child->Abort();
              if (st.code() == Code::kMapFull) return st;
              LogWarn("events: skipped an event that cannot be applied",
                      {{"event", ev.id}, {"type", ev.type}, {"error", st.ToString()}});
              ++outcome->ignored;
            }
          }
          return t.PutMeta("events_cursor", new_cursor);
        },
        [this, alive = alive, outcome, new_cursor, page_size](Status st) {
          if (!*alive) return;
          if (closed) return Finish(Status::Unavailable("shutting down"));
          if (!st.ok()) return Finish(st);
          cursor = new_cursor;
          stats.applied += outcome->applied;
          stats.ignored += outcome->ignored;
          if (page_size >= static_cast<size_t>(kPageLimit)) return FetchPage();
          Finish(Status::Ok());
        });
  }

  void Finish(Status st) {
    polling = false;
    if (st.ok()) {
      stats.last_success_ms = clock.NowMs();
    } else {
      ++stats.failures;
      if (!closed) LogWarn("events poll failed", {{"error", st.ToString()}});
    }
    auto w = std::move(waiting);
    waiting.clear();
    for (auto& f : w) f(st);
    Arm(poll_seconds * 1000);
  }
};

EventsPoller::EventsPoller(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer,
                           const Clock& clock, int64_t poll_seconds)
    : impl_(std::make_unique<Impl>(loop, workos, store, writer, clock, poll_seconds)) {}

EventsPoller::~EventsPoller() {
  if (impl_->timer_open && !impl_->timer_closed) {
    LogError("EventsPoller destroyed before its timer closed");
    std::abort();
  }
  *impl_->alive = false;
}

void EventsPoller::Start() {
  Impl& m = *impl_;
  if (m.timer_open || m.closed) return;
  auto txn = m.store->BeginRead();
  if (txn.ok()) {
    auto c = txn->GetMeta("events_cursor");
    if (c.ok() && c->has_value() && !(*c)->empty()) m.cursor = **c;
  }
  uv_timer_init(m.loop, &m.timer);
  m.timer.data = &m;
  m.timer_open = true;
  if (m.poll_seconds > 0 && m.workos->Configured()) m.Arm(0);
}

void EventsPoller::PollNow(std::function<void(Status)> done) {
  impl_->Poll(std::move(done));
}

void EventsPoller::SetPollSeconds(int64_t s) {
  Impl& m = *impl_;
  bool was_off = m.poll_seconds <= 0;
  m.poll_seconds = s;
  if (m.polling) return;  // re-armed when the poll ends
  m.Arm(was_off ? 0 : s * 1000);
}

void EventsPoller::Close() {
  Impl& m = *impl_;
  if (m.closed) return;
  m.closed = true;
  if (m.timer_open) {
    uv_timer_stop(&m.timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&m.timer),
             [](uv_handle_t* h) { static_cast<Impl*>(h->data)->timer_closed = true; });
  }
}

std::optional<std::string> EventsPoller::cursor() const {
  return impl_->cursor;
}

EventsStats EventsPoller::stats() const {
  return impl_->stats;
}

}  // namespace usersd::sync
