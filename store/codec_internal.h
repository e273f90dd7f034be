// Internal to store/record_codec.cc and store/job_codec.cc: the pieces both
// codecs share (the record version, the DOM form's typed readers, versions
// as bytes, and a MessagePack reader and writer with nlohmann's encoding
// choices). Not part of the store's interface; nothing else includes it.
//
// Pure functions and value classes; thread-compatible.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/records.h"

namespace usersd::store::codec {

// The version every user record and outbox job carries as "v".
inline constexpr int kRecordVersion = 1;
// The decoders recurse once per nesting level. Records nest at most
// kMaxStoredDepth + 2 levels (dead letter > job > fields); anything deeper is
// not ours, and stopping there keeps garbage from exhausting the stack.
inline constexpr size_t kMaxDecodeDepth = 2 * kMaxStoredDepth;

// ------------------------------------------------------------- DOM form

template <class T>
inline void PutOpt(Json& j, const char* k, const std::optional<T>& v) {
  if (v) j[k] = *v;
}

// Typed field readers for decoding. They throw (turned into Corruption by the
// callers) instead of converting: nlohmann would silently cast a float or a
// negative number, and casting an out-of-range double is undefined behaviour.
inline int64_t I64Of(const Json& v, const char* k) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) throw std::runtime_error(std::string(k) + " out of range");
    return int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  throw std::runtime_error(std::string(k) + " is not an integer");
}
inline int64_t I64(const Json& j, const char* k) {
  return I64Of(j.at(k), k);
}
inline uint64_t U64(const Json& j, const char* k) {
  const Json& v = j.at(k);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  throw std::runtime_error(std::string(k) + " is not an unsigned integer");
}
inline int I32(const Json& j, const char* k) {
  int64_t v = I64(j, k);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw std::runtime_error(std::string(k) + " out of range");
  return int(v);
}
inline uint32_t U32(const Json& j, const char* k) {
  uint64_t v = U64(j, k);
  if (v > std::numeric_limits<uint32_t>::max()) throw std::runtime_error(std::string(k) + " out of range");
  return uint32_t(v);
}
inline std::string StrField(const Json& j, const char* k) {
  return j.at(k).get<std::string>();
}
inline bool BoolField(const Json& j, const char* k) {
  return j.at(k).get<bool>();
}
inline std::optional<std::string> OptStr(const Json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}
inline std::optional<int64_t> OptI64(const Json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return I64Of(*it, k);
}

// The versions of a user record ("sv") and of a job ("ver") are stored as
// MessagePack bin: per version 8 bytes ms, 4 counter, 8 host, big-endian,
// in the order of UserRecord's arrays (shared, workos, owned); trailing zero
// versions are left out, and a record whose versions are all zero has no
// "sv" at all (as every record of an earlier release).
inline constexpr size_t kVersionBytes = 20;

inline void PutVersionBytes(std::vector<uint8_t>& out, const Version& v) {
  auto be = [&](uint64_t x, int n) {
    for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>((x >> (8 * i)) & 0xff));
  };
  be(static_cast<uint64_t>(v.ms), 8);
  be(v.counter, 4);
  be(v.host, 8);
}

inline Version VersionFromBytes(const uint8_t* p) {
  auto be = [&](size_t at, int n) {
    uint64_t x = 0;
    for (int i = 0; i < n; ++i) x = (x << 8) | p[at + i];
    return x;
  };
  Version v;
  v.ms = static_cast<int64_t>(be(0, 8));
  v.counter = static_cast<uint32_t>(be(8, 4));
  v.host = be(12, 8);
  return v;
}

// The MessagePack of a DOM value, and a DOM from MessagePack that stops at
// kMaxDecodeDepth instead of recursing until the stack runs out.
std::string ToMsgpack(const Json& j);
Result<Json> FromMsgpack(std::string_view bytes);

