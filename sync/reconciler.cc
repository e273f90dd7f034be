#include "sync/reconciler.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <vector>

#include "common/backoff.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/uv_timer.h"
#include "store/apply_nested.h"
#include "store/meta_keys.h"
#include "sync/events_poller.h"
#include "sync/workos_pages.h"

namespace usersd::sync {

using domain::RemoteOutcome;
using store::WriteTxn;

namespace {

// Idle: how often the interval timer looks whether a run is due.
constexpr int64_t kIdleCheckMs = 60 * 1000;

std::string SeenKey(std::string_view workos_id) {
  return std::string(store::kMetaReconcileSeenPrefix) + std::string(workos_id);
}

// The persisted part of a run.
struct RunState {
  bool running = false;
  std::string reason;
  std::string phase;  // list | sweep
  uint64_t run_id = 0;
  int64_t started_at_ms = 0;
  std::string after;  // list: last WorkOS user id; sweep: last local user id
  // sweep: WorkOS ids of local users the listing did not show, each asked
  // for on its own before anything is deleted; listed_all once every local
  // user was looked at.
  std::vector<std::string> confirm;
  bool listed_all = false;
  uint64_t pages = 0, seen = 0, applied = 0, deleted = 0;
  uint64_t not_listed = 0;  // not in the listing, but WorkOS still had them
  std::string last_error;

  Json ToJson() const {
    return Json{{"running", running},       {"reason", reason},   {"phase", phase},     {"run", run_id},
                {"started", started_at_ms}, {"after", after},     {"confirm", confirm}, {"listedAll", listed_all},
                {"pages", pages},           {"seen", seen},       {"applied", applied}, {"deleted", deleted},
                {"notListed", not_listed},  {"error", last_error}};
  }
  static RunState FromJson(const Json& j) {
    RunState s;
    if (!j.is_object()) return s;
    s.running = j.value("running", false);
    s.reason = j.value("reason", "");
    s.phase = j.value("phase", "list");
    s.run_id = j.value("run", uint64_t{0});
    s.started_at_ms = j.value("started", int64_t{0});
    s.after = j.value("after", "");
    if (auto c = j.find("confirm"); c != j.end() && c->is_array()) {
      for (const auto& id : *c)
        if (id.is_string()) s.confirm.push_back(id.get<std::string>());
    }
    s.listed_all = j.value("listedAll", false);
    s.not_listed = j.value("notListed", uint64_t{0});
    s.pages = j.value("pages", uint64_t{0});
    s.seen = j.value("seen", uint64_t{0});
    s.applied = j.value("applied", uint64_t{0});
    s.deleted = j.value("deleted", uint64_t{0});
    s.last_error = j.value("error", "");
    return s;
  }
};

}  // namespace

struct Reconciler::Impl {
  Impl(uv_loop_t* l, WorkosApi* w, store::Store* s, store::Writer* wr, const Clock& c, ReconcileOptions o)
      : loop(l), workos(w), store(s), writer(wr), clock(c), opt(o) {}

  uv_loop_t* loop;
  WorkosApi* workos;
  store::Store* store;
  store::Writer* writer;
  const Clock& clock;
  ReconcileOptions opt;
  std::function<void()> on_finished;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  UvTimer timer;
  bool started = false;
  bool closed = false;
  bool step_in_flight = false;  // a request or a write of the run is under way
  RunState run;
  int64_t last_finished_ms = 0;
  int64_t last_request_ms = INT64_MIN / 2;  // monotonic; the last list request's start
  int64_t retry_at_ms = 0;                  // monotonic; not before this after a failure
  uint32_t retries = 0;                     // failed attempts in a row at the current request
  int64_t auto_wait_ms = 0;     // the wait after the last failed run (0: the last run did not fail)
  uint32_t failed_runs = 0;     // failed runs in a row (auto_wait_ms grows with them)
  int64_t auto_not_before = 0;  // monotonic; automatic triggers wait until then
  uint64_t runs_completed = 0, runs_failed = 0;
  bool failed_on_key = false;  // the last run failed on a refused API key (401, 403)

  // ---------------------------------------------------------------- timer

  void Arm(int64_t delay_ms) {
    if (!started || closed) return;
    timer.Start(loop, static_cast<uint64_t>(std::max<int64_t>(delay_ms, 0)), 0, [this] { OnTimer(); });
  }

