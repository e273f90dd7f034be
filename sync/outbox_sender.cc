#include "sync/outbox_sender.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <vector>

#include "common/backoff.h"
#include "common/log.h"
#include "common/text.h"
#include "common/uv_timer.h"
#include "domain/remote_user.h"
#include "domain/validate.h"
#include "store/apply_nested.h"
#include "sync/workos_pages.h"

namespace usersd::sync {

using store::JobOp;
using store::OutboxJob;
using store::UserRecord;
using store::WriteTxn;

namespace {

// A Retry-After beyond this is treated as this: a broken or hostile header
// must not park the outbox for days. Larger max_backoff_ms raises it.
constexpr int64_t kMaxRetryAfterMs = 3600 * 1000;
// While paused, how often the upstream state is checked, so that a success
// of other traffic (the events poller, a request path) ends the pause early.
constexpr int64_t kOnlineCheckMs = 1000;
// The table is read again at least this often, so a job queued by a part
// that did not Kick (a missed notification) waits this long at most.
constexpr int64_t kRescanMs = 10 * 1000;
constexpr size_t kMaxErrorText = 512;

bool Is2xx(int status) {
  return status >= 200 && status < 300;
}

// Transport failures, 5xx and 429 say something about WorkOS as a whole
// (the same rule WorkosClient uses for its offline state); 408 only about
// one request.
bool UpstreamDown(const HttpResponse& r) {
  return r.status == 0 || r.status == 429 || r.status >= 500;
}

// The start of a job's last_error after a 401/403 (persisted: a restart
// still knows the job waited for the key).
constexpr std::string_view kKeyRefusedError = "WorkOS refuses the API key";

std::string Describe(const HttpResponse& r) {
  std::string s;
  if (IsUnauthorized(r)) return std::string(kKeyRefusedError) + " (HTTP " + std::to_string(r.status) + ")";
  if (r.status == 0) {
    s = r.timed_out ? "timeout: " : "transport: ";
    s += r.error;
  } else {
    s = "HTTP " + std::to_string(r.status);
    if (!r.body.empty()) s += ": " + r.body.substr(0, kMaxErrorText);
  }
  return s;
}

// 401: the API key is wrong or revoked; 403: it lacks a permission.
// Neither heals by itself, but neither is the change's fault: the job waits
// (backoff, the whole sender paused) instead of going to the dead letters.
bool KeyRefused(const HttpResponse& r) {
  return IsUnauthorized(r);
}

}  // namespace

int64_t BackoffDelayMs(const OutboxOptions& o, uint32_t attempt, double random01,
                       std::optional<int64_t> retry_after_ms) {
  int64_t cap = std::max<int64_t>(0, o.max_backoff_ms);
  const Backoff policy{
      .initial_ms = std::max<int64_t>(1, o.initial_backoff_ms), .max_ms = cap, .jitter = Backoff::Jitter::kFull};
  int64_t delay = policy.DelayMs(attempt, random01);
  if (retry_after_ms && *retry_after_ms > delay) {
    delay = std::min(*retry_after_ms, std::max(kMaxRetryAfterMs, cap));
  }
  return std::max<int64_t>(0, delay);
}

struct OutboxSender::Impl : OutboxWindow {
  Impl(uv_loop_t* l, WorkosApi* w, store::Store* s, store::Writer* wr, const Clock& c, OutboxOptions o, Random r)
      : OutboxWindow(s), loop(l), workos(w), writer(wr), clock(c), opt(o), random(std::move(r)) {}

  uv_loop_t* loop;
  WorkosApi* workos;
  store::Writer* writer;
  const Clock& clock;
  OutboxOptions opt;
  Random random;
  // Callbacks (HTTP, writer dones) check this before touching the Impl.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  UvTimer timer;
  bool started = false;
  bool closed = false;
  bool kick_pending = false;

