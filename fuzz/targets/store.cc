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
  Json dom_form;
  try {
    // The DOM path's own depth bound is the decoder's; deeper input is
    // refused by both (from_msgpack would recurse, so it is skipped there).
    dom_form = store::UserToJson(store::UserFromJson(Json::from_msgpack(bytes)));
  } catch (const std::exception&) {
    dom_ok = false;
  }
  if (dom_ok) {
    USERSD_FUZZ_CHECK(fast.ok());
    USERSD_FUZZ_CHECK(store::UserToJson(*fast) == dom_form);
  } else if (fast.ok()) {
    // Only nesting beyond the decoder's bound may separate them, and that
    // the fast decoder refuses; anything it accepts the DOM form accepts.
    USERSD_FUZZ_CHECK(false);
  }
  if (fast.ok()) {
    auto again = store::DecodeUser(store::EncodeUser(*fast));
    USERSD_FUZZ_CHECK(again.ok());
    USERSD_FUZZ_CHECK(store::UserToJson(*again) == store::UserToJson(*fast));
  }
  return 0;
}

}  // namespace usersd::fuzz