  void OnTimer() {
    if (closed) return;
    if (run.running) return Step();
    if (opt.interval_ms > 0 && workos->Configured()) {
      int64_t since = last_finished_ms ? last_finished_ms : store->created_at_ms();
      if (clock.NowMs() - since >= opt.interval_ms - opt.interval_early_ms && StartAll("interval").ok()) return;
    }
    Arm(kIdleCheckMs);
  }

  // ------------------------------------------------------------ the run

  Result<uint64_t> StartAll(const std::string& reason) {
    if (closed) return Status::Unavailable("shutting down");
    if (!workos->Configured()) return Status::Unavailable("WorkOS is not configured");
    if (run.running) return run.run_id;
    int64_t wait = auto_not_before - clock.MonotonicMs();
    if (reason != "admin" && auto_wait_ms > 0 && wait > 0) {
      return Status::Unavailable("the last reconciliation failed (" + run.last_error +
                                 "); the next automatic one starts in " + std::to_string((wait + 999) / 1000) + " s");
    }
    RunState next;
    next.running = true;
    next.reason = reason;
    next.phase = "list";
    next.run_id = run.run_id + 1;
    next.started_at_ms = clock.NowMs();
    run = next;
    retries = 0;
    failed_on_key = false;
    LogInfo("reconcile: listing every WorkOS user", {{"reason", reason}, {"run", std::to_string(run.run_id)}});
    Persist(run, [this] { Step(); });
    return run.run_id;
  }

  // Commits `state` (a run starting or failing), then runs `then`.
  void Persist(const RunState& state, std::function<void()> then) {
    step_in_flight = true;
    std::string text = state.ToJson().dump();
    writer->Submit([text](WriteTxn& t) { return t.PutMeta(store::kMetaReconcileState, text); },
                   [this, alive = alive, then = std::move(then)](Status st) {
                     if (!*alive) return;
                     step_in_flight = false;
                     if (!st.ok()) LogWarn("reconcile: could not record progress", {{"error", st.ToString()}});
                     if (!closed) then();
                   });
  }

  // True when a request may start now (and counts it); otherwise arms the
  // timer for when one may.
  bool RequestSlot() {
    if (!workos->Configured()) {  // resumes once a key is configured
      Arm(kIdleCheckMs);
      return false;
    }
    int64_t now = clock.MonotonicMs();
    int64_t gap = opt.requests_per_second > 0 ? static_cast<int64_t>(std::ceil(1000.0 / opt.requests_per_second)) : 0;
    int64_t due = std::max(last_request_ms + gap, retry_at_ms);
    if (due > now) {
      Arm(due - now);
      return false;
    }
    // The host's shared budget (workos.requests_per_second) as well: a
    // reconciliation never takes the outbox's share.
    if (opt.budget && !opt.budget->TryTake(now)) {
      Arm(std::max<int64_t>(1, opt.budget->NextAt(now) - now));
      return false;
    }
    last_request_ms = now;
    return true;
  }

  // A retryable answer (transport, 408, 429, 5xx): the same request again
  // after a backoff. False for any other answer.
  bool RetryLater(const HttpResponse& r, const char* what) {
    if (!IsRetryable(r)) return false;
    int64_t wait = Backoff{.initial_ms = opt.initial_backoff_ms, .max_ms = opt.max_backoff_ms}.DelayMs(retries);
    if (retries < UINT32_MAX) ++retries;
    if (r.retry_after_ms) wait = std::max(wait, *r.retry_after_ms);
    retry_at_ms = clock.MonotonicMs() + wait;
    run.last_error = r.status == 0 ? r.error : "HTTP " + std::to_string(r.status);
    LogDebug(std::string("reconcile: ") + what + " failed; retrying", {{"error", run.last_error}});
    Arm(wait);
    return true;
  }

  // What a failed request says in last_error. A refused key (401, 403) is
  // named as such, and remembered: the run's failure is then the key's, and
  // RetryNow() lifts the wait it caused once WorkOS takes the key again.
  std::string Refusal(const HttpResponse& r) {
    if (IsUnauthorized(r)) {
      failed_on_key = true;
      return "WorkOS refuses the API key (HTTP " + std::to_string(r.status) + ") " + r.body.substr(0, 200);
    }
    return (r.status == 0 ? r.error : "HTTP " + std::to_string(r.status)) + " " + r.body.substr(0, 200);
  }

