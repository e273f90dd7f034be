#include "sync/outbox_sender.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/log.h"
#include "common/text.h"
#include "domain/remote_user.h"
#include "domain/validate.h"
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

std::string Describe(const HttpResponse& r) {
  std::string s;
  if (r.status == 0) {
    s = r.timed_out ? "timeout: " : "transport: ";
    s += r.error;
  } else {
    s = "HTTP " + std::to_string(r.status);
    if (!r.body.empty()) s += ": " + r.body.substr(0, kMaxErrorText);
  }
  return s;
}

// Compares a PUT's answer (the WorkOS user after the change) with what was
// sent. Returns a description naming each field that WorkOS shows with
// another value, or nullopt when every field sent took (or the answer is not
// a user object, so there is nothing to compare). Emails compare
// case-insensitively: WorkOS may lower-case them.
std::optional<std::string> FieldsFromAnswerNotTaken(const Json& sent, const std::string& answer_text) {
  Json answer = Json::parse(answer_text, nullptr, false);
  if (!answer.is_object() || !sent.is_object()) return std::nullopt;
  Json mismatches = Json::array();
  for (auto it = sent.begin(); it != sent.end(); ++it) {
    auto got = answer.find(it.key());
    if (got == answer.end()) continue;  // not shown: cannot tell
    bool same = *got == it.value();
    if (!same && it.key() == "metadata" && got->is_object() && it.value().is_object()) {
      // Under merge semantics WorkOS may show more keys than were sent (and
      // may drop keys sent as ""): compare what was sent.
      same = true;
      for (auto kv = it.value().begin(); kv != it.value().end(); ++kv) {
        auto g = got->find(kv.key());
        bool empty_sent = kv.value().is_string() && kv.value().get_ref<const std::string&>().empty();
        if (g == got->end() ? !empty_sent : *g != kv.value()) same = false;
      }
    }
    if (!same && it.key() == "email" && got->is_string() && it.value().is_string()) {
      same = ToLowerAscii(got->get<std::string>()) == ToLowerAscii(it.value().get<std::string>());
    }
    if (!same) mismatches.push_back(Json{{"field", it.key()}, {"sent", it.value()}, {"answered", *got}});
  }
  if (mismatches.empty()) return std::nullopt;
  std::string names;
  for (const auto& m : mismatches) names += (names.empty() ? "" : ", ") + m["field"].get<std::string>();
  return Json{{"error", "WorkOS answered the update with other values; the change did not take: " + names},
              {"fields", mismatches}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

bool NeedsRead(const Json& fields, const domain::SyncPolicy& sync) {
  if (!fields.is_object()) return false;
  if (fields.contains("external_id")) return true;
  if (!sync.metadata.enabled) return false;
  for (auto name : domain::kSharedFields)
    if (fields.contains(std::string(name))) return true;
  return false;
}

PutPlan PlanPut(const Json& fields, const domain::WorkosProfileSource::Profile& shown, const domain::SyncPolicy& sync) {
  PutPlan plan;
  if (!fields.is_object()) return plan;
  for (const char* k : {"first_name", "last_name", "email"})
    if (auto it = fields.find(k); it != fields.end()) plan.body[k] = *it;

  if (sync.metadata.enabled) {
    bool any = false;
    for (auto name : domain::kSharedFields) any = any || fields.contains(std::string(name));
    if (any) {
      Json doc = Json::object();
      auto shown_doc = domain::DecodeDocument(shown.metadata, sync.metadata);
      if (!shown_doc.ok()) {
        LogWarn("outbox: WorkOS holds an unreadable shared-fields document; writing a new one",
                {{"workos_id", shown.workos_id}, {"error", shown_doc.status().message()}});
      } else if (shown_doc->has_value()) {
        doc = std::move(**shown_doc);
      }
      for (auto name : domain::kSharedFields) {
        std::string key(name);
        if (auto it = fields.find(key); it != fields.end()) doc[key] = *it;
      }
      auto md = domain::MetadataForPut(shown.metadata, doc, sync.metadata);
      if (!md.ok()) {
        plan.refusal =
            Json{{"error", "the shared fields cannot be written to WorkOS metadata: " + md.status().message()}}.dump(
                -1, ' ', false, Json::error_handler_t::replace);
        return plan;
      }
      plan.body["metadata"] = std::move(*md);
    }
  }

  if (auto it = fields.find("external_id"); it != fields.end() && it->is_string()) {
    const std::string& want = it->get_ref<const std::string&>();
    bool imported = fields.value("external_id_import", false);
    const std::optional<std::string>& have = shown.external_id;
    if (!have) {
      plan.body["external_id"] = want;
      plan.sets_external_id = true;
    } else if (ToLowerAscii(*have) == ToLowerAscii(want)) {
      plan.learned_external_id = have;
    } else if (imported) {
      plan.refusal = Json{
          {"error",
           "WorkOS already holds another external_id for this user; the imported id stays "
           "on this host only"},
          {"external_id", *have},
          {"imported_id",
           want}}.dump(-1, ' ', false, Json::error_handler_t::replace);
      plan.keep_imported_id = true;
      return plan;
    } else {
      // Another host published its id first (a UUID: this host re-keys), or
      // the application owns external_id (never changed).
      plan.learned_external_id = have;
    }
  }
  return plan;
}

int64_t BackoffDelayMs(const OutboxOptions& o, uint32_t attempt, double random01,
                       std::optional<int64_t> retry_after_ms) {
  int64_t initial = std::max<int64_t>(1, o.initial_backoff_ms);
  int64_t cap = std::max<int64_t>(0, o.max_backoff_ms);
  int64_t ceiling = std::min(initial, cap);
  for (uint32_t i = 0; i < attempt && ceiling < cap; ++i) ceiling = std::min(cap, ceiling * 2);
  if (!(random01 >= 0.0)) random01 = 0.0;  // also NaN
  if (random01 >= 1.0) random01 = std::nextafter(1.0, 0.0);
  auto delay = static_cast<int64_t>(std::floor(random01 * static_cast<double>(ceiling)));
  if (ceiling > 0 && delay >= ceiling) delay = ceiling - 1;
  if (retry_after_ms && *retry_after_ms > delay) {
    delay = std::min(*retry_after_ms, std::max(kMaxRetryAfterMs, cap));
  }
  return std::max<int64_t>(0, delay);
}

struct OutboxSender::Impl {
  // One job of the in-memory window. due_ms starts as the persisted
  // next_attempt_at_ms; last_status is the status of the last failed send in
  // this process (0 when unknown), for the dead letter of an expired job.
  struct Entry {
    OutboxJob job;
    int64_t due_ms = 0;
    int last_status = 0;
  };
  // The loaded jobs of one WorkOS user, in id order. `busy` while a request
  // for it is in flight; `key` is its entry in `ready` when it has one.
  struct UserQ {
    std::deque<uint64_t> ids;
    bool busy = false;
    std::optional<int64_t> key;
  };

  Impl(uv_loop_t* l, WorkosApi* w, store::Store* s, store::Writer* wr, const Clock& c, OutboxOptions o, Random r)
      : loop(l), workos(w), store(s), writer(wr), clock(c), opt(o), random(std::move(r)) {}

  uv_loop_t* loop;
  WorkosApi* workos;
  store::Store* store;
  store::Writer* writer;
  const Clock& clock;
  OutboxOptions opt;
  Random random;
  // Callbacks (HTTP, writer dones) check this before touching the Impl.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  uv_timer_t timer{};
  bool timer_open = false;
  bool timer_closed = false;
  bool started = false;
  bool closed = false;
  bool kick_pending = false;

  std::map<uint64_t, Entry> jobs;                   // the window, by id
  std::unordered_map<std::string, UserQ> users;     // by user id
  std::set<std::pair<int64_t, std::string>> ready;  // (due, user) of idle users with jobs
  std::unordered_set<uint64_t> removing;            // deletions submitted, not yet committed
  uint64_t loaded_upto = 0;                         // highest job id read from the store
  bool more = false;                                // the window was full at the last read

  size_t in_flight = 0;
  bool paused = false;
  bool probe_in_flight = false;
  int64_t pause_until = 0;
  uint32_t pause_attempt = 0;
  int64_t hold_until = 0;            // Retry-After floor for every send
  std::vector<uint64_t> delete_buf;  // delivered, deletion not yet submitted
  bool delete_in_flight = false;
  // Last job id of a delivered batch -> its user, busy until the deletion commits.
  std::unordered_map<uint64_t, std::string> removal_owner;

  uint64_t requests = 0, delivered = 0, dead_lettered = 0, pending_writes = 0;
  uint64_t not_taken_count = 0;  // PUTs answered 2xx with another value
  std::map<int, uint64_t> by_status;
  int64_t next_wakeup = 0;

  size_t MaxInFlight() const { return std::max<size_t>(1, opt.max_in_flight); }

  // ------------------------------------------------------------ window

  // Queues are per WorkOS user, not per local id: a re-key moves the stored
  // jobs to the new id, but the window still holds some under the old one,
  // and both must go one at a time, in job order.
  static std::string QueueOf(const OutboxJob& job) {
    return job.workos_id.empty() ? "local:" + job.user_id : job.workos_id;
  }

  void Add(OutboxJob job) {
    uint64_t id = job.id;
    std::string uid = QueueOf(job);
    int64_t due = job.next_attempt_at_ms;
    if (!jobs.emplace(id, Entry{std::move(job), due, 0}).second) return;
    UserQ& q = users[uid];
    bool new_head = q.ids.empty() || id < q.ids.front();
    if (q.ids.empty() || q.ids.back() < id) {
      q.ids.push_back(id);
    } else {
      q.ids.insert(std::upper_bound(q.ids.begin(), q.ids.end(), id), id);
    }
    if (new_head) Reschedule(uid);
  }

  // Reads jobs above loaded_upto into the window; then, when the whole table
  // is read, checks that nothing below it was missed.
  void Load() {
    if (jobs.size() >= kWindow) {
      more = true;
      return;
    }
    auto txn = store->BeginRead();
    if (!txn.ok()) {
      LogWarn("outbox: cannot read the store", {{"error", txn.status().ToString()}});
      return;
    }
    size_t room = kWindow - jobs.size();
    auto list = txn->ListJobsAfter(loaded_upto, room);
    if (!list.ok()) {
      LogWarn("outbox: cannot read jobs", {{"error", list.status().ToString()}});
      return;
    }
    for (auto& j : *list) {
      loaded_upto = std::max(loaded_upto, j.id);
      Add(std::move(j));
    }
    more = list->size() == room;
    if (!more) {
      // Every job in the table is in the window or being removed, unless one
      // was put back under an id below loaded_upto (a re-queued dead letter).
      uint64_t count = txn->CountEntries(store::Table::kOutbox);
      if (count > jobs.size() + removing.size()) Resync(*txn);
    }
  }

  void Resync(store::ReadTxn& txn) {
    uint64_t after = 0;
    for (;;) {
      auto chunk = txn.ListJobsAfter(after, 1024);
      if (!chunk.ok()) return;
      for (auto& j : *chunk) {
        after = j.id;
        if (j.id > loaded_upto) return;  // read by Load already
        if (jobs.count(j.id) || removing.count(j.id)) continue;
        if (jobs.size() >= kWindow) {
          more = true;
          return;
        }
        LogInfo("outbox: picked up a re-queued job", {{"job", std::to_string(j.id)}});
        Add(std::move(j));
      }
      if (chunk->size() < 1024) return;
    }
  }

  // Puts `uid` back into `ready` keyed by its head job's due time, or drops
  // the user when it has nothing left. Invalidates references into `users`.
  void Reschedule(const std::string& uid) {
    auto it = users.find(uid);
    if (it == users.end()) return;
    UserQ& q = it->second;
    if (q.key) {
      ready.erase({*q.key, uid});
      q.key.reset();
    }
    if (q.busy) return;
    if (q.ids.empty()) {
      users.erase(it);
      return;
    }
    int64_t due = jobs.at(q.ids.front()).due_ms;
    ready.emplace(due, uid);
    q.key = due;
  }

  // Drops delivered or dead-lettered jobs from memory.
  void Forget(const std::string& uid, const std::vector<uint64_t>& ids) {
    auto it = users.find(uid);
    for (uint64_t id : ids) {
      jobs.erase(id);
      removing.insert(id);
      if (it != users.end()) {
        auto& d = it->second.ids;
        auto pos = std::find(d.begin(), d.end(), id);
        if (pos != d.end()) d.erase(pos);
      }
    }
    if (more && jobs.size() < kWindow / 2) kick_pending = true;
  }

  // ------------------------------------------------------------ sending

  void Pump() {
    if (!started || closed) return;
    int64_t now = clock.NowMs();
    if (!workos->Configured()) {
      Arm(now);
      return;
    }
    if (paused && !probe_in_flight && workos->state() == UpstreamState::kOnline) {
      Resume("WorkOS answered other requests");
    }
    while (!ready.empty()) {
      auto [due, uid] = *ready.begin();
      if (due > now) break;
      UserQ& q = users.at(uid);
      Entry& head = jobs.at(q.ids.front());
      if (now - head.job.created_at_ms >= opt.max_age_ms) {
        Expire(uid, now);
        continue;
      }
      if (in_flight >= MaxInFlight() || now < hold_until) break;
      bool probe = paused;
      if (paused && (now < pause_until || probe_in_flight)) break;
      Send(uid, probe);
      if (probe) break;
    }
    Arm(now);
  }

  void Arm(int64_t now) {
    if (!timer_open || closed) return;
    std::optional<int64_t> next;
    if (kick_pending) {
      next = now;
    } else if (started && workos->Configured() && !ready.empty()) {
      bool can_send = in_flight < MaxInFlight() && !(paused && probe_in_flight);
      if (can_send) {
        int64_t t = std::max(ready.begin()->first, hold_until);
        if (paused) {
          t = std::max(t, pause_until);
          t = std::min(t, now + kOnlineCheckMs);
        }
        next = t;
      }
    }
    if (!next) {
      uv_timer_stop(&timer);
      next_wakeup = 0;
      return;
    }
    int64_t delay = std::max<int64_t>(0, *next - now);
    next_wakeup = now + delay;
    uv_timer_start(
        &timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->Tick(); }, static_cast<uint64_t>(delay), 0);
  }

  void Tick() {
    if (closed) return;
    if (kick_pending) {
      kick_pending = false;
      if (started) Load();
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
    Json fields = head.fields.is_object() ? head.fields : Json::object();
    if (op == JobOp::kUpdate) {
      for (size_t i = 1; i < q.ids.size() && batch.size() < kMaxMerge; ++i) {
        const OutboxJob& j = jobs.at(q.ids[i]).job;
        if (j.op != JobOp::kUpdate || j.workos_id != workos_id) break;
        if (j.fields.is_object()) fields.update(j.fields);
        batch.push_back(j.id);
      }
    }
    ++in_flight;
    ++requests;
    if (probe) probe_in_flight = true;
    if (op == JobOp::kUpdate && opt.sync->metadata.enabled == false) {
      for (auto name : domain::kSharedFields) fields.erase(std::string(name));
    }
    if (op == JobOp::kUpdate && NeedsRead(fields, *opt.sync)) {
      // Read-modify-write (SPEC 4b): the document and external_id are
      // written over what WorkOS shows now.
      workos->GetUserRaw(workos_id, [this, alive = alive, uid, batch, probe, workos_id, fields](HttpResponse&& g) {
        if (!*alive) return;
        if (closed || g.cancelled || !Is2xx(g.status)) return OnResponse(uid, batch, probe, std::move(g), nullptr);
        auto shown = ParseWorkosUser(Json::parse(g.body, nullptr, false));
        if (!shown) {
          std::string why = Json{{"error", "WorkOS returned an unreadable user"}}.dump();
          return OnResponse(uid, batch, probe, std::move(g), nullptr, why);
        }
        PutPlan plan = PlanPut(fields, *shown, *opt.sync);
        if (plan.learned_external_id || plan.keep_imported_id) SubmitLearn(workos_id, plan);
        if (plan.refusal) return OnResponse(uid, batch, probe, std::move(g), nullptr, plan.refusal);
        if (plan.body.empty()) return OnResponse(uid, batch, probe, std::move(g), nullptr);
        ++requests;
        auto sent = std::make_shared<Json>(plan.body);
        bool sets = plan.sets_external_id;
        workos->PutUser(workos_id, plan.body,
                        [this, alive, uid, batch, probe, sent, sets, workos_id, fields](HttpResponse&& r) {
                          if (!*alive) return;
                          if (sets && Is2xx(r.status) && !closed && !r.cancelled) {
                            PutPlan learned;
                            learned.learned_external_id = fields["external_id"].get<std::string>();
                            SubmitLearn(workos_id, learned);
                          }
                          OnResponse(uid, batch, probe, std::move(r), sent.get());
                        });
      });
      return;
    }
    auto sent = op == JobOp::kUpdate ? std::make_shared<Json>(fields) : nullptr;
    auto cb = [this, alive = alive, uid, batch, probe, sent](HttpResponse&& r) {
      if (!*alive) return;
      OnResponse(uid, batch, probe, std::move(r), sent.get());
    };
    switch (op) {
      case JobOp::kUpdate:
        if (fields.empty()) {
          // Everything it carried is off (sharing disabled): nothing to send.
          HttpResponse none;
          none.status = 200;
          return OnResponse(uid, batch, probe, std::move(none), nullptr);
        }
        workos->PutUser(workos_id, fields, std::move(cb));
        break;
      case JobOp::kDelete:
        workos->DeleteUser(workos_id, std::move(cb));
        break;
      case JobOp::kFetch:
        workos->GetUserRaw(workos_id, std::move(cb));
        break;
    }
  }

  // `refusal`: the job cannot be applied to the user WorkOS showed (the
  // answer of the read in a read-modify-write); it becomes a dead letter.
  void OnResponse(const std::string& uid, const std::vector<uint64_t>& batch, bool probe, HttpResponse&& r,
                  const Json* sent, std::optional<std::string> refusal = std::nullopt) {
    --in_flight;
    if (probe) probe_in_flight = false;
    // Cancelled at shutdown: the jobs stay in the store and go out after the
    // restart.
    if (closed || r.cancelled) return;
    ++by_status[r.status];
    auto uit = users.find(uid);
    auto hit = jobs.find(batch.front());
    if (uit == users.end() || hit == jobs.end()) return;  // cannot happen: busy users keep their jobs
    uit->second.busy = false;
    int64_t now = clock.NowMs();
    Entry& head = hit->second;
    JobOp op = head.job.op;

    bool ok = Is2xx(r.status) || (op == JobOp::kDelete && r.status == 404);
    // A re-read of a user WorkOS no longer has: the feed brings the delete.
    bool gone =
        op == JobOp::kFetch && r.status == 404 && head.job.fields.is_object() && head.job.fields.value("resync", false);
    if (gone) {
      ok = true;
      op = JobOp::kDelete;  // nothing to apply: delivered
    }
    std::optional<domain::WorkosProfileSource::Profile> profile;
    if (ok && op == JobOp::kFetch) {
      profile = ParseWorkosUser(Json::parse(r.body, nullptr, false));
      if (!profile) ok = false;  // an unreadable user: not worth retrying
    }

    std::optional<std::string> not_taken;
    if (ok && op == JobOp::kUpdate && sent) not_taken = FieldsFromAnswerNotTaken(*sent, r.body);

    if (ok && refusal) {
      if (paused) Resume("a request succeeded");
      std::vector<OutboxJob> dead;
      for (uint64_t id : batch) dead.push_back(jobs.at(id).job);
      LogWarn("outbox: the change cannot be applied to the user WorkOS shows; moved to dead letters",
              {{"job", std::to_string(batch.front())}, {"user", head.job.user_id}, {"detail", *refusal}});
      SubmitDeadLetter(std::move(dead), r.status, *refusal);
      dead_lettered += batch.size();
      Forget(uid, batch);
    } else if (ok && not_taken) {
      // WorkOS said yes but shows another value: the change did not take.
      // A dead letter naming the field, instead of a silent revert when the
      // next event arrives (SPEC 4).
      if (paused) Resume("a request succeeded");
      std::vector<OutboxJob> dead;
      for (uint64_t id : batch) dead.push_back(jobs.at(id).job);
      LogWarn("outbox: WorkOS answered the update without taking a field; moved to dead letters",
              {{"job", std::to_string(batch.front())}, {"user", head.job.user_id}, {"detail", *not_taken}});
      SubmitDeadLetter(std::move(dead), r.status, *not_taken);
      dead_lettered += batch.size();
      ++not_taken_count;
      Forget(uid, batch);
    } else if (ok) {
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
      Forget(uid, batch);
    } else if (IsRetryable(r)) {
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
      if (r.retry_after_ms) {
        hold_until = std::max(hold_until, now + BackoffDelayMs(opt, 0, 0.0, r.retry_after_ms));
      }
      if (UpstreamDown(r)) {
        if (!paused) {
          paused = true;
          pause_attempt = 0;
          pause_until = now + BackoffDelayMs(opt, 0, random(), r.retry_after_ms);
          LogWarn("outbox: WorkOS is not answering; pausing delivery",
                  {{"error", head.job.last_error.substr(0, 200)}, {"retry_in_ms", std::to_string(pause_until - now)}});
        } else if (probe) {
          ++pause_attempt;
          pause_until = now + BackoffDelayMs(opt, pause_attempt, random(), r.retry_after_ms);
        }
      }
    } else {
      // WorkOS answered, and refused: a dead letter, and the user's later
      // jobs go on.
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
      Forget(uid, batch);
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
    Forget(uid, {id});
    Reschedule(uid);
  }

  void Resume(const char* why) {
    paused = false;
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
          auto child = t.BeginNested();
          if (!child.ok()) return child.status();
          auto r = domain::ApplyFetchedProfile(*child, p, resync, domain::MutationContext{now, sync.get()});
          if (r.ok()) return child->Commit();
          child->Abort();
          if (r.status().code() == Code::kMapFull) return r.status();
          LogWarn("outbox: could not apply the fetched profile", {{"user", user_id}, {"error", r.status().ToString()}});
          return Status::Ok();
        },
        {job_id}, "apply a fetched profile",
        [this] {
          kick_pending = true;
          Arm(clock.NowMs());
        });
  }

  // Records what the read of a read-modify-write taught about external_id
  // (domain::LearnExternalId, which may re-key the user), or keeps an
  // imported id WorkOS refused.
  void SubmitLearn(const std::string& workos_id, const PutPlan& plan) {
    int64_t now = clock.NowMs();
    auto learned = plan.learned_external_id;
    bool keep = plan.keep_imported_id;
    Submit(
        [workos_id, learned, keep, now, sync = opt.sync](WriteTxn& t) -> Status {
          domain::MutationContext ctx{now, sync.get()};
          if (keep) return domain::KeepImportedId(t, workos_id, ctx);
          return domain::LearnExternalId(t, workos_id, *learned, ctx);
        },
        {}, "record WorkOS's external_id");
  }
};

OutboxSender::OutboxSender(uv_loop_t* loop, WorkosApi* workos, store::Store* store, store::Writer* writer,
                           const Clock& clock, OutboxOptions options, Random random)
    : impl_(std::make_unique<Impl>(loop, workos, store, writer, clock, options, std::move(random))) {}

OutboxSender::~OutboxSender() {
  if (impl_->timer_open && !impl_->timer_closed) {
    LogError("OutboxSender destroyed before its timer closed");
    std::abort();
  }
  *impl_->alive = false;
}

void OutboxSender::Start() {
  Impl& m = *impl_;
  if (m.started || m.closed) return;
  uv_timer_init(m.loop, &m.timer);
  m.timer.data = &m;
  m.timer_open = true;
  m.started = true;
  m.Load();
  m.Pump();
  if (!m.jobs.empty()) {
    LogInfo("outbox: jobs waiting", {{"jobs", std::to_string(m.jobs.size()) + (m.more ? "+" : "")}});
  }
}

void OutboxSender::Kick() {
  Impl& m = *impl_;
  if (m.closed || !m.started) return;
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
  m.closed = true;
  if (m.timer_open) {
    uv_timer_stop(&m.timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&m.timer),
             [](uv_handle_t* h) { static_cast<Impl*>(h->data)->timer_closed = true; });
  }
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
  s.pending_writes = m.pending_writes + (m.delete_buf.empty() ? 0 : 1);
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
}

}  // namespace usersd::sync
