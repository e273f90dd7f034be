// ApplyNested: one change of a write batch that may fail alone.
//
// A WriteOp that applies many independent changes (a page of events, of
// users, a batch of settled publishes) runs each in a nested transaction:
// when one fails, its own writes are rolled back and the op carries on with
// the next, except on MapFull, which the op must return unchanged so that the
// Writer grows the map and replays the batch (store/writer.h). This header
// is the one place of that rule.
//
// Writer thread only, inside a WriteOp; `t` must outlive the call.
#pragma once

#include <type_traits>
#include <utility>

#include "common/status.h"
#include "store/store.h"

namespace usersd::store {

// What ApplyNested did. When `must_return` is not ok, the op returns it at
// once (MapFull from fn, or the nested transaction could not begin or
// commit); `outcome` then holds the same status. Otherwise `outcome` is fn's
// own outcome: ok, and its writes are kept in the parent transaction; or a
// failure, and its writes are dropped, for the op to log and carry on.
template <class R>
struct [[nodiscard]] NestedResult {
  Status must_return;
  R outcome;
};

// Runs fn(child) in a transaction nested in `t`; fn returns Status or
// Result<T>.
template <class Fn>
auto ApplyNested(WriteTxn& t, Fn&& fn) -> NestedResult<std::invoke_result_t<Fn&, WriteTxn&>> {
  using R = std::invoke_result_t<Fn&, WriteTxn&>;
  auto child = t.BeginNested();
  if (!child.ok()) return {child.status(), R(child.status())};
  R r = fn(*child);
  if (r.ok()) {
    Status committed = child->Commit();
    if (!committed.ok()) return {committed, R(committed)};
    return {Status::Ok(), std::move(r)};
  }
  child->Abort();
  Status failed = [&] {
    if constexpr (std::is_same_v<R, Status>) {
      return r;
    } else {
      return r.status();
    }
  }();
  if (failed.code() == Code::kMapFull) return {failed, std::move(r)};
  return {Status::Ok(), std::move(r)};
}

}  // namespace usersd::store
