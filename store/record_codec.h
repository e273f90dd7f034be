// Record codec: MessagePack encoding and decoding of the hot records
// (UserRecord, and the Change that carries one) without a JSON DOM.
//
// The stored form is the MessagePack of a JSON object (store.h). Building
// that object as an nlohmann DOM first cost a std::map node and a string per
// field on every read and write of a user; this codec writes the bytes
// directly and decodes them through nlohmann's SAX interface into the
// record. The bytes are identical to nlohmann::json::to_msgpack of the DOM
// form (keys in std::map order, the smallest integer encodings), so records
// written before and after are the same, and the DOM form (UserToJson /
// UserFromJson) stays the reference the tests compare against.
//
// Pure functions; thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "store/store.h"

namespace usersd::store {

// The DOM form of a user record (what EncodeUser's bytes decode to with
// nlohmann::json::from_msgpack). For the change feed's slow paths and tests.
Json UserToJson(const UserRecord& u);
// Throws std::exception on a field of the wrong type or a missing one.
UserRecord UserFromJson(const Json& j);

// Appends the MessagePack of `u` (as EncodeUser returns it) to `out`.
void AppendUserMsgpack(std::string& out, const UserRecord& u);
// A change-feed entry: {"at": at_ms, "op": 0|1, "user": <user>}.
std::string EncodeChange(const Change& c);

}  // namespace usersd::store
