#include "tests/sim/simulation.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "domain/publish.h"
#include "domain/shared_fields.h"
#include "domain/user_mutations.h"
#include "domain/versions.h"
#include "store/store.h"
#include "sync/workos_pages.h"

namespace usersd::sim {
namespace {

using domain::kSharedFields;
using domain::MutationContext;
using domain::Profile;
using Json = nlohmann::json;
using store::JobOp;
using store::OutboxJob;
using store::UserRecord;
using store::Version;
using store::WriteTxn;

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t Next() { return g_(); }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g_) < p; }
  int64_t Range(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g_); }
  template <class T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Range(0, static_cast<int64_t>(v.size()) - 1))];
  }

 private:
  std::mt19937_64 g_;
};

// ------------------------------------------------------------- WorkOS

struct Response {
  int status = 0;  // 0: the request never reached WorkOS
  Json body;
};

class WorkosModel {
 public:
  struct User {
    std::string id;
    std::string email, first_name, last_name, external_id, picture;
    Json metadata = Json::object();
    int64_t created_at = 0, updated_at = 0;
    bool deleted = false;
  };

  bool merge_metadata = true;         // WorkOS's documented behaviour; else replace
  bool metadata_only_events = true;   // a PUT changing only metadata emits user.updated
  std::map<std::string, User> users;  // by WorkOS id
  std::vector<Json> events;           // the feed, oldest first

  // WorkOS's clock: every change gets a later updated_at.
  int64_t Tick(int64_t now) {
    clock_ = std::max(clock_ + 1, now);
    return clock_;
  }

  static std::string Iso(int64_t ms) {
    // Milliseconds since the epoch as ISO 8601 UTC (what ParseIso8601Ms reads).
    time_t s = static_cast<time_t>(ms / 1000);
    struct tm tm {};
    gmtime_r(&s, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
  }

  Json UserJson(const User& u) const {
    return Json{{"object", "user"},
                {"id", u.id},
                {"email", u.email},
                {"first_name", u.first_name},
                {"last_name", u.last_name},
                {"profile_picture_url", u.picture.empty() ? Json(nullptr) : Json(u.picture)},
                {"external_id", u.external_id.empty() ? Json(nullptr) : Json(u.external_id)},
                {"metadata", u.metadata},
                {"created_at", Iso(u.created_at)},
                {"updated_at", Iso(u.updated_at)}};
  }

  void Emit(const std::string& type, const User& u, int64_t now) {
    char id[32];
    std::snprintf(id, sizeof id, "event_%010zu", events.size() + 1);
    events.push_back(Json{{"object", "event"}, {"id", id}, {"event", type}, {"data", UserJson(u)},
                          {"created_at", Iso(Tick(now))}});
  }

  Response Put(const std::string& id, const Json& body, int64_t now) {
    auto it = users.find(id);
    if (it == users.end() || it->second.deleted) return {404, Json{{"code", "entity_not_found"}}};
    User next = it->second;
    for (const char* k : {"email", "first_name", "last_name"})
      if (body.contains(k)) {
        std::string& dst = std::string(k) == "email" ? next.email : std::string(k) == "first_name" ? next.first_name
                                                                                                   : next.last_name;
        dst = body[k].get<std::string>();
      }
    if (body.contains("external_id")) next.external_id = body["external_id"].get<std::string>();
    if (body.contains("metadata")) {
      Json md = merge_metadata ? next.metadata : Json::object();
      for (auto m = body["metadata"].begin(); m != body["metadata"].end(); ++m) md[m.key()] = *m;
      if (md.size() > 10) return {422, Json{{"code", "invalid_request_parameters"}, {"field", "metadata"}}};
      next.metadata = md;
    }
    bool columns = next.email != it->second.email || next.first_name != it->second.first_name ||
                   next.last_name != it->second.last_name || next.external_id != it->second.external_id;
    bool metadata = next.metadata != it->second.metadata;
    if (columns || metadata) {
      next.updated_at = Tick(now);
      it->second = next;
      if (columns || metadata_only_events) Emit("user.updated", next, now);
    }
    return {200, UserJson(it->second)};
  }

  Response Get(const std::string& id) const {
    auto it = users.find(id);
    if (it == users.end() || it->second.deleted) return {404, Json{{"code", "entity_not_found"}}};
    return {200, UserJson(it->second)};
  }

  Response Delete(const std::string& id, int64_t now) {
    auto it = users.find(id);
    if (it == users.end() || it->second.deleted) return {404, Json{{"code", "entity_not_found"}}};
    it->second.deleted = true;
    Emit("user.deleted", it->second, now);
    return {200, Json()};
  }

  // One events page after `after` (the number of events already read).
  Response Page(size_t after, size_t limit) const {
    Json data = Json::array();
    for (size_t i = after; i < events.size() && data.size() < limit; ++i) data.push_back(events[i]);
    return {200, Json{{"object", "list"}, {"data", data}}};
  }

 private:
  int64_t clock_ = 0;
};

// -------------------------------------------------------------- hosts

struct Request {
  enum class Kind { kPut, kReadFirst, kDelete, kFetch, kPoll };
  Kind kind = Kind::kPut;
  size_t host = 0;
  uint64_t epoch = 0;  // the host's life it was sent in; a restart drops the answer
  std::string workos_id;
  Json body;                       // kPut
  Json fields;                     // kReadFirst: the jobs' fields, to plan again
  std::vector<uint64_t> batch;     // the jobs it settles
  domain::PublishSent sent;        // kPut
  bool resync = false;             // kFetch
  size_t after = 0;                // kPoll
  std::optional<std::optional<std::string>> learned_external_id;
  bool keep_imported_id = false;
  int64_t arrive_at = 0, answer_at = 0;
  bool arrived = false;
  Response response;
};

struct Host {
  size_t index = 0;
  uint64_t host_id = 0;
  int64_t skew_ms = 0;
  std::string dir;
  std::unique_ptr<store::Store> store;
  uint64_t epoch = 0;
  std::set<std::string> busy;  // WorkOS ids with a request in flight
  bool polling = false;
  bool partitioned = false;
};

constexpr std::string_view kMetaSimCursor = "sim_events_read";
const std::vector<std::string> kZones = {"UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York"};

class Simulation {
 public:
  explicit Simulation(const SimOptions& o) : opt_(o), rng_(o.seed * 0x9e3779b97f4a7c15ULL + 1) {}