  size_t in_flight = 0;
  bool paused = false;
  bool probe_in_flight = false;
  bool pause_for_key = false;  // the pause began with a 401/403
  int64_t pause_until = 0;
  uint32_t pause_attempt = 0;
  int64_t hold_until = 0;            // Retry-After floor for every send
  std::vector<uint64_t> delete_buf;  // delivered, deletion not yet submitted
  bool delete_in_flight = false;
  // Last job id of a delivered batch -> its user, busy until the deletion commits.
  std::unordered_map<uint64_t, std::string> removal_owner;
  // Answered publishes waiting for their store write (one WriteOp at a time).
  struct Settle {
    std::string uid;
    std::vector<uint64_t> batch;
    domain::PublishSent sent;
    std::optional<domain::Profile> answer;  // the user after a 2xx, when readable
    std::optional<std::string> refusal;     // a dead letter instead (RefusePublish)
    int status = 0;
    // What a read first showed of external_id.
    std::optional<std::optional<std::string>> learned_external_id;
    bool keep_imported_id = false;
    std::string workos_id;
    // Set by the write: the last job of the batch is still there.
    bool kept = false;
    std::optional<std::string> not_taken;
    bool queued_resync = false;  // a re-read job was added: read the table again
  };
  static Settle MakeSettle(const std::string& uid, const std::vector<uint64_t>& batch, domain::PublishSent sent,
                           int status, std::optional<std::string> refusal = std::nullopt) {
    Settle s;
    s.uid = uid;
    s.batch = batch;
    s.sent = std::move(sent);
    s.status = status;
    s.refusal = std::move(refusal);
    return s;
  }
  std::vector<Settle> settle_buf;
  bool settle_in_flight = false;
  bool budget_wait = false;  // the last Pump stopped at the request budget
  int64_t last_load = 0;      // when the table was last read (Load)

  uint64_t requests = 0, delivered = 0, dead_lettered = 0, pending_writes = 0;
  uint64_t not_taken_count = 0;  // PUTs answered 2xx with another value
  uint64_t reads_first = 0, kept_count = 0;
  std::map<int, uint64_t> by_status;
  int64_t next_wakeup = 0;

  size_t MaxInFlight() const { return std::max<size_t>(1, opt.max_in_flight); }

  // ------------------------------------------------------------ window

  // Reads the table into the window (OutboxWindow::Load), noting when.
  void LoadJobs() {
    last_load = clock.NowMs();
    Load();
  }
  void ForgetJobs(const std::string& uid, const std::vector<uint64_t>& ids) {
    Forget(uid, ids);
    if (wants_refill()) kick_pending = true;
  }
  void DropJobs(const std::string& uid, const std::vector<uint64_t>& ids) {
    Drop(uid, ids);
    if (wants_refill()) kick_pending = true;
  }

  // ------------------------------------------------------------ sending

  void Pump() {
    if (!started || closed) return;
    int64_t now = clock.NowMs();
    if (!workos->Configured()) {
      Arm(now);
      return;
    }
    // A pause for a refused key ends only when a request of its own is
    // accepted: other traffic (the events poll) may use no key at all.
    if (paused && !pause_for_key && !probe_in_flight && workos->state() == UpstreamState::kOnline) {
      Resume("WorkOS answered other requests");
    }
    while (!ready.empty()) {
      auto [due, uid] = *ready.begin();
      if (due > now) break;
      UserQ& q = users.at(uid);
      Entry& head = jobs.at(q.ids.front());
      // SPEC 4: nothing is dead-lettered for a refused key, also not for
      // having waited for it past max_age: such a job is sent once the key
      // works, and expires only if it then fails for another reason.
      bool waited_for_key = head.last_status == 401 || head.last_status == 403 ||
                            head.job.last_error.rfind(kKeyRefusedError, 0) == 0;
      if (now - head.job.created_at_ms >= opt.max_age_ms && !waited_for_key && !pause_for_key &&
          workos->state() != UpstreamState::kUnauthorized) {
        Expire(uid, now);
        continue;
      }
      if (in_flight >= MaxInFlight() || now < hold_until) break;
      bool probe = paused;
      if (paused && (now < pause_until || probe_in_flight)) break;
      if (opt.budget && !opt.budget->TryTake(clock.MonotonicMs())) {
        budget_wait = true;
        break;
      }
      budget_wait = false;
      Send(uid, probe);
      if (probe) break;
    }
    Arm(now);
  }

  void Arm(int64_t now) {
    if (!started || closed) return;
    std::optional<int64_t> next;
    if (kick_pending) {
      next = now;
    } else if (started && workos->Configured() && !ready.empty()) {
      bool can_send = in_flight < MaxInFlight() && !(paused && probe_in_flight);
      if (can_send) {
        int64_t t = std::max(ready.begin()->first, hold_until);
        if (budget_wait && opt.budget) {
          int64_t mono = clock.MonotonicMs();
          t = std::max(t, now + (opt.budget->NextAt(mono) - mono));
        }
        if (paused) {
          t = std::max(t, pause_until);
          t = std::min(t, now + kOnlineCheckMs);
        }
        next = t;
      }
    }
    if (!next && started) next = last_load + kRescanMs;
    if (!next) {
      timer.Stop();
      next_wakeup = 0;
      return;
    }
    int64_t delay = std::max<int64_t>(0, *next - now);
    next_wakeup = now + delay;
    timer.Start(loop, static_cast<uint64_t>(delay), 0, [this] { Tick(); });
  }

