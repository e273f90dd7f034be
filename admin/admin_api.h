// AdminApi: the admin socket's Dispatcher (SPEC section 5).
//
// Serves operators over a second Unix socket (mode 0600; callers are
// checked by SO_PEERCRED in the ipc::Server's authorize hook, see
// AdminAuthorizer). No token is needed. Methods: admin.status, admin.health,
// admin.metrics, admin.outbox.list, admin.deadLetters.list/retry/discard,
// admin.users.get/list/import, admin.jwks.refresh, admin.backup,
// admin.config.reload and the admin.changes stream (Chunk frames, the
// client's Ack as flow control).
//
// Decisions beyond SPEC section 5 (docs/OPERATIONS.md has the full list):
//  - admin.health: `ok` is false only when a check the application socket
//    depends on fails: store (readable, map below 90% of its maximum),
//    writer (a probe op commits within 2 s) or jwks (at least one key).
//    upstream, outbox and deadLetters are reported but never make `ok`
//    false: usersd is built to keep serving while WorkOS is away.
//  - admin.users.import gives every imported user its own transactionId
//    (the change feed has one entry per transactionId), all assigned and
//    committed in one LMDB write transaction; the reply's transactionId is
//    the last of them. Import writes local state only: nothing is queued
//    for WorkOS.
//  - admin.changes: sinceTransactionId is exclusive (the last id the client
//    has seen; absent = from the oldest retained change). Up to 100 changes
//    per Chunk, one Chunk in flight until the client's Ack, then live
//    changes found by polling LastTxid every 100 ms while caught up.
//  - admin.deadLetters.retry re-enqueues a fresh job (attempts 0, due now,
//    created now, so outbox.max_age does not expire it at once); an update
//    job takes the user's current values of the fields it carries, so a
//    retry never sends WorkOS an older value than the store holds.
//
// Loop thread only. Borrows everything in AdminDeps, which must outlive the
// AdminApi. Per-request resources (stream poll timers, the health probe's
// timer) close themselves when their request ends; a stream ends when its
// connection closes, so ipc::Server::Close() leaves no handle behind.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_deps.h"
#include "ipc/server.h"

namespace usersd::admin {

struct Handlers;  // admin/handlers.h

class AdminApi : public ipc::Dispatcher {
 public:
  explicit AdminApi(AdminDeps deps);
  ~AdminApi() override;
  void Dispatch(const ipc::Request& request, ipc::Responder responder) override;

 private:
  std::unique_ptr<Handlers> impl_;
};

// The admin socket's peer check: uid 0, the daemon's own uid (`self_uid`,
// default getuid()), the configured uids, and the configured gids as the
// peer's primary or supplementary group (SO_PEERGROUPS). A peer whose
// SO_PEERCRED could not be read (PeerCred::known false) is refused. Refusals
// are logged with pid/uid/gid by ipc::Server.
std::function<bool(const ipc::PeerCred&)> AdminAuthorizer(std::vector<uint32_t> allowed_uids,
                                                          std::vector<uint32_t> allowed_gids);
std::function<bool(const ipc::PeerCred&)> AdminAuthorizer(std::vector<uint32_t> allowed_uids,
                                                          std::vector<uint32_t> allowed_gids, uid_t self_uid);

}  // namespace usersd::admin