  ~Simulation() {
    for (auto& h : hosts_) {
      h.store.reset();
      std::error_code ec;
      std::filesystem::remove_all(h.dir, ec);
    }
  }

  SimResult Run() {
    Setup();
    int64_t write_steps = rng_.Range(60, 160);
    for (int64_t i = 0; i < write_steps && result_.ok; ++i) Step(/*writes=*/true);
    if (result_.ok) Quiesce();
    if (result_.ok) Check();
    result_.steps = steps_;
    result_.events = workos_.events.size();
    return result_;
  }

 private:
  // ------------------------------------------------------------ setup

  void Setup() {
    workos_.merge_metadata = rng_.Chance(0.5);
    workos_.metadata_only_events = rng_.Chance(0.7);
    size_t hosts = static_cast<size_t>(rng_.Range(3, 5));
    size_t users = static_cast<size_t>(rng_.Range(2, 5));
    result_.hosts = hosts;
    result_.users = users;
    now_ = 1'765'000'000'000 + rng_.Range(0, 1'000'000);
    for (size_t i = 0; i < users; ++i) {
      WorkosModel::User u;
      u.id = "user_" + std::to_string(i);
      u.email = "u" + std::to_string(i) + "@example.com";
      u.first_name = "F" + std::to_string(i);
      u.last_name = "L" + std::to_string(i);
      u.picture = rng_.Chance(0.5) ? "https://img.example.com/" + std::to_string(i) + ".png" : "";
      if (rng_.Chance(0.3)) u.metadata["app_plan"] = "gold";  // the application's own key
      u.created_at = u.updated_at = workos_.Tick(now_);
      workos_.users[u.id] = u;
      workos_.Emit("user.created", u, now_);
      if (!u.metadata.empty()) app_keys_[u.id] = u.metadata;
    }
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    for (size_t i = 0; i < hosts; ++i) {
      Host h;
      h.index = i;
      h.host_id = rng_.Next() | 1;
      h.skew_ms = rng_.Range(-600'000, 600'000);
      std::string tmpl = base + "/usersd-sim-XXXXXX";
      if (!::mkdtemp(tmpl.data())) return Fail("cannot create a store directory under " + base);
      h.dir = tmpl;
      hosts_.push_back(std::move(h));
      Open(hosts_.back());
      Write(hosts_.back(), [&](WriteTxn& t) { return domain::SetHostId(t, hosts_.back().host_id); });
      // Every host starts with the users as a reconciliation would give them.
      Reconcile(hosts_.back());
    }
    Trace("setup: " + std::to_string(hosts) + " hosts, " + std::to_string(users) + " users, metadata " +
          (workos_.merge_metadata ? "merged" : "replaced") + ", metadata-only events " +
          (workos_.metadata_only_events ? "on" : "off"));
  }