  void RetryNow() {
    if (closed) return;
    if (run.running) {
      if (step_in_flight) return;
      retry_at_ms = 0;
      retries = 0;
      Arm(0);
      return;
    }
    if (failed_on_key) {
      // The last run failed only because of the key: automatic triggers need
      // not wait out its backoff now that the key works.
      failed_on_key = false;
      auto_not_before = 0;
      Arm(0);
    }
  }

  // The next request or batch, paced.
  void Step() {
    if (closed || !run.running || step_in_flight) return;
    if (run.phase == "sweep") {
      if (!run.confirm.empty()) return Confirm();
      if (run.listed_all) return Finish();
      return Sweep();
    }
    if (!RequestSlot()) return;
    step_in_flight = true;
    std::optional<std::string> after = run.after.empty() ? std::nullopt : std::optional<std::string>(run.after);
    workos->ListUsers(after, opt.page_limit, [this, alive = alive](HttpResponse&& r) {
      if (!*alive) return;
      step_in_flight = false;
      OnList(std::move(r));
    });
  }

  void OnList(HttpResponse&& r) {
    if (closed || r.cancelled) return;
    if (r.status != 200) {
      if (RetryLater(r, "list request")) return;
      return Fail("listing users failed: " + Refusal(r));
    }
    auto page = ParseUsersPage(r.body);
    if (!page.ok()) return Fail(page.status().message());
    std::vector<domain::WorkosProfileSource::Profile> users = std::move(page->users);
    const std::string& next_after = page->next_after;
    const bool full = page->entries >= static_cast<size_t>(opt.page_limit);
    // A full page whose cursor does not move: the server ignores `after`.
    // Sweeping after such a listing would soft-delete every user it never
    // showed, so the run ends without a sweep instead of looping.
    if (!next_after.empty() && next_after == run.after && full) {
      return Fail("listing users did not move past " + run.after + " (the server ignores after); not sweeping");
    }
    // The end of the list: no next cursor, or a short page.
    bool last = next_after.empty() || !full;
    RunState next = run;
    next.pages += 1;
    next.seen += users.size();
    if (last) {
      next.phase = "sweep";
      next.after.clear();
    } else {
      next.after = next_after;
    }
    auto applied = std::make_shared<uint64_t>(0);
    int64_t now = clock.NowMs();
    step_in_flight = true;
    writer->Submit(
        [users = std::move(users), next, applied, now, sync = opt.sync](WriteTxn& t) -> Status {
          *applied = 0;
          const domain::MutationContext ctx{now, sync.get()};
          const std::string run_id = std::to_string(next.run_id);
          for (size_t i = 0; i < users.size(); ++i) {
            const auto& p = users[i];
            USERSD_RETURN_IF_ERROR(t.PutMeta(SeenKey(p.workos_id), run_id));
            auto [must_return, r] =
                store::ApplyNested(t, [&](WriteTxn& child) { return domain::ApplyRemoteUser(child, p, ctx); });
            USERSD_RETURN_IF_ERROR(must_return);
            if (r.ok()) {
              if (*r == RemoteOutcome::kCreated || *r == RemoteOutcome::kUpdated) ++*applied;
            } else {
              LogWarn("reconcile: skipped a user that cannot be applied",
                      {{"workos_id", p.workos_id}, {"error", r.status().ToString()}});
            }
          }
          RunState saved = next;
          saved.applied += *applied;
          return t.PutMeta(store::kMetaReconcileState, saved.ToJson().dump());
        },
        [this, alive = alive, next, applied](Status st) {
          if (!*alive) return;
          step_in_flight = false;
          if (closed) return;
          if (!st.ok()) return Fail("applying a page failed: " + st.ToString());
          run = next;
          run.applied += *applied;
          run.last_error.clear();
          // Any user read may have queued a publish (a document older than
          // what this host holds), not only those that changed.
          if (opt.kick_outbox) opt.kick_outbox();
          retries = 0;
          Step();
        });
  }

