// ReadTxn and WriteTxn (store/store.h): the reads and writes of one LMDB
// transaction on the store's tables. The Store that opens them is in
// store.cc; the record forms are store/record_codec's.
#include <algorithm>
#include <limits>
#include <utility>

#include "common/log.h"
#include "store/lmdb_util.h"
#include "store/meta_keys.h"
#include "store/record_codec.h"
#include "store/store.h"

namespace usersd::store {

using internal::EmailIndexKey;
using internal::JobIndexKey;
using internal::JobIndexPrefix;
using internal::Scan;
using internal::Val;
using internal::View;

namespace {

// Keys are looked up only up to this size (LMDB's own limit is 511 bytes).
constexpr size_t kMaxKeyBytes = 255;

// Refuses values that nest deeper than `max_levels` (the value itself is
// level 1), without recursing.
Status CheckDepth(const Json& root, size_t max_levels, const char* what) {
  std::vector<std::pair<const Json*, size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth > max_levels)
      return Status::InvalidArgument(std::string(what) + ": nested more than " + std::to_string(max_levels) +
                                     " levels deep");
    for (const Json& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return Status::Ok();
}

// Reads an 8-byte big-endian counter from meta (0 when absent).
Result<uint64_t> CounterFrom(const Result<std::optional<std::string>>& raw, std::string_view name) {
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return uint64_t{0};
  if ((*raw)->size() != 8) return Status::Corruption("meta " + std::string(name) + " is not an 8-byte counter");
  return U64FromKey(**raw);
}

// Decodes the entries from `start` on into a vector: `decode(key, value)`
// gives a Result<T>; the first failure ends the scan with its status. An
// entry whose key equals `skip` is passed over; `max` == 0 means no limit;
// the scan ends before a key >= `end` (when not empty).
template <class T, class Decode>
Result<std::vector<T>> Collect(MDB_txn* txn, MDB_dbi dbi, std::string_view start, std::string_view skip, size_t max,
                               Decode decode, std::string_view end = {}) {
  std::vector<T> out;
  Status bad;
  Status st = Scan(txn, dbi, start, [&](std::string_view k, std::string_view v) {
    if (!end.empty() && k >= end) return false;
    if (!skip.empty() && k == skip) return true;
    Result<T> item = decode(k, v);
    if (!item.ok()) {
      bad = item.status();
      return false;
    }
    out.push_back(std::move(*item));
    return max == 0 || out.size() < max;
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  return out;
}

}  // namespace

// ---------------------------------------------------------------- ReadTxn

ReadTxn::ReadTxn(Store* store, MDB_txn* txn, bool holds_lock)
    : store_(store),
      txn_(txn),
      holds_lock_(holds_lock),
      reader_(holds_lock),
      visible_txid_(reader_ ? store->durable_txid() : std::numeric_limits<uint64_t>::max()) {}

ReadTxn::ReadTxn(ReadTxn&& o) noexcept
    : store_(o.store_), txn_(o.txn_), holds_lock_(o.holds_lock_), reader_(o.reader_), visible_txid_(o.visible_txid_) {
  o.txn_ = nullptr;
  o.holds_lock_ = false;
}

ReadTxn::~ReadTxn() {
  if (txn_ && holds_lock_) {
    store_->EndRead(txn_);  // resets it and leaves the map
    txn_ = nullptr;
    return;
  }
  if (holds_lock_) store_->LeaveMap();
}

Result<std::optional<std::string>> ReadTxn::GetRaw(MDB_dbi dbi, std::string_view key) {
  MDB_val k = Val(key), v;
  int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return FromMdb(rc, "mdb_get");
  return std::optional<std::string>(std::string(View(v)));
}

namespace {
// The value under `key`, as a view into LMDB's memory: valid until the
// transaction writes again or ends, so decode it at once (the user lookups
// below do, which saves a copy of the record and of the index entry per
// user.me).
Result<std::optional<std::string_view>> GetView(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = Val(key), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
  if (rc != 0) return FromMdb(rc, "mdb_get");
  return std::optional<std::string_view>(View(v));
}
}  // namespace

Result<std::optional<UserRecord>> ReadTxn::GetUser(std::string_view id) {
  if (id.empty() || id.size() > kMaxKeyBytes) return std::optional<UserRecord>();
  auto raw = GetView(txn_, store_->dbi(Table::kUsers), id);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<UserRecord>();
  auto u = DecodeUser(**raw);
  if (!u.ok()) return u.status();
  return std::optional<UserRecord>(std::move(*u));
}

Result<std::optional<UserRecord>> ReadTxn::FindByWorkosId(std::string_view workos_id) {
  if (workos_id.empty() || workos_id.size() > kMaxKeyBytes) return std::optional<UserRecord>();
  auto id = GetView(txn_, store_->dbi(Table::kByWorkos), workos_id);
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::optional<UserRecord>();
  return GetUser(**id);  // a read: the view stays valid for it
}

Result<std::optional<UserRecord>> ReadTxn::FindByEmail(std::string_view email) {
  if (email.empty() || email.size() > kMaxKeyBytes) return std::optional<UserRecord>();
  auto id = GetView(txn_, store_->dbi(Table::kByEmail), EmailIndexKey(email));
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::optional<UserRecord>();
  return GetUser(**id);
}

Result<std::optional<std::string>> ReadTxn::GetMeta(std::string_view key) {
  return GetRaw(store_->dbi(Table::kMeta), key);
}

uint64_t ReadTxn::LastTxid() {
  auto v = CounterFrom(GetMeta(kMetaLastTxid), kMetaLastTxid);
  return v.ok() ? std::min(*v, VisibleTxidLimit()) : 0;
}

Result<std::vector<UserRecord>> ReadTxn::ListUsers(std::string_view after, size_t limit) {
  if (limit == 0) return std::vector<UserRecord>();
  return Collect<UserRecord>(txn_, store_->dbi(Table::kUsers), after, after, limit,
                             [](std::string_view, std::string_view v) { return DecodeUser(v); });
}

Result<std::vector<OutboxJob>> ReadTxn::ListJobs(size_t limit) {
  return Collect<OutboxJob>(txn_, store_->dbi(Table::kOutbox), {}, {}, limit,
                            [](std::string_view, std::string_view v) { return DecodeJob(v); });
}

Result<std::vector<OutboxJob>> ReadTxn::JobsOfUser(std::string_view user_id) {
  std::vector<OutboxJob> out;
  if (user_id.empty()) return out;
  std::string prefix = JobIndexPrefix(user_id);
  std::vector<uint64_t> ids;
  Status st = Scan(txn_, store_->dbi(Table::kJobsByUser), prefix, [&](std::string_view k, std::string_view) {
    if (k.size() != prefix.size() + 8 || k.substr(0, prefix.size()) != prefix) return false;
    ids.push_back(U64FromKey(k.substr(prefix.size())));
    return true;
  });
  if (!st.ok()) return st;
  for (uint64_t id : ids) {
    auto j = GetJob(id);
    if (!j.ok()) return j.status();
    // An entry without its job cannot be written by WriteTxn; skip it.
    if (j->has_value()) out.push_back(std::move(**j));
  }
  return out;
}

Result<std::vector<DeadLetter>> ReadTxn::ListDeadLetters(size_t limit) {
  return Collect<DeadLetter>(txn_, store_->dbi(Table::kDead), {}, {}, limit,
                             [](std::string_view, std::string_view v) { return DecodeDeadLetter(v); });
}

Result<std::vector<OutboxJob>> ReadTxn::ListJobsAfter(uint64_t after_id, size_t limit) {
  if (after_id == UINT64_MAX) return std::vector<OutboxJob>();
  return Collect<OutboxJob>(txn_, store_->dbi(Table::kOutbox), U64Key(after_id + 1), {}, limit,
                            [](std::string_view, std::string_view v) { return DecodeJob(v); });
}

Result<std::optional<OutboxJob>> ReadTxn::GetJob(uint64_t id) {
  auto raw = GetRaw(store_->dbi(Table::kOutbox), U64Key(id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<OutboxJob>();
  auto j = DecodeJob(**raw);
  if (!j.ok()) return j.status();
  return std::optional<OutboxJob>(std::move(*j));
}

Result<std::optional<DeadLetter>> ReadTxn::GetDeadLetter(uint64_t id) {
  auto raw = GetRaw(store_->dbi(Table::kDead), U64Key(id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<DeadLetter>();
  auto d = DecodeDeadLetter(**raw);
  if (!d.ok()) return d.status();
  return std::optional<DeadLetter>(std::move(*d));
}

Result<std::vector<Change>> ReadTxn::ChangesSince(uint64_t since, size_t limit) {
  if (limit == 0) return std::vector<Change>();
  const uint64_t visible = VisibleTxidLimit();
  if (since > visible) return std::vector<Change>();
  // Keys are big-endian transactionIds, so the scan stops at the first
  // entry that is not durable yet.
  const std::string stop = visible == std::numeric_limits<uint64_t>::max() ? std::string() : U64Key(visible + 1);
  return Collect<Change>(
      txn_, store_->dbi(Table::kChanges), U64Key(since), {}, limit,
      [](std::string_view k, std::string_view v) -> Result<Change> {
        auto c = DecodeChange(v);
        if (c.ok()) c->txid = U64FromKey(k);
        return c;
      },
      stop);
}

uint64_t ReadTxn::CountEntries(Table table) {
  MDB_dbi dbi = store_->dbi(table);
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
  return WriteTxn(store_, child, /*nested=*/true);
}

Status WriteTxn::Commit() {
  if (done_ || !txn_) return Status::Internal("commit on a finished transaction");
  done_ = true;
  if (nested_) {
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    return FromMdb(rc, "mdb_txn_commit(nested)");
  }
  // The transactionId this commit makes current, for the durable watermark.
  auto last = CounterFrom(GetMeta(kMetaLastTxid), kMetaLastTxid);
  const uint64_t id = mdb_txn_id(txn_);
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  if (rc == 0) store_->NoteCommit(id, last.ok() ? *last : 0);
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
  // Not LastTxid(): a read error there means 0, and restarting at 1 would
  // break "strictly increasing".
  auto last = CounterFrom(GetMeta(kMetaLastTxid), kMetaLastTxid);
  if (!last.ok()) return last.status();
  uint64_t next = *last + 1;
  USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kMeta), kMetaLastTxid, U64Key(next)));
  return next;
}

Status WriteTxn::PutUser(const UserRecord& u, const std::optional<UserRecord>& previous) {
  if (u.id.empty() || u.workos_id.empty()) return Status::InvalidArgument("user needs an id and a WorkOS id");
  if (u.id.size() > kMaxKeyBytes) return Status::InvalidArgument("user id longer than 255 bytes");
  if (u.workos_id.size() > kMaxKeyBytes) return Status::InvalidArgument("workosId longer than 255 bytes");
  if (u.email.size() > kMaxKeyBytes) return Status::InvalidArgument("email longer than 255 bytes");
  if (u.settings) USERSD_RETURN_IF_ERROR(CheckDepth(*u.settings, kMaxStoredDepth, "settings"));

  // The indexes follow the stored version, whatever the caller believes it
  // to be; the caller's copy stands in only for bytes that do not decode.
  std::optional<UserRecord> stored;
  {
    auto s = GetUser(u.id);
    if (s.ok()) {
      stored = std::move(*s);
    } else if (s.status().code() == Code::kCorruption) {
      LogWarn("overwriting an undecodable user record", {{"user_id", u.id}, {"error", s.status().message()}});
      stored = previous;
    } else {
      return s.status();
    }
  }

  // Every check comes before the first write, so a refused PutUser leaves
  // the transaction as it found it (a caller may go on after the error).
  auto owner = GetRaw(store_->dbi(Table::kByWorkos), u.workos_id);
  if (!owner.ok()) return owner.status();
  if (owner->has_value() && **owner != u.id) return Status::InvalidArgument("workosId already belongs to another user");

  // Email index: unique among live users with a non-empty email.
  std::string old_key =
      stored && stored->live() && !stored->email.empty() ? EmailIndexKey(stored->email) : std::string();
  std::string new_key = u.live() && !u.email.empty() ? EmailIndexKey(u.email) : std::string();
  bool index_new_email = false;
  if (!new_key.empty()) {
    auto holder = GetRaw(store_->dbi(Table::kByEmail), new_key);
    if (!holder.ok()) return holder.status();
    // Another user holding the key this user already had is a clash from
    // before (an index rebuilt under a finer fold): it does not stop this
    // user's other changes.
    if (holder->has_value() && **holder != u.id && new_key != old_key)
      return Status::InvalidArgument("email already in use");
    index_new_email = !holder->has_value();
  }
  std::string encoded = EncodeUser(u);

  // Deletes an index entry only while it still points at this user.
  auto drop = [&](MDB_dbi dbi, const std::string& key) -> Status {
    auto holder = GetRaw(dbi, key);
    if (!holder.ok()) return holder.status();
    if (holder->has_value() && **holder == u.id) return Del(dbi, key);
    return Status::Ok();
  };
  if (stored && !stored->workos_id.empty() && stored->workos_id != u.workos_id)
    USERSD_RETURN_IF_ERROR(drop(store_->dbi(Table::kByWorkos), stored->workos_id));
  if (!owner->has_value()) USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kByWorkos), u.workos_id, u.id));
  if (!old_key.empty() && old_key != new_key) USERSD_RETURN_IF_ERROR(drop(store_->dbi(Table::kByEmail), old_key));
  if (index_new_email) USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kByEmail), new_key, u.id));
  return Put(store_->dbi(Table::kUsers), u.id, encoded);
}

