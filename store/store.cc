#include "store/store.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "common/log.h"

namespace usersd::store {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int kRecordVersion = 1;

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

template <class T>
void PutOpt(Json& j, const char* k, const std::optional<T>& v) {
  if (v) j[k] = *v;
}

template <class T>
std::optional<T> GetOpt(const Json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->template get<T>();
}

Json JobToJson(const OutboxJob& job) {
  return Json{{"v", kRecordVersion},         {"id", job.id},
              {"user", job.user_id},         {"workos", job.workos_id},
              {"op", static_cast<int>(job.op)}, {"fields", job.fields},
              {"tx", job.txid},              {"created", job.created_at_ms},
              {"attempts", job.attempts},    {"next", job.next_attempt_at_ms},
              {"err", job.last_error}};
}

OutboxJob JobFromJson(const Json& j) {
  OutboxJob job;
  job.id = j.at("id").get<uint64_t>();
  job.user_id = j.at("user").get<std::string>();
  job.workos_id = j.at("workos").get<std::string>();
  int op = j.at("op").get<int>();
  if (op < 0 || op > 2) throw std::runtime_error("bad job op");
  job.op = static_cast<JobOp>(op);
  job.fields = j.at("fields");
  job.txid = j.at("tx").get<uint64_t>();
  job.created_at_ms = j.at("created").get<int64_t>();
  job.attempts = j.at("attempts").get<uint32_t>();
  job.next_attempt_at_ms = j.at("next").get<int64_t>();
  job.last_error = j.at("err").get<std::string>();
  return job;
}

Json UserToJson(const UserRecord& u) {
  Json j{{"v", kRecordVersion},
         {"id", u.id},
         {"workos", u.workos_id},
         {"email", u.email},
         {"first", u.first_name},
         {"last", u.last_name},
         {"type", u.user_type},
         {"onb", u.is_onboarded},
         {"created", u.created_at_ms},
         {"role", u.role},
         {"pending", u.profile_pending},
         {"tx", u.txid}};
  PutOpt(j, "avatar", u.avatar_url);
  PutOpt(j, "settings", u.settings);
  PutOpt(j, "tz", u.timezone);
  PutOpt(j, "updated", u.updated_at_ms);
  PutOpt(j, "deleted", u.deleted_at_ms);
  PutOpt(j, "org", u.organization_id);
  PutOpt(j, "pic", u.profile_picture_url);
  return j;
}

UserRecord UserFromJson(const Json& j) {
  if (j.at("v").get<int>() != kRecordVersion) throw std::runtime_error("unknown user record version");
  UserRecord u;
  u.id = j.at("id").get<std::string>();
  u.workos_id = j.at("workos").get<std::string>();
  u.email = j.at("email").get<std::string>();
  u.first_name = j.at("first").get<std::string>();
  u.last_name = j.at("last").get<std::string>();
  u.user_type = j.at("type").get<std::string>();
  u.is_onboarded = j.at("onb").get<bool>();
  u.created_at_ms = j.at("created").get<int64_t>();
  u.role = j.at("role").get<std::string>();
  u.profile_pending = j.at("pending").get<bool>();
  u.txid = j.at("tx").get<uint64_t>();
  u.avatar_url = GetOpt<std::string>(j, "avatar");
  if (auto it = j.find("settings"); it != j.end() && !it->is_null()) u.settings = *it;
  u.timezone = GetOpt<std::string>(j, "tz");
  u.updated_at_ms = GetOpt<int64_t>(j, "updated");
  u.deleted_at_ms = GetOpt<int64_t>(j, "deleted");
  u.organization_id = GetOpt<std::string>(j, "org");
  u.profile_picture_url = GetOpt<std::string>(j, "pic");
  return u;
}

std::string ToMsgpack(const Json& j) {
  std::vector<uint8_t> bytes = Json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<Json> FromMsgpack(std::string_view bytes) {
  try {
    return Json::from_msgpack(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("undecodable record: ") + e.what());
  }
}

}  // namespace

const char* JobOpName(JobOp op) {
  switch (op) {
    case JobOp::kUpdate: return "update";
    case JobOp::kDelete: return "delete";
    case JobOp::kFetch: return "fetch";
  }
  return "update";
}

Status FromMdb(int rc, std::string_view what) {
  if (rc == 0) return Status::Ok();
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) return Status::MapFull(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) return Status::Corruption(msg);
  if (rc == ENOSPC || rc == EIO || rc == EACCES || rc == ENOMEM) return Status::IOError(msg);
  return Status::Internal(msg);
}

