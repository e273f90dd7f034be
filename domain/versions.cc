#include "domain/versions.h"

#include <sys/random.h>

#include <charconv>
#include <limits>

#include "common/log.h"
#include "store/meta_keys.h"

namespace usersd::domain {

using store::Version;

namespace {

struct Clock {
  int64_t ms = 0;
  uint32_t counter = 0;
};

template <class T>
bool ParseNumber(std::string_view s, T* out, int base = 10) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

Result<Clock> ReadClock(store::ReadTxn& t) {
  auto raw = t.GetMeta(store::kMetaClock);
  if (!raw.ok()) return raw.status();
  Clock c;
  if (!raw->has_value()) return c;
  std::string_view s = **raw;
  size_t dot = s.find('.');
  if (dot == std::string_view::npos || !ParseNumber(s.substr(0, dot), &c.ms) ||
      !ParseNumber(s.substr(dot + 1), &c.counter) || c.ms < 0)
    return Status::Corruption("meta hlc is not <ms>.<counter>: " + std::string(s.substr(0, 64)));
  return c;
}

Status WriteClock(store::WriteTxn& t, const Clock& c) {
  return t.PutMeta(store::kMetaClock, std::to_string(c.ms) + "." + std::to_string(c.counter));
}

}  // namespace

std::string FormatHostId(uint64_t host) {
  char buf[17];
  static const char* kHex = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, host >>= 4) buf[i] = kHex[host & 0xf];
  buf[16] = '\0';
  return buf;
}

std::string FormatVersion(const Version& v) {
  return std::to_string(v.ms) + "." + std::to_string(v.counter) + "." + FormatHostId(v.host);
}

std::optional<Version> ParseVersion(std::string_view text) {
  size_t a = text.find('.');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = text.find('.', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  Version v;
  std::string_view host = text.substr(b + 1);
  if (!ParseNumber(text.substr(0, a), &v.ms) || v.ms < 0 || !ParseNumber(text.substr(a + 1, b - a - 1), &v.counter) ||
      host.size() != 16 || !ParseNumber(host, &v.host, 16))
    return std::nullopt;
  // Only the canonical form: "+", upper-case hex and leading zeros of the
  // decimal parts would give one version two spellings.
  if (FormatVersion(v) != text) return std::nullopt;
  return v;
}

Result<std::optional<uint64_t>> ReadHostId(store::ReadTxn& t) {
  auto raw = t.GetMeta(store::kMetaHostId);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<uint64_t>();
  uint64_t host = 0;
  if ((*raw)->size() != 16 || !ParseNumber(**raw, &host, 16) || host == 0)
    return Status::Corruption("meta host_id is not 16 hex digits: " + (*raw)->substr(0, 64));
  return std::optional<uint64_t>(host);
}

Status SetHostId(store::WriteTxn& t, uint64_t host) {
  if (host == 0) return Status::InvalidArgument("host id 0 is reserved for unversioned values");
  return t.PutMeta(store::kMetaHostId, FormatHostId(host));
}

Result<uint64_t> EnsureHostId(store::WriteTxn& t) {
  auto have = ReadHostId(t);
  if (!have.ok()) return have.status();
  if (have->has_value()) return **have;
  uint64_t host = 0;
  while (host == 0) {
    if (getrandom(&host, sizeof host, 0) != static_cast<ssize_t>(sizeof host)) host = 0;
  }
  USERSD_RETURN_IF_ERROR(SetHostId(t, host));
  LogInfo("this host's id for versions of shared fields", {{"host_id", FormatHostId(host)}});
  return host;
}

Result<Version> NextVersion(store::WriteTxn& t, int64_t now_ms) {
  auto host = EnsureHostId(t);
  if (!host.ok()) return host.status();
  auto c = ReadClock(t);
  if (!c.ok()) return c.status();
  Clock next = *c;
  if (now_ms > next.ms) {
    next.ms = now_ms;
    next.counter = 0;
  } else if (next.counter == std::numeric_limits<uint32_t>::max()) {
    ++next.ms;  // four billion writes in one millisecond: borrow the next one
    next.counter = 0;
  } else {
    ++next.counter;
  }
  USERSD_RETURN_IF_ERROR(WriteClock(t, next));
  return Version{next.ms, next.counter, *host};
}

Status ObserveVersion(store::WriteTxn& t, const Version& v) {
  if (v.zero()) return Status::Ok();
  auto c = ReadClock(t);
  if (!c.ok()) return c.status();
  if (std::pair(v.ms, v.counter) <= std::pair(c->ms, c->counter)) return Status::Ok();
  return WriteClock(t, Clock{v.ms, v.counter});
}

}  // namespace usersd::domain