  // One batch of local users: those the listing did not show, and that
  // existed before the run started, may be gone from WorkOS. They are not
  // deleted here: a listing can come back short (a server that answers an
  // `after` naming a user deleted meanwhile with the end of the list), so
  // each is asked for on its own first (Confirm).
  void Sweep() {
    auto out = std::make_shared<RunState>();  // what the batch stored; the run goes on from it
    RunState cur = run;
    size_t batch = static_cast<size_t>(std::max(1, opt.sweep_batch));
    step_in_flight = true;
    writer->Submit(
        [cur, out, batch](WriteTxn& t) -> Status {
          RunState saved = cur;
          saved.confirm.clear();
          auto users = t.ListUsers(cur.after, batch);
          if (!users.ok()) return users.status();
          const std::string run_id = std::to_string(cur.run_id);
          for (const auto& u : *users) {
            saved.after = u.id;
            std::string key = SeenKey(u.workos_id);
            auto mark = t.GetMeta(key);
            if (!mark.ok()) return mark.status();
            bool seen = mark->has_value() && **mark == run_id;
            if (mark->has_value()) USERSD_RETURN_IF_ERROR(t.DeleteMeta(key));
            if (seen || !u.live() || u.created_at_ms >= cur.started_at_ms) continue;
            saved.confirm.push_back(u.workos_id);
          }
          saved.listed_all = users->size() < batch;
          *out = saved;
          return t.PutMeta(store::kMetaReconcileState, saved.ToJson().dump());
        },
        [this, alive = alive, out](Status st) {
          if (!*alive) return;
          step_in_flight = false;
          if (closed) return;
          if (!st.ok()) return Fail("sweeping local users failed: " + st.ToString());
          run = std::move(*out);
          Step();
        });
  }

  // Asks WorkOS for the first user the listing did not show: a 404
  // soft-deletes it here, a user WorkOS still has is applied like a listed
  // one (and counted: the listing missed it). Paced like the list requests;
  // retryable failures wait, any other answer ends the run without deleting.
  void Confirm() {
    if (!RequestSlot()) return;
    step_in_flight = true;
    const std::string workos_id = run.confirm.front();
    workos->GetUserRaw(workos_id, [this, alive = alive, workos_id](HttpResponse&& r) {
      if (!*alive) return;
      step_in_flight = false;
      if (closed || r.cancelled) return;
      std::optional<domain::WorkosProfileSource::Profile> profile;
      if (r.status == 200) {
        profile = ParseWorkosUser(Json::parse(r.body, nullptr, false));
        if (!profile || profile->workos_id != workos_id) {
          return Fail("confirming " + workos_id + ": WorkOS returned an unreadable user; not sweeping");
        }
      } else if (r.status != 404) {
        if (RetryLater(r, "confirming a user")) return;
        return Fail("confirming " + workos_id + " failed: " + Refusal(r));
      }
      retries = 0;
      RunState next = run;
      next.confirm.erase(next.confirm.begin());
      next.last_error.clear();  // a retry's error, now behind us
      if (profile) {
        ++next.not_listed;
        LogWarn("reconcile: WorkOS has a user its listing did not show; kept",
                {{"workos_id", workos_id}, {"run", std::to_string(run.run_id)}});
      }
      auto deleted = std::make_shared<bool>(false);
      int64_t now = clock.NowMs();
      step_in_flight = true;
      writer->Submit(
          [profile, workos_id, next, deleted, now, sync = opt.sync](WriteTxn& t) -> Status {
            *deleted = false;
            const domain::MutationContext ctx{now, sync.get()};
            // Applying WorkOS's user may re-key it to an id the sweep has not
            // reached yet: marked as seen, it is not asked for twice.
            if (profile) USERSD_RETURN_IF_ERROR(t.PutMeta(SeenKey(workos_id), std::to_string(next.run_id)));
            auto [must_return, r] = store::ApplyNested(t, [&](WriteTxn& child) {
              return profile ? domain::ApplyRemoteUser(child, *profile, ctx)
                             : domain::ApplyRemoteDelete(child, workos_id, ctx);
            });
            USERSD_RETURN_IF_ERROR(must_return);
            if (r.ok()) {
              *deleted = *r == RemoteOutcome::kDeleted;
            } else {
              LogWarn("reconcile: skipped a user that cannot be applied",
                      {{"workos_id", workos_id}, {"error", r.status().ToString()}});
            }
            RunState saved = next;
            if (*deleted) ++saved.deleted;
            return t.PutMeta(store::kMetaReconcileState, saved.ToJson().dump());
          },
          [this, alive = alive, next, deleted, workos_id](Status st) {
            if (!*alive) return;
            step_in_flight = false;
            if (closed) return;
            if (!st.ok()) return Fail("applying a confirmation failed: " + st.ToString());
            run = next;
            if (*deleted) {
              ++run.deleted;
              LogInfo("reconcile: WorkOS no longer has this user; soft-deleted", {{"workos_id", workos_id}});
            }
            if (opt.kick_outbox) opt.kick_outbox();
            Step();
          });
    });
  }