// MessagePack writer with nlohmann's encoding choices (binary_writer's
// write_msgpack): fixint/uint8/16/32/64 for non-negative integers whatever
// their C++ type, negative fixint/int8/16/32/64 below zero, fixstr/str8/16/32
// and fixmap/map16/32.
class MsgpackOut {
 public:
  explicit MsgpackOut(std::string& out) : out_(out) {}
  void Map(size_t n) {
    if (n <= 15) {
      Byte(0x80 | n);
    } else if (n <= 0xffff) {
      Byte(0xde);
      Be(n, 2);
    } else {
      Byte(0xdf);
      Be(n, 4);
    }
  }
  void Str(std::string_view s) {
    const size_t n = s.size();
    if (n <= 31) {
      Byte(0xa0 | n);
    } else if (n <= 0xff) {
      Byte(0xd9);
      Be(n, 1);
    } else if (n <= 0xffff) {
      Byte(0xda);
      Be(n, 2);
    } else {
      Byte(0xdb);
      Be(n, 4);
    }
    out_.append(s);
  }
  void Uint(uint64_t v) {
    if (v < 128) {
      Byte(v);
    } else if (v <= 0xff) {
      Byte(0xcc);
      Be(v, 1);
    } else if (v <= 0xffff) {
      Byte(0xcd);
      Be(v, 2);
    } else if (v <= 0xffffffffu) {
      Byte(0xce);
      Be(v, 4);
    } else {
      Byte(0xcf);
      Be(v, 8);
    }
  }
  void Int(int64_t v) {
    if (v >= 0) return Uint(static_cast<uint64_t>(v));
    const auto u = static_cast<uint64_t>(v);  // two's complement bytes
    if (v >= -32) {
      Byte(u & 0xff);
    } else if (v >= std::numeric_limits<int8_t>::min()) {
      Byte(0xd0);
      Be(u, 1);
    } else if (v >= std::numeric_limits<int16_t>::min()) {
      Byte(0xd1);
      Be(u, 2);
    } else if (v >= std::numeric_limits<int32_t>::min()) {
      Byte(0xd2);
      Be(u, 4);
    } else {
      Byte(0xd3);
      Be(u, 8);
    }
  }
  void Bool(bool b) { Byte(b ? 0xc3 : 0xc2); }
  void Nil() { Byte(0xc0); }
  void Raw(const std::vector<uint8_t>& bytes) { out_.append(bytes.begin(), bytes.end()); }
  // bin8/16/32, as nlohmann writes a binary value without a subtype.
  void Bin(const std::vector<uint8_t>& bytes) {
    const size_t n = bytes.size();
    if (n <= 0xff) {
      Byte(0xc4);
      Be(n, 1);
    } else if (n <= 0xffff) {
      Byte(0xc5);
      Be(n, 2);
    } else {
      Byte(0xc6);
      Be(n, 4);
    }
    Raw(bytes);
  }