  void Tick() {
    if (closed) return;
    if (kick_pending || (started && clock.NowMs() >= last_load + kRescanMs)) {
      kick_pending = false;
      if (started) LoadJobs();
    }
    Pump();
  }

  void Send(const std::string& uid, bool probe) {
    UserQ& q = users.at(uid);
    if (q.key) {
      ready.erase({*q.key, uid});
      q.key.reset();
    }
    q.busy = true;
    std::vector<uint64_t> batch{q.ids.front()};
    const OutboxJob& head = jobs.at(q.ids.front()).job;
    JobOp op = head.op;
    std::string workos_id = head.workos_id;
    if (op == JobOp::kUpdate) {
      // Jobs of an earlier release: several update jobs of one user in a
      // row, sent as one.
      for (size_t i = 1; i < q.ids.size() && batch.size() < kMaxMerge; ++i) {
        const OutboxJob& j = jobs.at(q.ids[i]).job;
        if (j.op != JobOp::kUpdate || j.workos_id != workos_id) break;
        batch.push_back(j.id);
      }
    }
    ++in_flight;
    ++requests;
    if (probe) probe_in_flight = true;
    auto cb = [this, alive = alive, uid, batch, probe](HttpResponse&& r) {
      if (!*alive) return;
      OnResponse(uid, batch, probe, std::move(r));
    };
    switch (op) {
      case JobOp::kUpdate: return SendUpdate(uid, batch, probe);
      case JobOp::kDelete: return workos->DeleteUser(workos_id, std::move(cb));
      case JobOp::kFetch: return workos->GetUserRaw(workos_id, std::move(cb));
    }
  }

  // What the store holds now for a publish of `batch`: the jobs' fields
  // merged in order (later writes merged into the last job since it was
  // loaded), and the user. Without a record the document is not sent.
  bool ReadPublishState(const std::vector<uint64_t>& batch, Json* fields, std::optional<UserRecord>* user,
                        std::string* error) {
    auto txn = store->BeginRead();
    if (!txn.ok()) return *error = txn.status().ToString(), false;
    std::string user_id;
    for (uint64_t id : batch) {
      auto j = txn->GetJob(id);
      if (!j.ok()) return *error = j.status().ToString(), false;
      if (!j->has_value()) continue;
      user_id = (*j)->user_id;
      if ((*j)->fields.is_object()) fields->update((*j)->fields);
    }
    if (user_id.empty()) return true;
    auto u = txn->GetUser(user_id);
    if (!u.ok()) return *error = u.status().ToString(), false;
    *user = std::move(*u);
    return true;
  }

  void SendUpdate(const std::string& uid, const std::vector<uint64_t>& batch, bool probe) {
    const std::string workos_id = jobs.at(batch.front()).job.workos_id;
    Json fields = Json::object();
    std::optional<UserRecord> user;
    std::string error;
    if (!ReadPublishState(batch, &fields, &user, &error)) {
      HttpResponse failed;
      failed.error = "cannot read the outbox job: " + error;
      --in_flight;  // nothing was sent
      --requests;
      if (probe) probe_in_flight = false;
      RetryLater(uid, batch, probe, failed, /*upstream=*/false);
      return Pump();
    }
    if (!user) fields.erase(std::string(domain::kJobDocument));
    UserRecord u = user.value_or(UserRecord{});
    domain::PublishPlan plan = domain::PlanPublish(fields, u, nullptr, *opt.sync);
    if (!plan.read_first) return Publish(uid, batch, probe, workos_id, std::move(plan), /*second=*/false);
    ++reads_first;
    workos->GetUserRaw(workos_id, [this, alive = alive, uid, batch, probe, workos_id, fields, u](HttpResponse&& g) {
      if (!*alive) return;
      // Refused before anything was sent: the dead letter takes the job's
      // whole pending state.
      domain::PublishSent all = domain::PendingState(fields, u);
      if (closed || g.cancelled || !Is2xx(g.status)) return OnResponse(uid, batch, probe, std::move(g), &all);
      auto shown = ParseWorkosUser(Json::parse(g.body, nullptr, false));
      if (!shown) {
        std::string why = Json{{"error", "WorkOS returned an unreadable user"}}.dump();
        return Finish(probe, g.status, MakeSettle(uid, batch, all, g.status, why));
      }
      domain::PublishPlan plan = domain::PlanPublish(fields, u, &*shown, *opt.sync);
      Publish(uid, batch, probe, workos_id, std::move(plan), /*second=*/true);
    });
  }