std::string U64Key(uint64_t v) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return k;
}

uint64_t U64FromKey(std::string_view key) {
  uint64_t v = 0;
  for (size_t i = 0; i < key.size() && i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(key[i]);
  return v;
}

std::string EncodeUser(const UserRecord& u) { return ToMsgpack(UserToJson(u)); }

Result<UserRecord> DecodeUser(std::string_view bytes) {
  auto j = FromMsgpack(bytes);
  if (!j.ok()) return j.status();
  try {
    return UserFromJson(*j);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad user record: ") + e.what());
  }
}

std::string EncodeJob(const OutboxJob& j) { return ToMsgpack(JobToJson(j)); }

Result<OutboxJob> DecodeJob(std::string_view bytes) {
  auto j = FromMsgpack(bytes);
  if (!j.ok()) return j.status();
  try {
    return JobFromJson(*j);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad outbox job: ") + e.what());
  }
}

// ---------------------------------------------------------------- ReadTxn

ReadTxn::ReadTxn(Store* store, MDB_txn* txn, bool holds_lock) : store_(store), txn_(txn), holds_lock_(holds_lock) {}

ReadTxn::ReadTxn(ReadTxn&& o) noexcept : store_(o.store_), txn_(o.txn_), holds_lock_(o.holds_lock_) {
  o.txn_ = nullptr;
  o.holds_lock_ = false;
}

ReadTxn::~ReadTxn() {
  if (txn_ && holds_lock_) {
    mdb_txn_abort(txn_);
    txn_ = nullptr;
  }
  if (holds_lock_) store_->resize_mu_.unlock_shared();
}

Result<std::optional<std::string>> ReadTxn::GetRaw(MDB_dbi dbi, std::string_view key) {
  MDB_val k = Val(key), v;
  int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return FromMdb(rc, "mdb_get");
  return std::optional<std::string>(std::string(View(v)));
}

Result<std::optional<UserRecord>> ReadTxn::GetUser(std::string_view id) {
  if (id.empty() || id.size() > 255) return std::optional<UserRecord>();
  auto raw = GetRaw(store_->users_, id);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<UserRecord>();
  auto u = DecodeUser(**raw);
  if (!u.ok()) return u.status();
  return std::optional<UserRecord>(std::move(*u));
}

Result<std::optional<UserRecord>> ReadTxn::FindByWorkosId(std::string_view workos_id) {
  if (workos_id.empty() || workos_id.size() > 255) return std::optional<UserRecord>();
  auto id = GetRaw(store_->by_workos_, workos_id);
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::optional<UserRecord>();
  return GetUser(**id);
}

Result<std::optional<UserRecord>> ReadTxn::FindByEmail(std::string_view email) {
  if (email.empty() || email.size() > 255) return std::optional<UserRecord>();
  auto id = GetRaw(store_->by_email_, LowerAscii(email));
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::optional<UserRecord>();
  return GetUser(**id);
}

Result<std::optional<std::string>> ReadTxn::GetMeta(std::string_view key) { return GetRaw(store_->meta_, key); }

uint64_t ReadTxn::LastTxid() {
  auto v = GetMeta("last_txid");
  if (!v.ok() || !v->has_value()) return 0;
  return U64FromKey(**v);
}

namespace {

// RAII cursor; closed before the transaction ends (STYLE practice 6).
class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &c_); }
  ~Cursor() {
    if (c_) mdb_cursor_close(c_);
  }
  int rc() const { return rc_; }
  int Get(MDB_val* k, MDB_val* v, MDB_cursor_op op) { return mdb_cursor_get(c_, k, v, op); }
  MDB_cursor* get() { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
  int rc_ = 0;
};

