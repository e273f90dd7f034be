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
// Loop thread only. Borrows everything in AdminDeps.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "common/metrics.h"
#include "config/config.h"
#include "ipc/server.h"
#include "store/writer.h"
#include "sync/events_poller.h"
#include "sync/jwks_manager.h"
#include "sync/outbox_sender.h"
#include "sync/workos_client.h"

namespace usersd::admin {

struct AdminDeps {
  std::string version;
  int64_t started_at_ms = 0;
  const Clock* clock = nullptr;
  const config::Config* config = nullptr;  // the running configuration
  store::Store* store = nullptr;
  store::Writer* writer = nullptr;
  Metrics* metrics = nullptr;
  sync::WorkosClient* workos = nullptr;
  sync::JwksManager* jwks = nullptr;
  sync::OutboxSender* outbox = nullptr;
  sync::EventsPoller* events = nullptr;  // may be null when polling is disabled
  ipc::Server* app_server = nullptr;
  // Re-reads the config file; fills the changed keys.
  std::function<Status(std::vector<std::string>* reloaded, std::vector<std::string>* needs_restart)> reload;
};

class AdminApi : public ipc::Dispatcher {
 public:
  explicit AdminApi(AdminDeps deps);
  ~AdminApi() override;
  void Dispatch(const ipc::Request& request, ipc::Responder responder) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The admin socket's peer check: uid 0, the daemon's own uid, and the
// configured uids/gids.
std::function<bool(const ipc::PeerCred&)> AdminAuthorizer(std::vector<uint32_t> allowed_uids,
                                                          std::vector<uint32_t> allowed_gids);

}  // namespace usersd::admin