  // Sends a planned publish (the PUT), or settles it at once when there is
  // nothing to send or it cannot apply. `second`: a GET went first.
  void Publish(const std::string& uid, const std::vector<uint64_t>& batch, bool probe, const std::string& workos_id,
               domain::PublishPlan plan, bool second) {
    Settle s = MakeSettle(uid, batch, plan.sent, 200);
    s.learned_external_id = plan.learned_external_id;
    s.keep_imported_id = plan.keep_imported_id;
    s.workos_id = workos_id;
    if (plan.refusal) {
      s.refusal = plan.refusal;
      return Finish(probe, 0, std::move(s));
    }
    if (plan.body.empty()) {
      --requests;  // nothing to send after all (no request was made)
      return Finish(probe, -1, std::move(s));
    }
    if (second) {
      ++requests;
      if (opt.budget) opt.budget->Charge(clock.MonotonicMs());
    }
    workos->PutUser(workos_id, plan.body, [this, alive = alive, s = std::move(s), probe](HttpResponse&& r) mutable {
      if (!*alive) return;
      OnPublishAnswer(std::move(s), probe, std::move(r));
    });
  }

  void OnPublishAnswer(Settle s, bool probe, HttpResponse&& r) {
    if (closed || r.cancelled || !Is2xx(r.status)) return OnResponse(s.uid, s.batch, probe, std::move(r), &s.sent);
    s.status = r.status;
    s.answer = ParseWorkosUser(Json::parse(r.body, nullptr, false));
    Finish(probe, r.status, std::move(s));
  }

  // The end of a request whose publish is settled by a store write: the
  // user stays busy until that write commits (SettleDone).
  void Finish(bool probe, int status, Settle s) {
    --in_flight;
    if (probe) probe_in_flight = false;
    if (closed) return;
    if (status >= 0) ++by_status[status];
    if (paused && status >= 0) Resume("WorkOS answered");
    settle_buf.push_back(std::move(s));
    if (!settle_in_flight) FlushSettles();
    Pump();
  }

  // A failed attempt to retry later (the job's backoff; with `upstream`,
  // the whole sender pauses too).
  void RetryLater(const std::string& uid, const std::vector<uint64_t>& batch, bool probe, const HttpResponse& r,
                  bool upstream) {
    auto uit = users.find(uid);
    auto hit = jobs.find(batch.front());
    if (uit == users.end() || hit == jobs.end()) return;
    uit->second.busy = false;
    int64_t now = clock.NowMs();
    Entry& head = hit->second;
    uint32_t attempt = head.job.attempts;
    int64_t delay = BackoffDelayMs(opt, attempt, random(), r.retry_after_ms);
    head.job.attempts = attempt + 1;
    head.job.next_attempt_at_ms = now + delay;
    head.job.last_error = Describe(r);
    head.due_ms = now + delay;
    head.last_status = r.status;
    SubmitUpdate(head.job);
    LogDebug(
        "outbox: retrying later",
        {{"job", std::to_string(head.job.id)}, {"delay_ms", std::to_string(delay)}, {"error", head.job.last_error}});
    if (r.retry_after_ms) hold_until = std::max(hold_until, now + BackoffDelayMs(opt, 0, 0.0, r.retry_after_ms));
    if (upstream) {
      if (!paused) {
        paused = true;
        pause_for_key = KeyRefused(r);
        pause_attempt = 0;
        pause_until = now + BackoffDelayMs(opt, 0, random(), r.retry_after_ms);
        if (KeyRefused(r)) {
          LogWarn("outbox: WorkOS refuses the API key; pausing delivery until it is accepted (nothing is dropped)",
                  {{"status", std::to_string(r.status)}, {"retry_in_ms", std::to_string(pause_until - now)}});
        } else {
          LogWarn("outbox: WorkOS is not answering; pausing delivery",
                  {{"error", head.job.last_error.substr(0, 200)}, {"retry_in_ms", std::to_string(pause_until - now)}});
        }
      } else if (probe) {
        ++pause_attempt;
        pause_until = now + BackoffDelayMs(opt, pause_attempt, random(), r.retry_after_ms);
      }
    }
    Reschedule(uid);
  }

