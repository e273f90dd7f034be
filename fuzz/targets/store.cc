// Target body for the store's record decoder (fuzz/targets.h).
#include <exception>
#include <string>
#include <string_view>

#include "fuzz/targets.h"
#include "store/record_codec.h"

namespace usersd::fuzz {

using store::Json;

namespace {

// Json::from_msgpack, the oracle below, recurses once per level with no
// bound; on input nested thousands deep it overflows the stack (found by
// this target: ASan's frames are large). Deeper than this the oracle is not
// run. DecodeUser itself stops at 2 * kMaxStoredDepth levels.
constexpr size_t kOracleMaxDepth = 4 * store::kMaxStoredDepth;

// Counts nesting without building anything and stops past `max`.
class DepthProbe {
 public:
  explicit DepthProbe(size_t max) : max_(max) {}
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(Json::number_integer_t) { return true; }
  bool number_unsigned(Json::number_unsigned_t) { return true; }
  bool number_float(Json::number_float_t, const Json::string_t&) { return true; }
  bool string(Json::string_t&) { return true; }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(std::size_t) { return Deeper(); }
  bool key(Json::string_t&) { return true; }
  bool end_object() { return --depth_, true; }
  bool start_array(std::size_t) { return Deeper(); }
  bool end_array() { return --depth_, true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
  bool too_deep() const { return too_deep_; }

 private:
  bool Deeper() {
    too_deep_ = ++depth_ > max_;
    return !too_deep_;
  }
  size_t max_;
  size_t depth_ = 0;
  bool too_deep_ = false;
};

bool NestsDeeperThan(std::string_view bytes, size_t max) {
  DepthProbe probe(max);
  Json::sax_parse(bytes.begin(), bytes.end(), &probe, nlohmann::detail::input_format_t::msgpack, /*strict=*/true);
  return probe.too_deep();
}

}  // namespace

// Input: the bytes of a stored user record (what a damaged or foreign
// data.mdb could hold). DecodeUser, with its MessagePack fast path and its
// SAX path, must give the verdict of the DOM form it replaced
// (UserFromJson(from_msgpack(bytes))) and the same record; what it accepts
// encodes back to bytes that decode to the same record.
int FuzzStoreRecord(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto fast = store::DecodeUser(bytes);
  if (!fast.ok()) USERSD_FUZZ_CHECK(fast.status().code() == Code::kCorruption);

  if (NestsDeeperThan(bytes, kOracleMaxDepth)) {
    USERSD_FUZZ_CHECK(!fast.ok());  // far past the decoder's own bound
    return 0;
  }
  bool dom_ok = true;
  std::string dom_bytes;  // compared as bytes: a NaN in settings is not == itself
  try {
    dom_bytes = store::EncodeUser(store::UserFromJson(Json::from_msgpack(bytes)));
  } catch (const std::exception&) {
    dom_ok = false;
  }
  if (dom_ok) {
    // Unless it nests beyond the decoder's bound, which from_msgpack lacks.
    if (fast.ok()) USERSD_FUZZ_CHECK(store::EncodeUser(*fast) == dom_bytes);
    else USERSD_FUZZ_CHECK(fast.status().message().find("levels deep") != std::string::npos);
  } else if (fast.ok()) {
    // Only nesting beyond the decoder's bound may separate them, and that
    // the fast decoder refuses; anything it accepts the DOM form accepts.
    USERSD_FUZZ_CHECK(false);
  }
  if (fast.ok()) {
    const std::string encoded = store::EncodeUser(*fast);
    auto again = store::DecodeUser(encoded);
    USERSD_FUZZ_CHECK(again.ok());
    USERSD_FUZZ_CHECK(store::EncodeUser(*again) == encoded);
  }
  return 0;
}

}  // namespace usersd::fuzz
