#include "store/lmdb_util.h"

#include <cerrno>

namespace usersd::store {

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

}  // namespace usersd::store