  // `sent`: what a publish sent, when the answer refuses it.
  void OnResponse(const std::string& uid, const std::vector<uint64_t>& batch, bool probe, HttpResponse&& r,
                  const domain::PublishSent* sent = nullptr) {
    if (closed || r.cancelled) {
      // Cancelled at shutdown: the jobs stay in the store and go out after
      // the restart.
      --in_flight;
      if (probe) probe_in_flight = false;
      return;
    }
    auto uit = users.find(uid);
    auto hit = jobs.find(batch.front());
    if (uit == users.end() || hit == jobs.end()) {  // cannot happen: busy users keep their jobs
      --in_flight;
      if (probe) probe_in_flight = false;
      return;
    }
    Entry& head = hit->second;
    JobOp op = head.job.op;
    bool ok = Is2xx(r.status) || (op == JobOp::kDelete && r.status == 404);
    // A re-read of a user WorkOS no longer has: the feed brings the delete.
    bool gone =
        op == JobOp::kFetch && r.status == 404 && head.job.fields.is_object() && head.job.fields.value("resync", false);
    if (op == JobOp::kUpdate && !ok && !IsRetryable(r) && !KeyRefused(r)) {
      // WorkOS answered, and refused: a dead letter with what was asked
      // for (logged when it is stored), and the user's later jobs go on.
      Settle s = MakeSettle(uid, batch, sent ? *sent : domain::PublishSent{}, r.status, r.body.substr(0, 4096));
      return Finish(probe, r.status, std::move(s));
    }
    --in_flight;
    if (probe) probe_in_flight = false;
    ++by_status[r.status];
    std::optional<domain::WorkosProfileSource::Profile> profile;
    if (ok && op == JobOp::kFetch) {
      profile = ParseWorkosUser(Json::parse(r.body, nullptr, false));
      if (!profile) ok = false;  // an unreadable user: not worth retrying
    }
    if (gone) {
      ok = true;
      op = JobOp::kDelete;  // nothing to apply: delivered
    }
    if (ok) {
      uit->second.busy = false;
      if (paused) Resume("a request succeeded");
      if (op == JobOp::kFetch) {
        SubmitFetchApply(head.job, *profile);
      } else {
        // The user stays busy until the removal of these jobs is durable:
        // otherwise a crash in between re-sends them after the user's next
        // job (e.g. a PUT after the DELETE, a 404 and a dead letter).
        uit->second.busy = true;
        removal_owner[batch.back()] = uid;
        SubmitDelete(batch);
      }
      delivered += batch.size();
      ForgetJobs(uid, batch);
    } else if (IsRetryable(r) || KeyRefused(r)) {
      RetryLater(uid, batch, probe, r, UpstreamDown(r) || KeyRefused(r));
      Pump();
      return;
    } else {
      uit->second.busy = false;
      if (paused) Resume("WorkOS answered");
      std::vector<OutboxJob> dead;
      for (uint64_t id : batch) dead.push_back(jobs.at(id).job);
      LogWarn("outbox: WorkOS refused a change; moved to dead letters", {{"job", std::to_string(batch.front())},
                                                                         {"jobs", std::to_string(batch.size())},
                                                                         {"user", head.job.user_id},
                                                                         {"op", store::JobOpName(op)},
                                                                         {"status", std::to_string(r.status)}});
      SubmitDeadLetter(std::move(dead), r.status, r.body.substr(0, 4096));
      dead_lettered += batch.size();
      ForgetJobs(uid, batch);
    }
    Reschedule(uid);
    Pump();
  }

  // A job older than max_age is given up without another request.
  void Expire(const std::string& uid, int64_t now) {
    UserQ& q = users.at(uid);
    uint64_t id = q.ids.front();
    Entry& e = jobs.at(id);
    std::string body =
        "job is older than outbox.max_age_seconds (" + std::to_string((now - e.job.created_at_ms) / 1000) + " s)";
    if (!e.job.last_error.empty()) body += "; last error: " + e.job.last_error;
    LogWarn("outbox: job expired; moved to dead letters",
            {{"job", std::to_string(id)}, {"user", e.job.user_id}, {"op", store::JobOpName(e.job.op)}});
    SubmitDeadLetter({e.job}, e.last_status, body);
    ++dead_lettered;
    ForgetJobs(uid, {id});
    Reschedule(uid);
  }

  void Resume(const char* why) {
    paused = false;
    pause_for_key = false;
    pause_attempt = 0;
    pause_until = 0;
    LogInfo("outbox: WorkOS is answering; resuming delivery", {{"reason", why}});
  }

  // ------------------------------------------------------------ writes

