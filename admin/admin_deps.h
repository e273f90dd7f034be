// AdminDeps: what the admin API (admin/admin_api.h) borrows from the
// daemon. Every pointer must outlive the AdminApi; the ones marked "may be
// null" are optional.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
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
#include "sync/reconciler.h"
#include "sync/workos_client.h"

namespace usersd::admin {

struct AdminDeps {
  uv_loop_t* loop = nullptr;  // for stream poll timers and the backup thread
  std::string version;
  int64_t started_at_ms = 0;
  const Clock* clock = nullptr;
  const config::Config* config = nullptr;  // the running configuration
  std::string config_path;                 // its file, named in messages
  store::Store* store = nullptr;
  store::Writer* writer = nullptr;
  Metrics* metrics = nullptr;
  sync::WorkosClient* workos = nullptr;
  sync::JwksManager* jwks = nullptr;
  sync::OutboxSender* outbox = nullptr;
  sync::EventsPoller* events = nullptr;    // may be null when polling is disabled
  sync::Reconciler* reconciler = nullptr;  // may be null (admin.users.resync then fails)
  ipc::Server* app_server = nullptr;       // the application socket (its metrics)
  // identity.namespace, sync.metadata.* (imports); null: the defaults.
  std::shared_ptr<const domain::SyncPolicy> sync;
  // Re-reads the config file; fills the changed keys.
  std::function<Status(std::vector<std::string>* reloaded, std::vector<std::string>* needs_restart)> reload;
};

}  // namespace usersd::admin
