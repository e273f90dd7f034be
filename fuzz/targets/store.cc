// Target body for the store's record decoder (fuzz/targets.h).
#include <exception>
#include <string>
#include <string_view>

#include "fuzz/targets.h"
#include "store/record_codec.h"

namespace usersd::fuzz {

using store::Json;

// Input: the bytes of a stored user record (what a damaged or foreign
// data.mdb could hold). DecodeUser, with its MessagePack fast path and its
// SAX path, must give the verdict of the DOM form it replaced
// (UserFromJson(from_msgpack(bytes))) and the same record; what it accepts
// encodes back to bytes that decode to the same record.
int FuzzStoreRecord(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto fast = store::DecodeUser(bytes);
  if (!fast.ok()) USERSD_FUZZ_CHECK(fast.status().code() == Code::kCorruption);

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