  void Submit(store::WriteOp op, std::vector<uint64_t> removes, const char* what,
              std::function<void()> after = nullptr) {
    ++pending_writes;
    writer->Submit(std::move(op),
                   [this, alive = alive, removes = std::move(removes), what, after = std::move(after)](Status st) {
                     if (!*alive) return;
                     --pending_writes;
                     for (uint64_t id : removes) removing.erase(id);
                     // A failed write leaves the job in the store: it is sent again after a
                     // restart (at least once), or picked up by the next count check.
                     if (!st.ok()) LogError("outbox: store write failed", {{"what", what}, {"error", st.ToString()}});
                     if (after) after();
                   });
  }

  // Deletions of delivered jobs are grouped: one WriteOp at a time, carrying
  // every job delivered while the previous one was committing. Each op costs
  // a nested LMDB transaction, so one per job would make the commit the
  // bottleneck of a busy outbox.
  void SubmitDelete(const std::vector<uint64_t>& ids) {
    delete_buf.insert(delete_buf.end(), ids.begin(), ids.end());
    if (!delete_in_flight) FlushDeletes();
  }

  void FlushDeletes() {
    if (delete_buf.empty()) return;
    std::vector<uint64_t> ids = std::move(delete_buf);
    delete_buf.clear();
    delete_in_flight = true;
    auto resyncs = std::make_shared<size_t>(0);
    int64_t now = clock.NowMs();
    Submit(
        [ids, resyncs, now, sync = opt.sync](WriteTxn& t) -> Status {
          *resyncs = 0;
          std::set<std::string> delivered_users;
          for (uint64_t id : ids) {
            auto j = t.GetJob(id);
            if (!j.ok()) return j.status();
            if (j->has_value()) delivered_users.insert((*j)->user_id);
            USERSD_RETURN_IF_ERROR(t.DeleteJob(id));
          }
          const domain::MutationContext ctx{now, sync.get()};
          for (const auto& uid : delivered_users) {
            auto q = domain::QueueResyncIfMarked(t, uid, ctx);
            if (!q.ok()) return q.status();
            if (*q) ++*resyncs;
          }
          return Status::Ok();
        },
        ids, "delete delivered jobs",
        [this, ids, resyncs] {
          delete_in_flight = false;
          if (*resyncs > 0) kick_pending = true;
          for (uint64_t id : ids) {
            auto o = removal_owner.find(id);
            if (o == removal_owner.end()) continue;
            std::string uid = std::move(o->second);
            removal_owner.erase(o);
            if (auto u = users.find(uid); u != users.end()) u->second.busy = false;
            Reschedule(uid);
          }
          FlushDeletes();
          Pump();
        });
  }

  void SubmitUpdate(const OutboxJob& job) {
    Submit(
        [job](WriteTxn& t) -> Status {
          // Only the retry state: the stored job may have moved to another
          // user id meanwhile (a re-key).
          auto cur = t.GetJob(job.id);
          if (!cur.ok()) return cur.status();
          if (!cur->has_value()) return Status::Ok();
          OutboxJob updated = std::move(**cur);
          updated.attempts = job.attempts;
          updated.next_attempt_at_ms = job.next_attempt_at_ms;
          updated.last_error = job.last_error;
          return t.UpdateJob(updated);
        },
        {}, "record a retry");
  }

  void SubmitDeadLetter(std::vector<OutboxJob> jobs_to_bury, int status, std::string body) {
    std::vector<uint64_t> ids;
    for (const auto& j : jobs_to_bury) ids.push_back(j.id);
    int64_t now = clock.NowMs();
    Submit(
        [jobs_to_bury = std::move(jobs_to_bury), status, body = std::move(body), now](WriteTxn& t) -> Status {
          for (const auto& j : jobs_to_bury) {
            auto cur = t.GetJob(j.id);
            if (!cur.ok()) return cur.status();
            if (!cur->has_value()) continue;  // removed meanwhile
            USERSD_RETURN_IF_ERROR(t.MoveToDeadLetter(j, status, body, now));
          }
          return Status::Ok();
        },
        std::move(ids), "move to dead letters");
  }

