// Record codec: the stored form of every record the store keeps (user
// records, outbox jobs, dead letters, change-feed entries). The store
// (store/transactions.cc, and store.cc's one-time index rebuilds) calls
// these and nothing else touches the bytes; this file knows the record types
// (records.h) but not LMDB.
//
// Every stored value is the MessagePack of a JSON object (nlohmann's
// to_msgpack: keys in std::map order, the smallest integer encodings). Users,
// jobs and dead letters carry a record version ("v", dead letters inside
// their job); decoding refuses any other version.
//
// User records, the hot ones, are written directly and read through a
// MessagePack fast path or nlohmann's SAX interface, without a JSON DOM.
// Their bytes are identical to to_msgpack of the DOM form (UserToJson /
// UserFromJson below), so records written before and after are the same, and
// the DOM form stays the reference that the tests and the store_record fuzz
// target compare against. Change-feed entries are written the same direct
// way and read back through the DOM (the feed is read in batches, off the
// request path); jobs and dead letters go through the DOM both ways.
//
// Decode* fail with Corruption on bytes that are not a record of a known
// version, including values nested deeper than the decoder allows (it
// recurses per level; records nest at most kMaxStoredDepth + 2 levels).
//
// Pure functions; thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "store/records.h"

namespace usersd::store {

// A user record: {"v", "id", "workos", "email", ..., "tx"} (see UserToJson).
std::string EncodeUser(const UserRecord& u);
Result<UserRecord> DecodeUser(std::string_view bytes);

// An outbox job: {"v", "id", "user", "workos", "op", "fields", "tx",
// "created", "attempts", "next", "err"}.
std::string EncodeJob(const OutboxJob& j);
Result<OutboxJob> DecodeJob(std::string_view bytes);

// A dead letter: {"job": <job>, "status", "body", "at"}. The body is stored
// as given (the Store bounds it).
std::string EncodeDeadLetter(const DeadLetter& d);
Result<DeadLetter> DecodeDeadLetter(std::string_view bytes);

// A change-feed entry: {"at": at_ms, "op": 0|1, "user": <user>}. The txid is
// the entry's key, not part of the value: DecodeChange leaves it 0.
std::string EncodeChange(const Change& c);
Result<Change> DecodeChange(std::string_view bytes);

// The DOM form of a user record (what EncodeUser's bytes decode to with
// nlohmann::json::from_msgpack): the reference for tests and fuzz targets.
Json UserToJson(const UserRecord& u);
// Throws std::exception on a field of the wrong type or a missing one, or an
// unknown version.
UserRecord UserFromJson(const Json& j);

// The DOM form of a job (EncodeJob's bytes decode to it), the same way: the
// reference DecodeJob's direct reader is held against.
Json JobToJson(const OutboxJob& j);
// Throws std::exception as UserFromJson does.
OutboxJob JobFromJson(const Json& j);

}  // namespace usersd::store