  void Open(Host& h) {
    store::StoreOptions so;
    so.path = h.dir;
    so.map_size_bytes = 8ull << 20;
    auto s = store::Store::Open(so);
    if (!s.ok()) return Fail("host " + std::to_string(h.index) + ": cannot open its store: " + s.status().ToString());
    h.store = std::move(*s);
  }

  // ------------------------------------------------------------ steps

  void Step(bool writes) {
    ++steps_;
    now_ += rng_.Range(1, 40);
    DeliverDue();
    for (auto& h : hosts_) {
      if (!result_.ok) return;
      if (writes && rng_.Chance(0.25)) LocalWrite(h);
      if (rng_.Chance(0.5)) SendSome(h);
      if (!h.polling && rng_.Chance(0.15)) Poll(h);
      if (writes && rng_.Chance(0.004)) Restart(h);
      if (writes && rng_.Chance(0.01)) {
        h.partitioned = !h.partitioned;
        Trace("host " + std::to_string(h.index) + (h.partitioned ? " partitioned" : " reconnected"));
      }
      if (rng_.Chance(0.003)) Reconcile(h);
    }
  }

  void Quiesce() {
    for (auto& h : hosts_) h.partitioned = false;
    for (int round = 0; round < 40 && result_.ok; ++round) {
      // Quiet() reads every host's outbox: asked every few steps only.
      for (int i = 0; i < 4000 && result_.ok && (i % 8 != 0 || !Quiet()); ++i) Step(/*writes=*/false);
      if (!result_.ok) return;
      if (!Quiet()) {
        std::string left;
        for (auto& h : hosts_)
          for (auto& [w, jobs] : JobsByUser(h))
            for (const auto& j : jobs)
              left += " [host " + std::to_string(h.index) + " " + w + " " + store::JobOpName(j.op) + " " +
                      j.fields.dump() + "]";
        for (auto& h : hosts_)
          left += " [host " + std::to_string(h.index) + " read " + std::to_string(Cursor(h)) + " of " +
                  std::to_string(workos_.events.size()) + " events" + (h.polling ? ", polling" : "") + "]";
        for (const auto& r : inflight_)
          left += std::string(" [in flight: ") + KindName(r.kind) + " host " + std::to_string(r.host) + " arrive " +
                  std::to_string(r.arrive_at - now_) + " answer " + std::to_string(r.answer_at - now_) +
                  (r.arrived ? " arrived" : "") + "]";
        return Fail("no quiescence after the writes stopped; left:" + left);
      }
      size_t events_before = workos_.events.size();
      std::vector<size_t> jobs_before;
      // A reconciliation on every host, as the periodic one would run: it
      // brings what a feed without metadata-only events did not.
      for (auto& h : hosts_) Reconcile(h);
      if (Quiet() && workos_.events.size() == events_before) return;
    }
    Fail("the hosts kept publishing after the writes stopped (no fixed point in 40 rounds)");
  }

  // Nothing in flight, nothing to send, every feed read to its end.
  bool Quiet() {
    // Polls go on all the time; with every feed read to its end they bring
    // nothing.
    for (const auto& r : inflight_)
      if (r.kind != Request::Kind::kPoll) return false;
    for (auto& h : hosts_) {
      if (SendableJobs(h) > 0) return false;
      if (Cursor(h) < workos_.events.size()) return false;
    }
    return true;
  }

  // ------------------------------------------------------ local writes

  MutationContext Ctx(const Host& h) { return MutationContext{now_ + h.skew_ms, &policy_}; }