  // Applies a fetched profile to a user provisioned without WorkOS
  // (domain::ApplyFetchedProfile), then deletes the job. The user change
  // commits in a nested transaction so that a conflict loses only the
  // change, never the job's deletion.
  void SubmitFetchApply(const OutboxJob& job, domain::WorkosProfileSource::Profile p) {
    int64_t now = clock.NowMs();
    uint64_t job_id = job.id;
    std::string user_id = job.user_id;
    bool resync = job.fields.is_object() && job.fields.value("resync", false);
    Submit(
        [job_id, user_id, p, now, resync, sync = opt.sync](WriteTxn& t) -> Status {
          auto still = t.GetJob(job_id);
          if (!still.ok()) return still.status();
          if (!still->has_value()) return Status::Ok();
          // Deleted first: the job must not count as a pending change.
          USERSD_RETURN_IF_ERROR(t.DeleteJob(job_id));
          auto [must_return, r] = store::ApplyNested(t, [&](WriteTxn& child) {
            return domain::ApplyFetchedProfile(child, p, resync, domain::MutationContext{now, sync.get()});
          });
          USERSD_RETURN_IF_ERROR(must_return);
          if (r.ok()) return Status::Ok();
          LogWarn("outbox: could not apply the fetched profile", {{"user", user_id}, {"error", r.status().ToString()}});
          return Status::Ok();
        },
        {job_id}, "apply a fetched profile",
        [this] {
          kick_pending = true;
          Arm(clock.NowMs());
        });
  }

  // The store writes of answered publishes, grouped like deletions: one
  // WriteOp at a time carries every publish answered while the previous one
  // was committing. Each publish settles in its own nested transaction, so
  // one that cannot be applied (logged) does not hold back the others.
  void FlushSettles() {
    if (settle_buf.empty()) return;
    auto batch = std::make_shared<std::vector<Settle>>(std::move(settle_buf));
    settle_buf.clear();
    settle_in_flight = true;
    int64_t now = clock.NowMs();
    Submit(
        [batch, now, sync = opt.sync](WriteTxn& t) -> Status {
          const domain::MutationContext ctx{now, sync.get()};
          for (Settle& s : *batch) {
            s.kept = false;
            s.not_taken.reset();
            s.queued_resync = false;
            auto [must_return, st] = store::ApplyNested(t, [&](WriteTxn& child) { return SettleOne(child, s, ctx); });
            USERSD_RETURN_IF_ERROR(must_return);
            if (st.ok()) continue;
            LogError("outbox: could not record a publish; it is sent again",
                     {{"job", std::to_string(s.batch.back())}, {"error", st.ToString()}});
            s.kept = true;
          }
          return Status::Ok();
        },
        {}, "record publishes",
        [this, batch] {
          settle_in_flight = false;
          // An answer may have queued work (a re-read, or a publish when it
          // showed WorkOS without a value this host holds): read the table.
          for (Settle& s : *batch) SettleDone(s);
          kick_pending = true;
          FlushSettles();
          Pump();
        });
  }

  static Status SettleOne(WriteTxn& t, Settle& s, const domain::MutationContext& ctx) {
    if (s.keep_imported_id) {
      USERSD_RETURN_IF_ERROR(domain::KeepImportedId(t, s.workos_id, ctx));
    } else if (s.learned_external_id) {
      USERSD_RETURN_IF_ERROR(domain::LearnExternalId(t, s.workos_id, *s.learned_external_id, ctx));
    }
    auto r = s.refusal ? domain::RefusePublish(t, s.batch, s.sent, s.status, *s.refusal, ctx)
                       : domain::CompletePublish(t, s.batch, s.sent, s.answer, s.status, ctx);
    if (!r.ok()) return r.status();
    s.kept = r->job_kept;
    s.not_taken = r->not_taken;
    s.queued_resync = r->queued_resync;
    return Status::Ok();
  }

