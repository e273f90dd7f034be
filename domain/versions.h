// Versions: the hybrid logical clock that orders writes of shared fields
// across hosts (SPEC 4b "Writes and conflicts").
//
// A version is (milliseconds, counter, host id), store::Version. Each store
// keeps its host's clock in the meta table: the host id (random, created
// once) and the last (milliseconds, counter) issued or observed. A local
// write takes NextVersion: above its wall clock and above every version the
// host issued or saw before, so a write made after a host has read another
// host's value wins over it, whatever the two wall clocks say. Versions read
// from WorkOS are passed to ObserveVersion. The clock lives in the write
// transaction, so it survives restarts and rolls back with an aborted write.
//
// Writer thread only (they take a WriteTxn), except the pure encoders.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/records.h"
#include "store/store.h"

namespace usersd::domain {

using store::Version;

// "<ms>.<counter>.<host as 16 hex digits>", the form versions take in the
// shared document.
std::string FormatVersion(const Version& v);
// The inverse of FormatVersion; nullopt for anything else (negative or
// overlong numbers included).
std::optional<Version> ParseVersion(std::string_view text);
// The host id as 16 lower-case hex digits.
std::string FormatHostId(uint64_t host);

// This store's host id, created (random, never 0) on first use.
Result<uint64_t> EnsureHostId(store::WriteTxn& t);
// This store's host id; nullopt before EnsureHostId ran.
Result<std::optional<uint64_t>> ReadHostId(store::ReadTxn& t);
// Sets the host id of a new store (tests and the simulation, which need
// ids that replay). InvalidArgument for 0.
Status SetHostId(store::WriteTxn& t, uint64_t host);

// A version for a local write at wall-clock `now_ms`: above every version
// issued or observed by this store before.
Result<Version> NextVersion(store::WriteTxn& t, int64_t now_ms);
// Moves the clock to at least `v`'s (ms, counter), so the next local
// version is above `v`. Cheap when `v` is not ahead.
Status ObserveVersion(store::WriteTxn& t, const Version& v);

}  // namespace usersd::domain