  // Every local user looked at and every doubt settled: the run is done.
  void Finish() {
    RunState done = run;
    done.running = false;
    done.phase.clear();
    done.after.clear();
    done.listed_all = false;
    int64_t now = clock.NowMs();
    step_in_flight = true;
    writer->Submit(
        [done, now](WriteTxn& t) -> Status {
          // The feed goes on from the run's start: what changed during the
          // run arrives as events (applying one twice is harmless).
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCursor, ""));
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCursorAt, "0"));
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsRangeStart, std::to_string(done.started_at_ms)));
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaEventsCaughtUpAt, std::to_string(now)));
          USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaReconcileLastFinished, std::to_string(now)));
          return t.PutMeta(store::kMetaReconcileState, done.ToJson().dump());
        },
        [this, alive = alive, done, now](Status st) {
          if (!*alive) return;
          step_in_flight = false;
          if (closed) return;
          if (!st.ok()) return Fail("finishing the run failed: " + st.ToString());
          run = done;
          last_finished_ms = now;
          auto_wait_ms = 0;
          failed_runs = 0;
          ++runs_completed;
          LogInfo("reconcile: done", {{"run", std::to_string(run.run_id)},
                                      {"users", std::to_string(run.seen)},
                                      {"applied", std::to_string(run.applied)},
                                      {"deleted", std::to_string(run.deleted)},
                                      {"not_listed", std::to_string(run.not_listed)},
                                      {"seconds", std::to_string((now - run.started_at_ms) / 1000)}});
          if (on_finished) on_finished();
          Arm(kIdleCheckMs);
        });
  }

  void Fail(const std::string& error) {
    auto_wait_ms =
        Backoff{.initial_ms = opt.failed_run_wait_ms, .max_ms = opt.failed_run_max_wait_ms}.DelayMs(failed_runs);
    if (failed_runs < UINT32_MAX) ++failed_runs;
    auto_not_before = clock.MonotonicMs() + auto_wait_ms;
    LogWarn("reconcile: run failed", {{"run", std::to_string(run.run_id)},
                                      {"error", error},
                                      {"next_automatic_in_s", std::to_string(auto_wait_ms / 1000)}});
    ++runs_failed;
    run.running = false;
    run.last_error = error;
    Persist(run, [this] { Arm(kIdleCheckMs); });
  }

  // ------------------------------------------------------- one user

  void ResyncOne(const std::string& workos_id, std::function<void(Result<ResyncResult>)> done) {
    if (closed) return done(Status::Unavailable("shutting down"));
    if (!workos->Configured()) return done(Status::Unavailable("WorkOS is not configured"));
    workos->GetUserRaw(workos_id, [this, alive = alive, workos_id, done = std::move(done)](HttpResponse&& r) {
      if (!*alive) return;
      if (closed || r.cancelled) return done(Status::Unavailable("shutting down"));
      std::optional<domain::WorkosProfileSource::Profile> profile;
      if (r.status == 200) {
        profile = ParseWorkosUser(Json::parse(r.body, nullptr, false));
        if (!profile || profile->workos_id.empty()) return done(Status::Internal("WorkOS returned an unreadable user"));
      } else if (IsUnauthorized(r)) {
        return done(Status::Unavailable("WorkOS refuses the API key (HTTP " + std::to_string(r.status) +
                                        "); usersctl status shows where the key comes from"));
      } else if (r.status != 404) {
        return done(Status::Unavailable(r.status == 0 ? "WorkOS unreachable: " + r.error
                                                      : "WorkOS answered HTTP " + std::to_string(r.status)));
      }
      auto result = std::make_shared<ResyncResult>();
      result->in_workos = profile.has_value();
      int64_t now = clock.NowMs();
      writer->Submit(
          [profile, workos_id, result, now, sync = opt.sync](WriteTxn& t) -> Status {
            const domain::MutationContext ctx{now, sync.get()};
            Result<RemoteOutcome> r = RemoteOutcome::kUnchanged;
            if (profile) {
              r = domain::ApplyRemoteUser(t, *profile, ctx);
            } else {
              r = domain::ApplyRemoteDelete(t, workos_id, ctx);
            }
            if (!r.ok()) return r.status();
            result->outcome = *r;
            auto after = t.FindByWorkosId(workos_id);
            if (!after.ok()) return after.status();
            result->user = *after;
            return Status::Ok();
          },
          [alive = alive, result, done](Status st) {
            if (!*alive) return;
            if (!st.ok()) return done(st);
            done(std::move(*result));
          });
    });
  }
};