  // After the write: delivered jobs leave the window; a kept job (written
  // to during the flight) is due again at once.
  void SettleDone(const Settle& s) {
    if (s.refusal) {
      ++dead_lettered;
      LogWarn("outbox: WorkOS refused a change, or it cannot apply; moved to dead letters",
              {{"job", std::to_string(s.batch.back())},
               {"status", std::to_string(s.status)},
               {"detail", s.refusal->substr(0, 300)}});
    } else if (s.not_taken) {
      ++dead_lettered;
      ++not_taken_count;
      LogWarn("outbox: WorkOS answered the update without taking a field; moved to dead letters",
              {{"job", std::to_string(s.batch.back())}, {"detail", s.not_taken->substr(0, 300)}});
    }
    if (!s.refusal && !s.not_taken) delivered += s.batch.size();
    std::vector<uint64_t> gone(s.batch.begin(), s.batch.end() - (s.kept ? 1 : 0));
    DropJobs(s.uid, gone);
    if (s.kept) {
      ++kept_count;
      if (auto e = jobs.find(s.batch.back()); e != jobs.end()) {
        e->second.due_ms = clock.NowMs();
        e->second.job.attempts = 0;
        e->second.job.last_error.clear();
      }
    }
    if (auto u = users.find(s.uid); u != users.end()) u->second.busy = false;
    Reschedule(s.uid);
  }
};

OutboxSender::OutboxSender(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer,
                           const Clock& clock, OutboxOptions options, Random random)
    : impl_(std::make_unique<Impl>(loop, workos, store, writer, clock, options, std::move(random))) {}

OutboxSender::~OutboxSender() {
  *impl_->alive = false;
}

void OutboxSender::Start() {
  Impl& m = *impl_;
  if (m.started || m.closed) return;
  m.started = true;
  m.LoadJobs();
  m.Pump();
  if (!m.jobs.empty()) {
    LogInfo("outbox: jobs waiting", {{"jobs", std::to_string(m.jobs.size()) + (m.more ? "+" : "")}});
  }
}

void OutboxSender::Kick() {
  Impl& m = *impl_;
  if (m.closed || !m.started) return;
  // The daemon kicks when WorkOS accepts the key again or a reload brought
  // another key: a pause for a refused key ends with a probe at once.
  if (m.paused && m.pause_for_key) m.pause_until = std::min(m.pause_until, m.clock.NowMs());
  m.kick_pending = true;
  m.Arm(m.clock.NowMs());
}

void OutboxSender::SetOptions(OutboxOptions options) {
  impl_->opt = options;
  impl_->Pump();
}

void OutboxSender::Tick() {
  impl_->Tick();
}

void OutboxSender::Close() {
  Impl& m = *impl_;
  if (m.closed) return;
  m.FlushDeletes();  // still accepted: the writer stops after the sync parts
  m.FlushSettles();
  m.closed = true;
  m.timer.Close();
}

OutboxStats OutboxSender::stats() const {
  const Impl& m = *impl_;
  OutboxStats s;
  s.depth = m.jobs.size();
  if (!m.jobs.empty())
    s.oldest_age_ms = std::max<int64_t>(0, m.clock.NowMs() - m.jobs.begin()->second.job.created_at_ms);
  s.in_flight = m.in_flight;
  s.requests = m.requests;
  s.delivered = m.delivered;
  s.dead_lettered = m.dead_lettered;
  s.not_taken = m.not_taken_count;
  s.reads_first = m.reads_first;
  s.kept = m.kept_count;
  s.pending_writes = m.pending_writes + (m.delete_buf.empty() ? 0 : 1) + (m.settle_buf.empty() ? 0 : 1);
  s.sends_by_status = m.by_status;
  s.paused = m.paused;
  s.paused_until_ms = m.paused ? m.pause_until : 0;
  s.next_wakeup_ms = m.next_wakeup;
  return s;
}

void OutboxSender::ExportMetrics(Metrics& m) const {
  OutboxStats s = stats();
  m.Describe("usersd_outbox_in_flight", "gauge", "Outbox requests to WorkOS in flight.");
  m.Describe("usersd_outbox_sends_total", "counter", "Outbox requests to WorkOS by HTTP status (0 = transport failure).");
  m.Describe("usersd_outbox_delivered_total", "counter", "Outbox jobs WorkOS acknowledged.");
  m.Describe("usersd_outbox_dead_lettered_total", "counter", "Outbox jobs moved to the dead-letter table.");
  m.Describe("usersd_outbox_not_taken_total", "counter",
             "Updates WorkOS answered 2xx while showing another value for a field sent (dead-lettered).");
  m.Set("usersd_outbox_in_flight", {}, static_cast<double>(s.in_flight));
  for (const auto& [status, n] : s.sends_by_status)
    m.Set("usersd_outbox_sends_total", {{"status", std::to_string(status)}}, static_cast<double>(n));
  m.Set("usersd_outbox_delivered_total", {}, static_cast<double>(s.delivered));
  m.Set("usersd_outbox_dead_lettered_total", {}, static_cast<double>(s.dead_lettered));
  m.Set("usersd_outbox_not_taken_total", {}, static_cast<double>(s.not_taken));
  m.Describe("usersd_outbox_reads_first_total", "counter",
             "GETs made before a publish: an external_id not known to be empty, or a user that carries metadata keys "
             "of the application (sync.metadata.read_first).");
  m.Describe("usersd_outbox_kept_total", "counter",
             "Publishes after which a write made during the request left the user to send again.");
  m.Set("usersd_outbox_reads_first_total", {}, static_cast<double>(s.reads_first));
  m.Set("usersd_outbox_kept_total", {}, static_cast<double>(s.kept));
}

}  // namespace usersd::sync