  template <class Fn>
  void Write(Host& h, Fn fn) {
    auto t = h.store->BeginWrite();
    if (!t.ok()) return Fail("begin write: " + t.status().ToString());
    Status st = fn(*t);
    if (!st.ok()) return Fail("host " + std::to_string(h.index) + ": a write failed: " + st.ToString());
    Status c = t->Commit();
    if (!c.ok()) Fail("commit: " + c.ToString());
  }

  std::vector<UserRecord> LiveUsers(Host& h) {
    std::vector<UserRecord> out;
    auto t = h.store->BeginRead();
    if (!t.ok()) return out;
    auto all = t->ListUsers("", 1000);
    if (!all.ok()) return out;
    for (auto& u : *all)
      if (u.live()) out.push_back(std::move(u));
    return out;
  }

  void LocalWrite(Host& h) {
    auto users = LiveUsers(h);
    if (users.empty()) return;
    const UserRecord u = rng_.Pick(users);
    domain::Actor self{u.id, std::nullopt, false};
    std::vector<std::string> shared_written;
    int op = static_cast<int>(rng_.Range(0, 99));
    std::string what;
    Write(h, [&](WriteTxn& t) -> Status {
      Result<domain::Mutation> m = Status::Ok();
      if (op < 70) {
        domain::UserPatch p;
        p.id = u.id;
        if (rng_.Chance(0.5)) p.timezone = rng_.Chance(0.15) ? std::nullopt : std::optional<std::string>(rng_.Pick(kZones));
        if (rng_.Chance(0.3)) {
          p.settings = rng_.Chance(0.15) ? std::optional<Json>() : std::optional<Json>(Json{{"theme", {{"n", rng_.Range(0, 9)}}}});
        }
        if (rng_.Chance(0.2)) {
          p.avatar_url = rng_.Chance(0.2) ? std::optional<std::string>()
                                          : std::optional<std::string>("https://a.example.com/" +
                                                                       std::to_string(rng_.Range(0, 9)) + ".png");
        }
        if (rng_.Chance(0.2)) p.first_name = "N" + std::to_string(rng_.Range(0, 99));
        if (rng_.Chance(0.1)) p.last_name = "M" + std::to_string(rng_.Range(0, 99));
        if (rng_.Chance(0.05)) p.email = u.workos_id + "-" + std::to_string(++emails_) + "@example.com";
        if (p.timezone) shared_written.push_back("timezone");
        if (p.settings) shared_written.push_back("settings");
        if (p.avatar_url) shared_written.push_back("avatarUrl");
        what = "patch";
        m = domain::ApplyPatch(t, self, p, Ctx(h));
      } else if (op < 80) {
        what = "finalizeOnboarding";
        shared_written.push_back("isOnboarded");
        m = domain::FinishOnboarding(t, u.id, Ctx(h));
      } else if (op < 98) {
        // resetAvatar with WorkOS's picture as a read now would give it.
        what = "resetAvatar";
        shared_written.push_back("avatarUrl");
        auto it = workos_.users.find(u.workos_id);
        std::optional<std::optional<std::string>> live;
        if (!h.partitioned && it != workos_.users.end() && !it->second.deleted)
          live = it->second.picture.empty() ? std::optional<std::string>() : std::optional<std::string>(it->second.picture);
        m = domain::ResetAvatar(t, u.id, live, Ctx(h));
      } else {
        what = "delete";
        m = domain::SoftDelete(t, self, u.id, Ctx(h));
      }
      if (!m.ok()) return m.status();
      if (m->kind != domain::Mutation::Kind::kCommitted) {
        shared_written.clear();  // refused: nothing acknowledged
        return Status::Ok();
      }
      ++result_.writes;
      // Acknowledged: remember the value of each shared field written, with
      // its version, for the final check.
      for (const auto& f : shared_written) {
        size_t i = *domain::SharedFieldIndex(f);
        Ack(u.workos_id, i, m->user.shared_versions[i], domain::SharedFieldValue(m->user, f));
      }
      return Status::Ok();
    });
    Trace("host " + std::to_string(h.index) + " " + what + " " + u.workos_id);
  }

