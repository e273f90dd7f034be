// App: one running usersd — owns the loop and every part, wires them, and
// runs the lifecycle (start, reload on SIGHUP, graceful stop on SIGTERM).
//
// Start order: config -> instance lock -> store -> writer thread -> HTTP ->
// JWKS -> sync workers -> sockets (inherited from systemd or created) ->
// READY=1. Stop order: stop accepting -> let in-flight requests finish
// (bounded) -> stop sync -> drain the writer -> close connections -> cancel
// curl -> close handles -> uv_loop_close == 0 -> close LMDB.
//
// Loop thread only, except the constructor/Run() caller, which is the loop
// thread by definition.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "admin/admin_api.h"
#include "admin/metrics_textfile.h"
#include "auth/authenticator.h"
#include "common/metrics.h"
#include "common/poster.h"
#include "config/config.h"
#include "domain/users_api.h"
#include "domain/user_mutations.h"
#include "domain/users_service.h"
#include "ipc/server.h"
#include "store/store.h"
#include "store/writer.h"
#include "sync/backfill.h"
#include "sync/events_poller.h"
#include "sync/reconciler.h"
#include "sync/http_client.h"
#include "sync/jwks_manager.h"
#include "sync/outbox_sender.h"
#include "sync/workos_client.h"

namespace usersd::daemon {

class App {
 public:
  App(config::Config cfg, std::string config_path);
  ~App();
  // The running key came from WORKOS_API_KEY, which main scrubbed from the
  // environment: a reload cannot read it again and keeps it as it is.
  void set_api_key_from_environment(bool v) { api_key_from_env_ = v; }

  // Starts everything and runs the loop until stopped. Returns the exit code.
  int Run();

  // Loop thread. Re-reads the config file and applies what can change
  // without a restart. Fills `reloaded` / `needs_restart` with key paths.
  Status Reload(std::vector<std::string>* reloaded, std::vector<std::string>* needs_restart);
  // Loop thread. Begins the graceful stop.
  void Stop();

  // Parts, for the admin API. Valid while Run() runs.
  const config::Config& config() const { return cfg_; }
  uv_loop_t* loop() { return &loop_; }
  store::Store* store() { return store_.get(); }
  store::Writer* writer() { return writer_.get(); }
  Metrics* metrics() { return &metrics_; }
  auth::Authenticator* authenticator() { return auth_.get(); }
  sync::WorkosClient* workos() { return workos_.get(); }
  sync::JwksManager* jwks() { return jwks_.get(); }
  sync::OutboxSender* outbox() { return outbox_.get(); }
  sync::EventsPoller* events() { return events_.get(); }
  ipc::Server* app_server() { return app_server_.get(); }
  int64_t started_at_ms() const { return started_at_ms_; }
  const std::string& version() const;

 private:
  Status Start();
  Status OpenSockets();
  void FinishStop();
  void RegisterMetrics();
  void PrepareSharedState();
  // Tells the outbox that jobs were queued outside the request path.
  std::function<void()> KickOutbox();
  void Notify(const std::string& state);
  // Works out whether auth.client_id and the API key are set and tells the
  // application socket (an unconfigured daemon refuses every request, naming
  // what to set); logs the change, and at start logs when unconfigured.
  void ApplyConfiguredState(bool at_start);
  // Wakes the outbox, the events poller and a waiting reconciliation, e.g.
  // when WorkOS takes the API key again.
  void WakeSync();

  config::Config cfg_;
  std::string config_path_;
  bool api_key_from_env_ = false;
  uv_loop_t loop_{};
  int lock_fd_ = -1;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Poster> poster_;
  std::unique_ptr<store::Writer> writer_;
  Metrics metrics_;
  std::unique_ptr<sync::HttpClient> http_;
  std::unique_ptr<sync::WorkosClient> workos_;
  std::unique_ptr<auth::Authenticator> auth_;
  std::unique_ptr<sync::JwksManager> jwks_;
  std::unique_ptr<sync::OutboxSender> outbox_;
  std::unique_ptr<sync::ExternalIdBackfill> backfill_;  // SPEC 4b, once per store
  // workos.requests_per_second, shared by the outbox and reconciliation.
  std::shared_ptr<sync::RequestBudget> budget_ = std::make_shared<sync::RequestBudget>();
  std::unique_ptr<sync::EventsPoller> events_;
  std::unique_ptr<sync::Reconciler> reconciler_;
  std::unique_ptr<domain::UsersService> service_;
  std::unique_ptr<domain::UsersApi> api_;
  std::unique_ptr<ipc::Server> app_server_;
  std::unique_ptr<admin::AdminApi> admin_api_;
  std::unique_ptr<ipc::Server> admin_server_;
  std::unique_ptr<admin::MetricsTextfile> metrics_textfile_;  // metrics.textfile (reads cfg_ each tick)
  uv_signal_t sigterm_{}, sigint_{}, sighup_{};
  uv_timer_t stop_timer_{}, watchdog_timer_{}, trim_timer_{};
  uint64_t requests_at_last_trim_ = 0;
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;
  int64_t started_at_ms_ = 0;
  int exit_code_ = 0;
  std::string unconfigured_detail_;  // what to set, or "" when configured
};

}  // namespace usersd::daemon
