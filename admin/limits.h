// The admin socket's limits (SPEC 5), declared once for both ends: the
// daemon's handlers (admin/) enforce them, and usersctl, which links none of
// the daemon's libraries, includes this header to size its pages and import
// batches. Constants only; no dependencies.
#pragma once

#include <cstddef>

namespace usersd::admin {

// `limit` of the list methods: absent = kDefaultLimit.
inline constexpr size_t kDefaultLimit = 100;
inline constexpr size_t kMaxUsersLimit = 1000;  // admin.users.list
inline constexpr size_t kMaxJobsLimit = 10000;  // admin.outbox.list, admin.deadLetters.list
// admin.users.import: entries per request.
inline constexpr size_t kMaxImportUsers = 10000;
// The admin socket's longest request line. Its own, not socket.max_line_bytes
// (the application socket's, which an operator may set as low as 1 KiB):
// usersctl sizes its import batches from it.
inline constexpr size_t kMaxLineBytes = size_t{1} << 20;

}  // namespace usersd::admin