Status WriteTxn::PutMeta(std::string_view key, std::string_view value) {
  return Put(store_->dbi(Table::kMeta), key, value);
}

Status WriteTxn::DeleteMeta(std::string_view key) {
  return Del(store_->dbi(Table::kMeta), key);
}

Status WriteTxn::AppendChange(const Change& c) {
  if (c.user.settings) USERSD_RETURN_IF_ERROR(CheckDepth(*c.user.settings, kMaxStoredDepth, "settings"));
  return Put(store_->dbi(Table::kChanges), U64Key(c.txid), EncodeChange(c));
}

Status WriteTxn::RemoveUser(std::string_view id) {
  auto cur = GetUser(id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return Status::Ok();
  const UserRecord& u = **cur;
  auto drop = [&](MDB_dbi dbi, const std::string& key) -> Status {
    if (key.empty()) return Status::Ok();
    auto holder = GetRaw(dbi, key);
    if (!holder.ok()) return holder.status();
    if (holder->has_value() && **holder == u.id) return Del(dbi, key);
    return Status::Ok();
  };
  USERSD_RETURN_IF_ERROR(drop(store_->dbi(Table::kByWorkos), u.workos_id));
  if (u.live() && !u.email.empty()) USERSD_RETURN_IF_ERROR(drop(store_->dbi(Table::kByEmail), EmailIndexKey(u.email)));
  return Del(store_->dbi(Table::kUsers), u.id);
}

Result<uint64_t> WriteTxn::EnqueueJob(OutboxJob job) {
  USERSD_RETURN_IF_ERROR(CheckDepth(job.fields, kMaxStoredDepth, "job fields"));
  auto next = CounterFrom(GetMeta(kMetaNextJobId), kMetaNextJobId);
  if (!next.ok()) return next.status();
  uint64_t id = *next == 0 ? 1 : *next;
  USERSD_RETURN_IF_ERROR(PutMeta(kMetaNextJobId, U64Key(id + 1)));
  job.id = id;
  USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kOutbox), U64Key(id), EncodeJob(job)));
  USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kJobsByUser), JobIndexKey(job.user_id, id), {}));
  return id;
}

