// The keys of the store's meta table (store/store.h, Table::kMeta): every
// name any part reads or writes there, with the form of its value. The
// strings are part of the on-disk format: a store written by one release is
// read by the next, so a key is never renamed here, only added (and a new
// one goes in this file, next to the part that owns it).
//
// Numbers written as text are decimal ASCII; "ms" is milliseconds since the
// Unix epoch. A prefix names a family of keys: the prefix followed by the
// id it is about.
#pragma once

#include <string_view>

namespace usersd::store {

// ---- The store's own (store/store.cc, store/transactions.cc, store/writer.cc).

// The store's schema version, decimal ("1"); Open refuses any other.
inline constexpr std::string_view kMetaSchemaVersion = "schema_version";
// ms at which the store was created, decimal (Store::created_at_ms).
inline constexpr std::string_view kMetaCreatedAt = "created_at";
// The last transactionId given, as an 8-byte big-endian u64 (U64Key).
inline constexpr std::string_view kMetaLastTxid = "last_txid";
// The next outbox job id, as an 8-byte big-endian u64 (U64Key).
inline constexpr std::string_view kMetaNextJobId = "next_job_id";
// "1" once the jobs_by_user index has been built from the outbox.
inline constexpr std::string_view kMetaJobsByUserIndex = "jobs_by_user_index";
// The version of the by_email index's key it was built with, decimal ("2");
// another value (or none) rebuilds the index at open.
inline constexpr std::string_view kMetaEmailIndex = "email_index";
// "1": a throwaway write that lets LMDB reuse freed pages (Writer).
inline constexpr std::string_view kMetaFreelistNudge = "freelist_nudge";

// ---- Versions of shared fields (domain/versions.h).

// This host's id, 16 lower-case hex digits.
inline constexpr std::string_view kMetaHostId = "host_id";
// The hybrid logical clock, "<ms>.<counter>" (both decimal).
inline constexpr std::string_view kMetaClock = "hlc";

// ---- Users' mutations (domain/user_mutations*.cc).

// + EmailKey(email): the user id that waits for that email, which another
// local user holds, to take it once released.
inline constexpr std::string_view kMetaEmailWaitPrefix = "email_wait:";
// + user id: "1" while a re-read of that user from WorkOS is due once this
// host's jobs for it are delivered.
inline constexpr std::string_view kMetaResyncPrefix = "resync:";
// The SPEC 4b external_id backfill: the last user id it looked at, or "done".
inline constexpr std::string_view kMetaExternalIdBackfill = "external_id_backfill";

// ---- The WorkOS events feed (sync/events_poller.h).

// The id of the last event applied (text); "" when there is none, as after
// a reconciliation.
inline constexpr std::string_view kMetaEventsCursor = "events_cursor";
// ms, decimal: the WorkOS created_at of the cursor event ("0": none).
inline constexpr std::string_view kMetaEventsCursorAt = "events_cursor_at";
// ms, decimal: where the feed is read from when there is no cursor.
inline constexpr std::string_view kMetaEventsRangeStart = "events_range_start";
// ms, decimal: the last poll that read the feed to its end.
inline constexpr std::string_view kMetaEventsCaughtUpAt = "events_caught_up_at";

// ---- Reconciliation (sync/reconciler.h).

// The current or last run's state as JSON (phase, position, counters).
inline constexpr std::string_view kMetaReconcileState = "reconcile";
// ms, decimal: when the last run finished.
inline constexpr std::string_view kMetaReconcileLastFinished = "reconcile_last_finished";
// + WorkOS user id: the id of the run whose listing showed that user,
// decimal ("reconcile seen"; the sweep deletes it).
inline constexpr std::string_view kMetaReconcileSeenPrefix = "rcs:";

// ---- The JWKS cache (sync/jwks_manager.h).

// The last JWKS document fetched, as its JSON text.
inline constexpr std::string_view kMetaJwks = "jwks";
// ms, decimal: when it was fetched.
inline constexpr std::string_view kMetaJwksFetchedAt = "jwks_fetched_at";

}  // namespace usersd::store
