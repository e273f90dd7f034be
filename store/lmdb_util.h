// The store's LMDB helpers: LMDB errors as Status, the big-endian u64 keys
// (which store.h hands on to its users), and, for store/store.cc and
// store/transactions.cc only (namespace internal), byte views of MDB_val, a
// cursor and a scan over a table, and the keys of the by_email and
// jobs_by_user indexes. Knows LMDB, not the store's tables or records.
//
// Thread-compatible: each helper works within the transaction it is given.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/text.h"

namespace usersd::store {

// LMDB error code to Status (MDB_MAP_FULL becomes MapFull).
Status FromMdb(int rc, std::string_view what);

// Big-endian u64 keys keep numeric order under LMDB's byte order.
std::string U64Key(uint64_t v);
uint64_t U64FromKey(std::string_view key);

}  // namespace usersd::store

namespace usersd::store::internal {

inline MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view View(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// LMDB refuses keys over 511 bytes; case folding can triple an address's
// length (255 bytes). A key that would be longer falls back to the ASCII
// fold, which at worst lets two such extreme addresses differ.
inline constexpr size_t kMaxIndexKeyBytes = 511;
inline std::string EmailIndexKey(std::string_view email) {
  std::string key = EmailKey(email);
  if (key.size() > kMaxIndexKeyBytes) return ToLowerAscii(email);
  return key;
}

// The jobs_by_user index: user id, a NUL, then the job id (u64 BE), so that a
// user's jobs sort together in the order they were queued.
inline std::string JobIndexPrefix(std::string_view user_id) {
  std::string k(user_id);
  k.push_back('\0');
  return k;
}
inline std::string JobIndexKey(std::string_view user_id, uint64_t job_id) {
  return JobIndexPrefix(user_id) + U64Key(job_id);
}

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

}  // namespace usersd::store::internal