Status WriteTxn::UpdateJob(const OutboxJob& job) {
  USERSD_RETURN_IF_ERROR(CheckDepth(job.fields, kMaxStoredDepth, "job fields"));
  auto raw = GetRaw(store_->dbi(Table::kOutbox), U64Key(job.id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return Status::NotFound("outbox job " + std::to_string(job.id));
  auto old = DecodeJob(**raw);
  if (!old.ok() || old->user_id != job.user_id) {
    if (old.ok()) USERSD_RETURN_IF_ERROR(Del(store_->dbi(Table::kJobsByUser), JobIndexKey(old->user_id, job.id)));
    USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kJobsByUser), JobIndexKey(job.user_id, job.id), {}));
  }
  return Put(store_->dbi(Table::kOutbox), U64Key(job.id), EncodeJob(job));
}

Status WriteTxn::DeleteJob(uint64_t id) {
  auto raw = GetRaw(store_->dbi(Table::kOutbox), U64Key(id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return Status::Ok();
  // An undecodable job leaves its index entry behind; JobsOfUser skips it.
  if (auto j = DecodeJob(**raw); j.ok())
    USERSD_RETURN_IF_ERROR(Del(store_->dbi(Table::kJobsByUser), JobIndexKey(j->user_id, id)));
  return Del(store_->dbi(Table::kOutbox), U64Key(id));
}

Status WriteTxn::MoveToDeadLetter(const OutboxJob& job, int status, std::string_view body, int64_t now_ms) {
  // Bodies are kept for operators, but bounded: a hostile upstream must not
  // fill the store. Invalid UTF-8 is replaced when the letter is shown.
  USERSD_RETURN_IF_ERROR(CheckDepth(job.fields, kMaxStoredDepth, "job fields"));
  DeadLetter d{job, status, std::string(body.substr(0, 4096)), now_ms};
  USERSD_RETURN_IF_ERROR(Put(store_->dbi(Table::kDead), U64Key(job.id), EncodeDeadLetter(d)));
  return DeleteJob(job.id);
}

Status WriteTxn::DeleteDeadLetter(uint64_t id) {
  return Del(store_->dbi(Table::kDead), U64Key(id));
}

Result<uint64_t> WriteTxn::TrimChanges(uint64_t before, size_t max_entries) {
  std::vector<std::string> keys;
  Status st = Scan(txn_, store_->dbi(Table::kChanges), {}, [&](std::string_view k, std::string_view) {
    if (U64FromKey(k) >= before || keys.size() >= max_entries) return false;
    keys.emplace_back(k);
    return true;
  });
  if (!st.ok()) return st;
  for (const auto& k : keys) USERSD_RETURN_IF_ERROR(Del(store_->dbi(Table::kChanges), k));
  return static_cast<uint64_t>(keys.size());
}
}  // namespace usersd::store