  void Ack(const std::string& workos_id, size_t field, const Version& v, const Json& value) {
    auto& slot = acked_[{workos_id, field}];
    if (!slot.first.zero() && v < slot.first) return;
    if (v == slot.first && !slot.first.zero() && slot.second != value) {
      Fail("two acknowledged writes of " + workos_id + "." + std::string(kSharedFields[field]) +
           " got the same version " + domain::FormatVersion(v));
    }
    slot = {v, value};
  }

  // ---------------------------------------------------------- outbox

  // Jobs of the host by WorkOS user, in order.
  std::map<std::string, std::vector<OutboxJob>> JobsByUser(Host& h) {
    std::map<std::string, std::vector<OutboxJob>> out;
    auto t = h.store->BeginRead();
    if (!t.ok()) return out;
    auto jobs = t->ListJobs(0);
    if (!jobs.ok()) return out;
    for (auto& j : *jobs) out[j.workos_id].push_back(std::move(j));
    return out;
  }

  size_t SendableJobs(Host& h) {
    size_t n = 0;
    for (auto& [w, jobs] : JobsByUser(h)) n += jobs.size();
    return n;
  }

  void SendSome(Host& h) {
    // At most one request per user in flight, in job order, as the outbox.
    for (auto& [w, jobs] : JobsByUser(h)) {
      if (h.busy.count(w) || !rng_.Chance(0.5)) continue;
      // An outbox that holds more than one update job per user has not merged.
      size_t updates = 0;
      for (const auto& j : jobs) updates += j.op == JobOp::kUpdate;
      if (updates > 1) {
        std::string list;
        for (const auto& j : jobs)
          list += " [" + std::to_string(j.id) + " " + store::JobOpName(j.op) + " " + j.fields.dump() + "]";
        return Fail("host " + std::to_string(h.index) + " holds " + std::to_string(updates) + " update jobs for " +
                    w + " (writes must merge into one):" + list);
      }
      Send(h, jobs);
    }
  }

  void Send(Host& h, const std::vector<OutboxJob>& jobs) {
    const OutboxJob& head = jobs.front();
    Request r;
    r.host = h.index;
    r.epoch = h.epoch;
    r.workos_id = head.workos_id;
    r.batch = {head.id};
    switch (head.op) {
      case JobOp::kDelete: r.kind = Request::Kind::kDelete; break;
      case JobOp::kFetch:
        r.kind = Request::Kind::kFetch;
        r.resync = head.fields.is_object() && head.fields.value("resync", false);
        break;
      case JobOp::kUpdate: {
        Json fields = head.fields;
        auto u = Record(h, head.user_id);
        if (!u) fields.erase(std::string(domain::kJobDocument));
        domain::PublishPlan plan = domain::PlanPublish(fields, u.value_or(UserRecord{}), nullptr, policy_);
        if (plan.read_first) {
          r.kind = Request::Kind::kReadFirst;
          r.fields = fields;
          break;
        }
        if (!Planned(h, r, plan)) return;
        break;
      }
    }
    Launch(h, std::move(r));
  }

  // Fills a PUT from a plan; false when it settled at once (a refusal, or
  // nothing to send).
  bool Planned(Host& h, Request& r, const domain::PublishPlan& plan) {
    r.kind = Request::Kind::kPut;
    r.body = plan.body;
    r.sent = plan.sent;
    r.learned_external_id = plan.learned_external_id;
    r.keep_imported_id = plan.keep_imported_id;
    if (plan.refusal) {
      Settle(h, r, std::nullopt, 0, plan.refusal);
      return false;
    }
    if (plan.body.empty()) {
      Settle(h, r, std::nullopt, 200, std::nullopt);
      return false;
    }
    return true;
  }

  static const char* KindName(Request::Kind k) {
    switch (k) {
      case Request::Kind::kPut: return "PUT";
      case Request::Kind::kReadFirst: return "GET (read first)";
      case Request::Kind::kDelete: return "DELETE";
      case Request::Kind::kFetch: return "GET (fetch)";
      case Request::Kind::kPoll: return "events";
    }
    return "?";
  }