Reconciler::Reconciler(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer,
                       const Clock& clock, ReconcileOptions options)
    : impl_(std::make_unique<Impl>(loop, workos, store, writer, clock, options)) {}

Reconciler::~Reconciler() {
  *impl_->alive = false;
}

void Reconciler::SetOnFinished(std::function<void()> f) {
  impl_->on_finished = std::move(f);
}

void Reconciler::Start() {
  Impl& m = *impl_;
  if (m.started || m.closed) return;
  auto txn = m.store->BeginRead();
  if (txn.ok()) {
    auto s = txn->GetMeta(store::kMetaReconcileState);
    if (s.ok() && s->has_value()) m.run = RunState::FromJson(Json::parse(**s, nullptr, false));
    auto f = txn->GetMeta(store::kMetaReconcileLastFinished);
    if (f.ok() && f->has_value()) m.last_finished_ms = std::strtoll((*f)->c_str(), nullptr, 10);
  }
  m.started = true;
  if (m.run.running) {
    if (m.workos->Configured()) {
      LogInfo("reconcile: resuming an interrupted run",
              {{"run", std::to_string(m.run.run_id)}, {"phase", m.run.phase}, {"users", std::to_string(m.run.seen)}});
    }
    m.Arm(0);
  } else {
    m.Arm(m.opt.interval_ms > 0 ? 0 : kIdleCheckMs);
  }
}

Result<uint64_t> Reconciler::StartAll(const std::string& reason) {
  return impl_->StartAll(reason);
}

void Reconciler::ResyncOne(const std::string& workos_id, std::function<void(Result<ResyncResult>)> done) {
  impl_->ResyncOne(workos_id, std::move(done));
}

bool Reconciler::running() const {
  return impl_->run.running;
}

void Reconciler::SetOptions(ReconcileOptions options) {
  impl_->opt = options;
}

void Reconciler::RetryNow() {
  impl_->RetryNow();
}

void Reconciler::Close() {
  Impl& m = *impl_;
  if (m.closed) return;
  m.closed = true;
  m.timer.Close();
}

ReconcileStatus Reconciler::status() const {
  const Impl& m = *impl_;
  ReconcileStatus s;
  s.running = m.run.running;
  s.reason = m.run.reason;
  s.phase = m.run.phase;
  s.run_id = m.run.run_id;
  s.started_at_ms = m.run.started_at_ms;
  s.finished_at_ms = m.last_finished_ms;
  s.pages = m.run.pages;
  s.users_seen = m.run.seen;
  s.users_applied = m.run.applied;
  s.users_deleted = m.run.deleted;
  s.users_not_listed = m.run.not_listed;
  s.runs_completed = m.runs_completed;
  s.runs_failed = m.runs_failed;
  s.last_error = m.run.last_error;
  int64_t wait = m.auto_not_before - m.clock.MonotonicMs();
  if (!m.run.running && m.auto_wait_ms > 0 && wait > 0) s.next_auto_start_ms = m.clock.NowMs() + wait;
  return s;
}

void Reconciler::ExportMetrics(Metrics& m) const {
  ReconcileStatus s = status();
  m.Describe("usersd_reconcile_running", "gauge", "1 while a reconciliation (full WorkOS user listing) runs.");
  m.Describe("usersd_reconcile_runs_total", "counter", "Reconciliation runs ended in this process, by outcome.");
  m.Describe("usersd_reconcile_users_seen", "gauge", "WorkOS users listed by the current or last run.");
  m.Describe("usersd_reconcile_users_deleted", "gauge",
             "Local users the current or last run soft-deleted (WorkOS no longer had them).");
  m.Describe("usersd_reconcile_last_finished_timestamp_seconds", "gauge",
             "When the last reconciliation finished (0: never).");
  m.Set("usersd_reconcile_running", {}, s.running ? 1 : 0);
  m.Set("usersd_reconcile_runs_total", {{"outcome", "completed"}}, static_cast<double>(s.runs_completed));
  m.Set("usersd_reconcile_runs_total", {{"outcome", "failed"}}, static_cast<double>(s.runs_failed));
  m.Set("usersd_reconcile_users_seen", {}, static_cast<double>(s.users_seen));
  m.Set("usersd_reconcile_users_deleted", {}, static_cast<double>(s.users_deleted));
  m.Set("usersd_reconcile_last_finished_timestamp_seconds", {}, s.finished_at_ms / 1000.0);
}

}  // namespace usersd::sync