// Calls fn(key, value) for entries with key >= start (or from the first when
// start is empty) until fn returns false.
template <class Fn>
Status Scan(MDB_txn* txn, MDB_dbi dbi, std::string_view start, Fn fn) {
  Cursor c(txn, dbi);
  if (c.rc() != 0) return FromMdb(c.rc(), "mdb_cursor_open");
  MDB_val k = Val(start), v;
  int rc = start.empty() ? c.Get(&k, &v, MDB_FIRST) : c.Get(&k, &v, MDB_SET_RANGE);
  while (rc == 0) {
    if (!fn(View(k), View(v))) return Status::Ok();
    rc = c.Get(&k, &v, MDB_NEXT);
  }
  if (rc != MDB_NOTFOUND) return FromMdb(rc, "mdb_cursor_get");
  return Status::Ok();
}

}  // namespace

Result<std::vector<UserRecord>> ReadTxn::ListUsers(std::string_view after, size_t limit) {
  std::vector<UserRecord> out;
  Status bad;
  Status st = Scan(txn_, store_->users_, after, [&](std::string_view k, std::string_view v) {
    if (!after.empty() && k == after) return true;
    auto u = DecodeUser(v);
    if (!u.ok()) {
      bad = u.status();
      return false;
    }
    out.push_back(std::move(*u));
    return out.size() < limit;
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  return out;
}

Result<std::vector<OutboxJob>> ReadTxn::ListJobs(size_t limit) {
  std::vector<OutboxJob> out;
  Status bad;
  Status st = Scan(txn_, store_->outbox_, {}, [&](std::string_view, std::string_view v) {
    auto j = DecodeJob(v);
    if (!j.ok()) {
      bad = j.status();
      return false;
    }
    out.push_back(std::move(*j));
    return limit == 0 || out.size() < limit;
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  return out;
}

Result<std::vector<OutboxJob>> ReadTxn::JobsOfUser(std::string_view user_id) {
  auto all = ListJobs(0);
  if (!all.ok()) return all.status();
  std::vector<OutboxJob> out;
  for (auto& j : *all)
    if (j.user_id == user_id) out.push_back(std::move(j));
  return out;
}

Result<std::vector<DeadLetter>> ReadTxn::ListDeadLetters(size_t limit) {
  std::vector<DeadLetter> out;
  Status bad;
  Status st = Scan(txn_, store_->dead_, {}, [&](std::string_view, std::string_view v) {
    auto j = FromMsgpack(v);
    if (!j.ok()) {
      bad = j.status();
      return false;
    }
    try {
      DeadLetter d;
      d.job = JobFromJson(j->at("job"));
      d.status = j->at("status").get<int>();
      d.body = j->at("body").get<std::string>();
      d.failed_at_ms = j->at("at").get<int64_t>();
      out.push_back(std::move(d));
    } catch (const std::exception& e) {
      bad = Status::Corruption(std::string("bad dead letter: ") + e.what());
      return false;
    }
    return limit == 0 || out.size() < limit;
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  return out;
}

Result<std::optional<DeadLetter>> ReadTxn::GetDeadLetter(uint64_t id) {
  auto raw = GetRaw(store_->dead_, U64Key(id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<DeadLetter>();
  auto j = FromMsgpack(**raw);
  if (!j.ok()) return j.status();
  try {
    DeadLetter d;
    d.job = JobFromJson(j->at("job"));
    d.status = j->at("status").get<int>();
    d.body = j->at("body").get<std::string>();
    d.failed_at_ms = j->at("at").get<int64_t>();
    return std::optional<DeadLetter>(std::move(d));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad dead letter: ") + e.what());
  }
}

Result<std::vector<Change>> ReadTxn::ChangesSince(uint64_t since, size_t limit) {
  std::vector<Change> out;
  Status bad;
  Status st = Scan(txn_, store_->changes_, U64Key(since), [&](std::string_view k, std::string_view v) {
    auto j = FromMsgpack(v);
    if (!j.ok()) {
      bad = j.status();
      return false;
    }
    try {
      Change c;
      c.txid = U64FromKey(k);
      c.op = j->at("op").get<int>() == 1 ? ChangeOp::kDelete : ChangeOp::kUpsert;
      c.user = UserFromJson(j->at("user"));
      c.at_ms = j->at("at").get<int64_t>();
      out.push_back(std::move(c));
    } catch (const std::exception& e) {
      bad = Status::Corruption(std::string("bad change: ") + e.what());
      return false;
    }
    return out.size() < limit;
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  return out;
}

uint64_t ReadTxn::CountEntries(const char* db_name) {
  MDB_dbi dbi = store_->users_;
  std::string_view n(db_name);
  if (n == "outbox") dbi = store_->outbox_;
  else if (n == "dead") dbi = store_->dead_;
  else if (n == "by_email") dbi = store_->by_email_;
  else if (n == "by_workos") dbi = store_->by_workos_;
  else if (n == "changes") dbi = store_->changes_;
  MDB_stat st{};
  if (mdb_stat(txn_, dbi, &st) != 0) return 0;
  return st.ms_entries;
}

// --------------------------------------------------------------- WriteTxn

WriteTxn::~WriteTxn() {
  if (txn_ && !done_) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

Result<WriteTxn> WriteTxn::BeginNested() {
  MDB_txn* child = nullptr;
  int rc = mdb_txn_begin(store_->env_, txn_, 0, &child);
  if (rc != 0) return FromMdb(rc, "mdb_txn_begin(nested)");
  return WriteTxn(store_, child);
}

Status WriteTxn::Commit() {
  if (done_ || !txn_) return Status::Internal("commit on a finished transaction");
  done_ = true;
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  return FromMdb(rc, "mdb_txn_commit");
}

void WriteTxn::Abort() {
  if (!done_ && txn_) mdb_txn_abort(txn_);
  done_ = true;
  txn_ = nullptr;
}

Status WriteTxn::Put(MDB_dbi dbi, std::string_view key, std::string_view value) {
  MDB_val k = Val(key), v = Val(value);
  return FromMdb(mdb_put(txn_, dbi, &k, &v, 0), "mdb_put");
}

Status WriteTxn::Del(MDB_dbi dbi, std::string_view key) {
  MDB_val k = Val(key);
  int rc = mdb_del(txn_, dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  return FromMdb(rc, "mdb_del");
}

Result<uint64_t> WriteTxn::NextTxid() {
  uint64_t next = LastTxid() + 1;
  USERSD_RETURN_IF_ERROR(Put(store_->meta_, "last_txid", U64Key(next)));
  return next;
}

Status WriteTxn::PutUser(const UserRecord& u, const std::optional<UserRecord>& previous) {
  if (u.id.empty() || u.workos_id.empty()) return Status::InvalidArgument("user needs an id and a WorkOS id");
  // WorkOS id index: unique over all users.
  auto owner = GetRaw(store_->by_workos_, u.workos_id);
  if (!owner.ok()) return owner.status();
  if (owner->has_value() && **owner != u.id) return Status::InvalidArgument("workosId already belongs to another user");
  if (previous && previous->workos_id != u.workos_id) USERSD_RETURN_IF_ERROR(Del(store_->by_workos_, previous->workos_id));
  if (!owner->has_value() || (previous && previous->workos_id != u.workos_id))
    USERSD_RETURN_IF_ERROR(Put(store_->by_workos_, u.workos_id, u.id));

  // Email index: unique among live users with a non-empty email.
  std::string old_key = previous && previous->live() ? LowerAscii(previous->email) : std::string();
  std::string new_key = u.live() ? LowerAscii(u.email) : std::string();
  if (!new_key.empty() && new_key != old_key) {
    auto holder = GetRaw(store_->by_email_, new_key);
    if (!holder.ok()) return holder.status();
    if (holder->has_value() && **holder != u.id) return Status::InvalidArgument("email already in use");
  }
  if (old_key != new_key) {
    if (!old_key.empty()) USERSD_RETURN_IF_ERROR(Del(store_->by_email_, old_key));
    if (!new_key.empty()) USERSD_RETURN_IF_ERROR(Put(store_->by_email_, new_key, u.id));
  }
  return Put(store_->users_, u.id, EncodeUser(u));
}

Status WriteTxn::PutMeta(std::string_view key, std::string_view value) { return Put(store_->meta_, key, value); }

Status WriteTxn::AppendChange(const Change& c) {
  Json j{{"op", c.op == ChangeOp::kDelete ? 1 : 0}, {"user", UserToJson(c.user)}, {"at", c.at_ms}};
  return Put(store_->changes_, U64Key(c.txid), ToMsgpack(j));
}

Result<uint64_t> WriteTxn::EnqueueJob(OutboxJob job) {
  auto raw = GetMeta("next_job_id");
  if (!raw.ok()) return raw.status();
  uint64_t id = raw->has_value() ? U64FromKey(**raw) : 1;
  USERSD_RETURN_IF_ERROR(PutMeta("next_job_id", U64Key(id + 1)));
  job.id = id;
  USERSD_RETURN_IF_ERROR(Put(store_->outbox_, U64Key(id), EncodeJob(job)));
  return id;
}

Status WriteTxn::UpdateJob(const OutboxJob& job) {
  auto raw = GetRaw(store_->outbox_, U64Key(job.id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return Status::NotFound("outbox job " + std::to_string(job.id));
  return Put(store_->outbox_, U64Key(job.id), EncodeJob(job));
}

Status WriteTxn::DeleteJob(uint64_t id) { return Del(store_->outbox_, U64Key(id)); }

Status WriteTxn::MoveToDeadLetter(const OutboxJob& job, int status, std::string_view body, int64_t now_ms) {
  // Bodies are kept for operators, but bounded: a hostile upstream must not
  // fill the store. Invalid UTF-8 is replaced when the letter is shown.
  Json j{{"job", JobToJson(job)}, {"status", status}, {"body", std::string(body.substr(0, 4096))}, {"at", now_ms}};
  USERSD_RETURN_IF_ERROR(Put(store_->dead_, U64Key(job.id), ToMsgpack(j)));
  return DeleteJob(job.id);
}

Status WriteTxn::DeleteDeadLetter(uint64_t id) { return Del(store_->dead_, U64Key(id)); }

Result<uint64_t> WriteTxn::TrimChanges(uint64_t before, size_t max_entries) {
  std::vector<std::string> keys;
  Status st = Scan(txn_, store_->changes_, {}, [&](std::string_view k, std::string_view) {
    if (U64FromKey(k) >= before || keys.size() >= max_entries) return false;
    keys.emplace_back(k);
    return true;
  });
  if (!st.ok()) return st;
  for (const auto& k : keys) USERSD_RETURN_IF_ERROR(Del(store_->changes_, k));
  return static_cast<uint64_t>(keys.size());
}

// ------------------------------------------------------------------ Store

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> s(new Store(options));
  Status st = s->Init();
  if (!st.ok()) return st;
  return s;
}

Status Store::Init() {
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec) return Status::IOError("cannot create store directory " + options_.path + ": " + ec.message());
  if (options_.map_size_bytes > options_.max_map_size_bytes) options_.map_size_bytes = options_.max_map_size_bytes;

  int rc = mdb_env_create(&env_);
  if (rc != 0) return FromMdb(rc, "mdb_env_create");
  mdb_env_set_maxdbs(env_, 16);
  mdb_env_set_maxreaders(env_, 256);
  // An existing store may already be larger than the configured start size;
  // LMDB then keeps the file's size.
  rc = mdb_env_set_mapsize(env_, options_.map_size_bytes);
  if (rc != 0) return FromMdb(rc, "mdb_env_set_mapsize");
  // MDB_NOTLS: read transactions belong to their ReadTxn, not to the thread.
  rc = mdb_env_open(env_, options_.path.c_str(), MDB_NOTLS, 0600);
  if (rc != 0) {
    mdb_env_close(env_);
    env_ = nullptr;
    return FromMdb(rc, "opening store at " + options_.path);
  }
  int dead = 0;
  mdb_reader_check(env_, &dead);
  if (dead > 0) LogInfo("cleared stale LMDB reader slots", {{"count", std::to_string(dead)}});

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return FromMdb(rc, "mdb_txn_begin");
  struct {
    const char* name;
    MDB_dbi* dbi;
  } dbs[] = {{"users", &users_},   {"by_workos", &by_workos_}, {"by_email", &by_email_}, {"meta", &meta_},
             {"changes", &changes_}, {"outbox", &outbox_},    {"dead", &dead_}};
  for (auto& d : dbs) {
    rc = mdb_dbi_open(txn, d.name, MDB_CREATE, d.dbi);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return FromMdb(rc, std::string("mdb_dbi_open ") + d.name);
    }
  }
  MDB_val k = Val("schema_version"), v;
  rc = mdb_get(txn, meta_, &k, &v);
  if (rc == MDB_NOTFOUND) {
    std::string ver = std::to_string(kSchemaVersion);
    std::string created = std::to_string(options_.clock->NowMs());
    MDB_val vv = Val(ver);
    MDB_val ck = Val("created_at"), cv = Val(created);
    rc = mdb_put(txn, meta_, &k, &vv, 0);
    if (rc == 0) rc = mdb_put(txn, meta_, &ck, &cv, 0);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return FromMdb(rc, "initialising store");
    }
  } else if (rc == 0) {
    if (View(v) != std::to_string(kSchemaVersion)) {
      mdb_txn_abort(txn);
      return Status::Corruption("store schema version " + std::string(View(v)) + " is not supported (expected " +
                                std::to_string(kSchemaVersion) + ")");
    }
  } else {
    mdb_txn_abort(txn);
    return FromMdb(rc, "reading schema version");
  }
  MDB_val ck = Val("created_at"), cv;
  if (mdb_get(txn, meta_, &ck, &cv) == 0) created_at_ms_ = std::strtoll(std::string(View(cv)).c_str(), nullptr, 10);
  rc = mdb_txn_commit(txn);
  return FromMdb(rc, "committing store initialisation");
}

Store::~Store() {
  if (env_) mdb_env_close(env_);
}

Result<ReadTxn> Store::BeginRead() {
  resize_mu_.lock_shared();
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc == MDB_MAP_RESIZED) {
    // Another process grew the map; adopt its size.
    resize_mu_.unlock_shared();
    {
      std::unique_lock<std::shared_mutex> lock(resize_mu_);
      mdb_env_set_mapsize(env_, 0);
    }
    resize_mu_.lock_shared();
    rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  }
  if (rc != 0) {
    resize_mu_.unlock_shared();
    return FromMdb(rc, "mdb_txn_begin(read)");
  }
  return ReadTxn(this, txn, true);
}

Result<WriteTxn> Store::BeginWrite() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc == MDB_MAP_RESIZED) {
    std::unique_lock<std::shared_mutex> lock(resize_mu_);
    mdb_env_set_mapsize(env_, 0);
    lock.unlock();
    rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  }
  if (rc != 0) return FromMdb(rc, "mdb_txn_begin(write)");
  return WriteTxn(this, txn);
}

Status Store::Grow() {
  std::unique_lock<std::shared_mutex> lock(resize_mu_);
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  uint64_t current = info.me_mapsize;
  if (current >= options_.max_map_size_bytes) {
    return Status::MapFull("store is at store.max_map_size_mib (" + std::to_string(current >> 20) + " MiB)");
  }
  uint64_t next = std::min<uint64_t>(current * 2, options_.max_map_size_bytes);
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc != 0) return FromMdb(rc, "mdb_env_set_mapsize");
  LogInfo("grew store map", {{"from_mib", std::to_string(current >> 20)}, {"to_mib", std::to_string(next >> 20)}});
  return Status::Ok();
}

Status Store::Backup(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::IOError("cannot create backup directory " + path + ": " + ec.message());
  if (std::filesystem::exists(std::filesystem::path(path) / "data.mdb"))
    return Status::InvalidArgument("backup directory already holds a data.mdb: " + path);
  // mdb_env_copy2 runs its own read transaction, so it needs the shared lock
  // like any reader.
  std::shared_lock<std::shared_mutex> lock(resize_mu_);
  int rc = mdb_env_copy2(env_, path.c_str(), MDB_CP_COMPACT);
  return FromMdb(rc, "mdb_env_copy2");
}

StoreStats Store::Stats() {
  StoreStats s;
  MDB_envinfo info{};
  MDB_stat st{};
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &st);
  s.map_size_bytes = info.me_mapsize;
  s.used_bytes = (info.me_last_pgno + 1) * uint64_t(st.ms_psize);
  unsigned int maxr = 0;
  mdb_env_get_maxreaders(env_, &maxr);
  s.max_readers = maxr;
  struct stat fst{};
  if (::stat((options_.path + "/data.mdb").c_str(), &fst) == 0) s.file_bytes = uint64_t(fst.st_size);
  auto txn = BeginRead();
  if (txn.ok()) {
    s.users = txn->CountEntries("users");
    s.outbox_depth = txn->CountEntries("outbox");
    s.dead_letters = txn->CountEntries("dead");
  }
  return s;
}

}  // namespace usersd::store