  void Launch(Host& h, Request r) {
    Trace("host " + std::to_string(h.index) + " sends " + KindName(r.kind) + " " + r.workos_id + " job " +
          std::to_string(r.batch.empty() ? 0 : r.batch.front()) + (r.body.empty() ? "" : " " + r.body.dump()));
    h.busy.insert(r.workos_id);
    r.arrive_at = now_ + rng_.Range(0, 300);
    r.answer_at = r.arrive_at + rng_.Range(0, 300);
    if (r.kind == Request::Kind::kPut) ++result_.puts;
    if (r.kind == Request::Kind::kReadFirst || r.kind == Request::Kind::kFetch) ++result_.gets;
    // A partitioned host's request never reaches WorkOS; a few others fail
    // there (503) without taking effect.
    if (h.partitioned || rng_.Chance(0.03)) {
      r.arrived = true;
      r.response = {h.partitioned ? 0 : 503, Json()};
    }
    inflight_.push_back(std::move(r));
  }

  std::optional<UserRecord> Record(Host& h, const std::string& id) {
    auto t = h.store->BeginRead();
    if (!t.ok()) return std::nullopt;
    auto u = t->GetUser(id);
    if (!u.ok()) return std::nullopt;
    return *u;
  }

  // Applies an answered publish through the real code.
  void Settle(Host& h, const Request& r, std::optional<Profile> answer, int status,
              std::optional<std::string> refusal) {
    Write(h, [&](WriteTxn& t) -> Status {
      MutationContext c = Ctx(h);
      if (r.keep_imported_id) USERSD_RETURN_IF_ERROR(domain::KeepImportedId(t, r.workos_id, c));
      else if (r.learned_external_id)
        USERSD_RETURN_IF_ERROR(domain::LearnExternalId(t, r.workos_id, *r.learned_external_id, c));
      auto out = refusal ? domain::RefusePublish(t, r.batch, r.sent, status, *refusal, c)
                         : domain::CompletePublish(t, r.batch, r.sent, answer, status, c);
      return out.status();
    });
  }

  void DeliverDue() {
    // WorkOS takes requests in the order they reach it, not as they were sent.
    std::vector<size_t> order(inflight_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return inflight_[a].arrive_at < inflight_[b].arrive_at; });
    for (size_t i : order) {
      Request& r = inflight_[i];
      if (r.arrived || r.arrive_at > now_) continue;
      r.arrived = true;
      switch (r.kind) {
        case Request::Kind::kPut: r.response = workos_.Put(r.workos_id, r.body, now_); break;
        case Request::Kind::kReadFirst:
        case Request::Kind::kFetch: r.response = workos_.Get(r.workos_id); break;
        case Request::Kind::kDelete: r.response = workos_.Delete(r.workos_id, now_); break;
        case Request::Kind::kPoll: r.response = workos_.Page(r.after, 100); break;
      }
    }
    std::vector<Request> due;
    std::vector<Request> keep;
    for (auto& r : inflight_) (r.arrived && r.answer_at <= now_ ? due : keep).push_back(std::move(r));
    inflight_ = std::move(keep);
    for (auto& r : due) {
      if (!result_.ok) return;
      Host& h = hosts_[r.host];
      if (r.epoch != h.epoch) continue;  // the host restarted: nobody waits for it
      Answer(h, r);
    }
  }

  void Answer(Host& h, Request& r) {
    const Response& resp = r.response;
    if (r.kind != Request::Kind::kPoll)
      Trace("host " + std::to_string(h.index) + " gets " + std::to_string(resp.status) + " for " + KindName(r.kind) +
            " " + r.workos_id);
    bool ok = resp.status >= 200 && resp.status < 300;
    if (r.kind == Request::Kind::kPoll) {
      h.polling = false;
      if (ok) ApplyPage(h, r);
      return;
    }
    h.busy.erase(r.workos_id);
    bool retry = resp.status == 0 || resp.status >= 500;
    if (retry) return;  // the job stays; sent again later
    switch (r.kind) {
      case Request::Kind::kPut: {
        if (!ok) return Settle(h, r, std::nullopt, resp.status, resp.body.dump());
        auto answer = sync::ParseWorkosUser(resp.body);
        return Settle(h, r, answer, resp.status, std::nullopt);
      }
      case Request::Kind::kReadFirst: {
        auto u = Record(h, JobUser(h, r.batch.front()));
        if (!ok) {
          r.sent = domain::PendingState(r.fields, u.value_or(UserRecord{}));
          return Settle(h, r, std::nullopt, resp.status, resp.body.dump());
        }
        auto shown = sync::ParseWorkosUser(resp.body);
        if (!shown) return Fail("WorkOS model answered an unreadable user");
        domain::PublishPlan plan = domain::PlanPublish(r.fields, u.value_or(UserRecord{}), &*shown, policy_);
        Request put = r;
        put.arrived = false;
        if (Planned(h, put, plan)) Launch(h, std::move(put));
        return;
      }
      case Request::Kind::kDelete:
        Write(h, [&](WriteTxn& t) -> Status {
          for (uint64_t id : r.batch) USERSD_RETURN_IF_ERROR(t.DeleteJob(id));
          return Status::Ok();
        });
        return;
      case Request::Kind::kFetch:
        Write(h, [&](WriteTxn& t) -> Status {
          USERSD_RETURN_IF_ERROR(t.DeleteJob(r.batch.front()));
          if (!ok) return Status::Ok();  // gone in WorkOS: the feed brings the delete
          auto p = sync::ParseWorkosUser(resp.body);
          if (!p) return Status::Corruption("unreadable user");
          auto a = domain::ApplyFetchedProfile(t, *p, r.resync, Ctx(h));
          return a.status();
        });
        return;
      case Request::Kind::kPoll: return;
    }
  }