 private:
  void Byte(uint64_t b) { out_.push_back(static_cast<char>(b & 0xff)); }
  void Be(uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

// MessagePack reader for the common shape of a user record: only the known
// keys, with strings, booleans, integers and nil, and settings of plain JSON
// types (built as nlohmann's reader builds them). Returns false on anything
// else (including every error), and DecodeUser then takes the SAX path,
// which has the reference behaviour and messages. Never reads past the end
// of the bytes.
class MsgpackIn {
 public:
  explicit MsgpackIn(std::string_view b) : p_(reinterpret_cast<const uint8_t*>(b.data())), end_(p_ + b.size()) {}
  bool AtEnd() const { return p_ == end_; }
  bool Map(size_t* n) {
    if (p_ == end_) return false;
    uint8_t c = *p_;
    if ((c & 0xf0) == 0x80) {
      ++p_;
      *n = c & 0x0f;
      return true;
    }
    if (c == 0xde) return ++p_, Be(2, n);
    if (c == 0xdf) return ++p_, Be(4, n);
    return false;
  }
  bool Str(std::string_view* s) {
    if (p_ == end_) return false;
    uint8_t c = *p_;
    size_t n;
    if ((c & 0xe0) == 0xa0) {
      ++p_;
      n = c & 0x1f;
    } else if (c == 0xd9) {
      if (!(++p_, Be(1, &n))) return false;
    } else if (c == 0xda) {
      if (!(++p_, Be(2, &n))) return false;
    } else if (c == 0xdb) {
      if (!(++p_, Be(4, &n))) return false;
    } else {
      return false;
    }
    if (static_cast<size_t>(end_ - p_) < n) return false;
    *s = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  bool Nil() {
    if (p_ != end_ && *p_ == 0xc0) return ++p_, true;
    return false;
  }
  bool Bin(const uint8_t** data, size_t* n) {
    if (p_ == end_ || *p_ < 0xc4 || *p_ > 0xc6) return false;
    const uint8_t c = *p_++;
    if (!Be(size_t{1} << (c - 0xc4), n) || static_cast<size_t>(end_ - p_) < *n) return false;
    *data = p_;
    p_ += *n;
    return true;
  }
  bool Bool(bool* b) {
    if (p_ == end_ || (*p_ != 0xc2 && *p_ != 0xc3)) return false;
    *b = *p_++ == 0xc3;
    return true;
  }
  // An unsigned encoding (positive fixint, uint8..64).
  bool Uint(uint64_t* v) {
    if (p_ == end_) return false;
    uint8_t c = *p_;
    if (c < 0x80) return ++p_, *v = c, true;
    if (c >= 0xcc && c <= 0xcf) return ++p_, Be(size_t{1} << (c - 0xcc), v);
    return false;
  }
  // Any value, as nlohmann's MessagePack reader builds it (unsigned
  // encodings as number_unsigned, signed ones as number_integer, float32
  // widened, bin as binary, a repeated key: the last wins), nested at most
  // kMaxDecodeDepth levels counting the record as level 1. False for ext
  // types and non-string keys, which the SAX path handles.
  bool Value(Json* out, size_t depth) {
    if (p_ == end_) return false;
    const uint8_t c = *p_;
    if (c < 0x80 || (c >= 0xcc && c <= 0xcf)) {
      uint64_t u;
      if (!Uint(&u)) return false;
      *out = u;
      return true;
    }
    if (c >= 0xe0 || (c >= 0xd0 && c <= 0xd3)) {
      int64_t i;
      if (!Int64(&i)) return false;
      *out = i;
      return true;
    }
    if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb)) {
      std::string_view s;
      if (!Str(&s)) return false;
      *out = std::string(s);
      return true;
    }
    const bool map = (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
    const bool array = (c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd;
    if (map || array) {
      if (depth > kMaxDecodeDepth) return false;
      size_t n;
      ++p_;
      if ((c & 0xe0) == 0x80) n = c & 0x0f;
      else if (!Be((c == 0xdc || c == 0xde) ? 2 : 4, &n)) return false;
      *out = map ? Json::object() : Json::array();
      for (size_t i = 0; i < n; ++i) {
        std::string_view key;
        if (map && !Str(&key)) return false;
        Json v;
        if (!Value(&v, depth + 1)) return false;
        if (map) (*out)[std::string(key)] = std::move(v);
        else out->push_back(std::move(v));
      }
      return true;
    }
    ++p_;
    switch (c) {
      case 0xc0: *out = nullptr; return true;
      case 0xc2: *out = false; return true;
      case 0xc3: *out = true; return true;
      case 0xca: {
        uint32_t bits;
        float f;
        if (!Be(4, &bits)) return false;
        std::memcpy(&f, &bits, sizeof f);
        *out = static_cast<double>(f);
        return true;
      }
      case 0xcb: {
        uint64_t bits;
        double d;
        if (!Be(8, &bits)) return false;
        std::memcpy(&d, &bits, sizeof d);
        *out = d;
        return true;
      }
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        size_t n;
        if (!Be(size_t{1} << (c - 0xc4), &n) || static_cast<size_t>(end_ - p_) < n) return false;
        *out = Json::binary(std::vector<uint8_t>(p_, p_ + n));
        p_ += n;
        return true;
      }
      default: return false;
    }
  }

  // Any integer encoding that fits an int64 (what the DOM form's I64 takes).
  bool Int64(int64_t* v) {
    if (p_ == end_) return false;
    uint8_t c = *p_;
    uint64_t u;
    if (c >= 0xe0) return ++p_, *v = static_cast<int8_t>(c), true;
    if (c >= 0xd0 && c <= 0xd3) {
      const size_t n = size_t{1} << (c - 0xd0);
      if (!(++p_, Be(n, &u))) return false;
      // Sign-extend the n-byte two's complement value.
      const unsigned shift = static_cast<unsigned>(64 - 8 * n);
      *v = static_cast<int64_t>(u << shift) >> shift;
      return true;
    }
    if (!Uint(&u) || u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }

 private:
  template <class T>
  bool Be(size_t n, T* out) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | p_[i];
    p_ += n;
    *out = static_cast<T>(v);
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace usersd::store::codec