  std::string JobUser(Host& h, uint64_t job_id) {
    auto t = h.store->BeginRead();
    if (!t.ok()) return "";
    auto j = t->GetJob(job_id);
    if (!j.ok() || !j->has_value()) return "";
    return (*j)->user_id;
  }

  // --------------------------------------------------------- feed

  size_t Cursor(Host& h) {
    auto t = h.store->BeginRead();
    if (!t.ok()) return 0;
    auto v = t->GetMeta(kMetaSimCursor);
    if (!v.ok() || !v->has_value()) return 0;
    return static_cast<size_t>(std::stoull(**v));
  }

  void Poll(Host& h) {
    if (h.partitioned) return;
    Request r;
    r.kind = Request::Kind::kPoll;
    r.host = h.index;
    r.epoch = h.epoch;
    r.after = Cursor(h);
    h.polling = true;
    r.arrive_at = now_ + rng_.Range(0, 200);
    r.answer_at = r.arrive_at + rng_.Range(0, 400);  // events delivered late
    inflight_.push_back(std::move(r));
  }

  void ApplyPage(Host& h, const Request& r) {
    auto page = sync::ParseEventsPage(r.response.body.dump());
    if (!page.ok()) return Fail("the model's events page does not parse");
    size_t read = r.after + page->entries;
    if (read <= Cursor(h)) return;  // an older page answered after a newer one
    uint64_t dropped = 0;
    std::vector<sync::FeedEvent> events = sync::LastPerUser(std::move(page->events), &dropped);
    Write(h, [&](WriteTxn& t) -> Status {
      for (const auto& ev : events) {
        auto p = sync::ParseWorkosUser(ev.data);
        if (!p) continue;
        auto child = t.BeginNested();
        if (!child.ok()) return child.status();
        auto a = ev.type == "user.deleted" ? domain::ApplyRemoteDelete(*child, ev.workos_id, Ctx(h), &*p)
                                           : domain::ApplyRemoteUser(*child, *p, Ctx(h));
        if (!a.ok()) return a.status();
        USERSD_RETURN_IF_ERROR(child->Commit());
      }
      return t.PutMeta(kMetaSimCursor, std::to_string(read));
    });
  }

  // The listing a reconciliation reads, applied as it applies it.
  void Reconcile(Host& h) {
    if (h.partitioned) return;
    Write(h, [&](WriteTxn& t) -> Status {
      for (const auto& [id, u] : workos_.users) {
        auto child = t.BeginNested();
        if (!child.ok()) return child.status();
        if (u.deleted) {
          auto a = domain::ApplyRemoteDelete(*child, id, Ctx(h));
          if (!a.ok()) return a.status();
        } else {
          auto p = sync::ParseWorkosUser(workos_.UserJson(u));
          auto a = domain::ApplyRemoteUser(*child, *p, Ctx(h));
          if (!a.ok()) return a.status();
        }
        USERSD_RETURN_IF_ERROR(child->Commit());
      }
      return Status::Ok();
    });
    Trace("host " + std::to_string(h.index) + " reconciled");
  }

  void Restart(Host& h) {
    ++result_.restarts;
    ++h.epoch;
    h.busy.clear();
    h.polling = false;
    h.store.reset();
    Open(h);
    Trace("host " + std::to_string(h.index) + " restarted");
  }

  // --------------------------------------------------------- check

  void Check() {
    for (const auto& [w, mu] : workos_.users) {
      std::vector<UserRecord> seen;
      for (auto& h : hosts_) {
        auto t = h.store->BeginRead();
        auto u = t->FindByWorkosId(w);
        if (!u.ok() || !u->has_value()) return Fail("host " + std::to_string(h.index) + " does not have " + w);
        seen.push_back(**u);
      }
      for (size_t i = 0; i < hosts_.size(); ++i) {
        const UserRecord& u = seen[i];
        std::string who = "host " + std::to_string(i) + ", " + w;
        if (u.live() == mu.deleted) return Fail(who + ": deleted here is " + (u.live() ? "no" : "yes") +
                                                ", in WorkOS " + (mu.deleted ? "yes" : "no"));
        if (u.id != seen[0].id) return Fail(who + ": id " + u.id + ", host 0 has " + seen[0].id);
        // Hosts that only read a user never publish its id (every host
        // computes the same one); once published, it is the id.
        if (!mu.deleted && !mu.external_id.empty() && mu.external_id != u.id)
          return Fail(who + ": WorkOS's external_id " + mu.external_id + " is not the id " + u.id);
        // A deleted user shows WorkOS's last state on every host.
        if (u.email != mu.email || u.first_name != mu.first_name || u.last_name != mu.last_name)
          return Fail(who + ": names/email " + u.email + " " + u.first_name + " " + u.last_name + ", WorkOS " +
                      mu.email + " " + mu.first_name + " " + mu.last_name);
        auto doc = domain::DecodeDocument(mu.metadata, policy_.metadata);
        if (!doc.ok()) return Fail(w + ": WorkOS's document does not parse");
        for (size_t f = 0; f < kSharedFields.size(); ++f) {
          Json here = domain::SharedFieldValue(u, kSharedFields[f]);
          std::string field = who + "." + std::string(kSharedFields[f]);
          Json there = doc->has_value() && (*doc)->values[f] ? *(*doc)->values[f] : Json();
          if (doc->has_value() && (*doc)->values[f] && here != there)
            return Fail(field + " = " + here.dump() + ", WorkOS's document has " + there.dump());
          auto a = acked_.find({w, f});
          // A write acknowledged on a host that had not yet learned the
          // delete is the one change that may not survive (WorkOS refuses
          // it: a dead letter).
          if (a == acked_.end() || mu.deleted) continue;
          if (here != a->second.second || u.shared_versions[f] != a->second.first)
            return Fail(field + " = " + here.dump() + " at " + domain::FormatVersion(u.shared_versions[f]) +
                        "; the highest acknowledged write was " + a->second.second.dump() + " at " +
                        domain::FormatVersion(a->second.first));
        }
      }
      if (!mu.deleted) {
        auto keys = app_keys_.find(w);
        if (keys != app_keys_.end())
          for (auto k = keys->second.begin(); k != keys->second.end(); ++k)
            if (!mu.metadata.contains(k.key()) || mu.metadata[k.key()] != *k)
              return Fail(w + ": the application's metadata key " + k.key() + " was lost in WorkOS");
      }
    }
  }

  void Fail(const std::string& why) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.failure = why;
  }

  void Trace(const std::string& s) {
    if (opt_.trace) std::fprintf(stderr, "[%llu t=%lld] %s\n", static_cast<unsigned long long>(steps_),
                                 static_cast<long long>(now_), s.c_str());
  }

  SimOptions opt_;
  Rng rng_;
  SimResult result_;
  domain::SyncPolicy policy_;
  WorkosModel workos_;
  std::vector<Host> hosts_;
  std::vector<Request> inflight_;
  std::map<std::pair<std::string, size_t>, std::pair<Version, Json>> acked_;
  std::map<std::string, Json> app_keys_;
  int64_t now_ = 0;
  uint64_t steps_ = 0;
  uint64_t emails_ = 0;
};

}  // namespace

SimResult RunSeed(const SimOptions& options) {
  Simulation sim(options);
  return sim.Run();
}

}  // namespace usersd::sim
