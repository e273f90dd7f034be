#include "daemon/app.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <algorithm>
#include <cstring>
#include <random>

#include "admin/limits.h"
#include "common/log.h"
#include "daemon/sd_daemon.h"
#include "domain/versions.h"
#include "store/meta_keys.h"

namespace usersd::daemon {

namespace {

constexpr int64_t kStopGraceMs = 5000;

auth::VerifyOptions VerifyOptionsFrom(const config::Config& cfg) {
  auth::VerifyOptions o;
  o.issuers = cfg.EffectiveIssuers();
  o.audience = cfg.auth.audience;
  o.algorithms = cfg.auth.algorithms;
  o.leeway_seconds = cfg.auth.leeway_seconds;
  o.require_exp = cfg.auth.require_exp;
  o.max_age_seconds = cfg.auth.max_token_age_seconds;
  return o;
}

// identity.namespace and sync.metadata.* (restart-only keys).
std::shared_ptr<const domain::SyncPolicy> SyncPolicyFrom(const config::Config& cfg) {
  auto p = std::make_shared<domain::SyncPolicy>();
  if (cfg.identity.namespace_uuid) p->identity_namespace = *cfg.identity.namespace_uuid;
  p->metadata.enabled = cfg.sync.metadata.enabled;
  p->metadata.prefix = cfg.sync.metadata.prefix;
  p->metadata.keys = static_cast<int>(cfg.sync.metadata.keys);
  p->metadata.read_first = cfg.sync.metadata.read_first == "never" ? domain::MetadataPolicy::ReadFirst::kNever
                                                                   : domain::MetadataPolicy::ReadFirst::kAppKeys;
  return p;
}

sync::OutboxOptions OutboxOptionsFrom(const config::Config& cfg, std::shared_ptr<sync::RequestBudget> budget) {
  sync::OutboxOptions o;
  o.sync = SyncPolicyFrom(cfg);
  o.budget = std::move(budget);
  o.initial_backoff_ms = cfg.outbox.initial_backoff_ms;
  o.max_backoff_ms = cfg.outbox.max_backoff_ms;
  o.max_age_ms = cfg.outbox.max_age_seconds * 1000;
  o.max_in_flight = cfg.workos.max_concurrency;
  return o;
}

double Random01() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

sync::WorkosOptions WorkosOptionsFrom(const config::Config& cfg, const std::string& config_path) {
  sync::WorkosOptions o;
  o.base_url = cfg.workos.base_url;
  o.api_key = cfg.workos.api_key;
  o.client_id_set = cfg.auth.client_id.has_value();
  o.api_key_source = config::DescribeApiKeySource(cfg, config_path);
  o.api_key_advice = config::ApiKeyAdvice(cfg, config_path);
  o.timeout_ms = cfg.workos.timeout_ms;
  return o;
}

sync::EventsOptions EventsOptionsFrom(const config::Config& cfg, std::function<void()> kick_outbox) {
  sync::EventsOptions o;
  o.sync = SyncPolicyFrom(cfg);
  o.kick_outbox = kick_outbox;
  o.poll_seconds = cfg.workos.events_poll_seconds;
  o.random = &Random01;
  o.max_cursor_age_ms = cfg.sync.reconcile.max_cursor_age_days * 86400 * 1000;
  return o;
}

sync::ReconcileOptions ReconcileOptionsFrom(const config::Config& cfg, std::function<void()> kick_outbox,
                                            std::shared_ptr<sync::RequestBudget> budget) {
  sync::ReconcileOptions o;
  o.sync = SyncPolicyFrom(cfg);
  o.kick_outbox = kick_outbox;
  o.requests_per_second = static_cast<double>(cfg.sync.reconcile.requests_per_second);
  o.budget = budget;
  o.interval_ms = cfg.sync.reconcile.interval_hours * 3600 * 1000;
  o.interval_early_ms = static_cast<int64_t>(static_cast<double>(o.interval_ms / 10) * Random01());
  return o;
}

domain::ServiceOptions ServiceOptionsFrom(const config::Config& cfg) {
  return domain::ServiceOptions{cfg.policy.org_admins_manage_members, cfg.provisioning.jit, SyncPolicyFrom(cfg)};
}

// WorkOS keeps events for 30 days; a feed position older than that cannot be
// read on, and WorkOS may answer it with an empty page rather than an error,
// so the cursor-age check is the only thing that notices.
constexpr int64_t kWorkosEventRetentionDays = 30;

// Settings that are valid but risky, logged at start and at every reload.
void WarnAboutSettings(const config::Config& cfg) {
  if (cfg.sync.reconcile.max_cursor_age_days >= kWorkosEventRetentionDays &&
      cfg.workos.base_url.rfind("https://api.workos.com", 0) == 0) {
    LogWarn(
        "sync.reconcile.max_cursor_age_days is not below WorkOS's event retention (30 days): a host offline "
        "that long may miss changes without noticing",
        {{"max_cursor_age_days", std::to_string(cfg.sync.reconcile.max_cursor_age_days)}});
  }
}

void ApplyLogConfig(const config::Config& cfg) {
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(cfg.log.level, &level);
  SetLogLevel(level);
  SetLogFormat(cfg.log.format == "json" ? LogFormat::kJson : LogFormat::kText);
}

}  // namespace

App::App(config::Config cfg, std::string config_path) : cfg_(std::move(cfg)), config_path_(std::move(config_path)) {
  uv_loop_init(&loop_);
}

App::~App() {
  if (lock_fd_ >= 0) close(lock_fd_);
}

const std::string& App::version() const {
  static const std::string v = USERSD_VERSION;
  return v;
}

void App::Notify(const std::string& state) {
  sd::Notify(state);
}

Status App::Start() {
  // A client that goes away with replies pending must cost a write error
  // (EPIPE), not the process: libuv writes with write(2), which raises SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  ApplyLogConfig(cfg_);
  WarnAboutSettings(cfg_);
  started_at_ms_ = SystemClock().NowMs();

  // One daemon per store: LMDB would allow two, but two outbox senders and
  // two pollers on one store would deliver everything twice.
  std::string lock_path = cfg_.store.path + "/usersd.lock";
  if (mkdir(cfg_.store.path.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::IOError("store.path: cannot create " + cfg_.store.path + ": " + std::strerror(errno));
  lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return Status::IOError("cannot open " + lock_path + ": " + std::strerror(errno));
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::Unavailable("another usersd is already running on the store at " + cfg_.store.path);
  }

  store::StoreOptions so;
  so.path = cfg_.store.path;
  so.map_size_bytes = cfg_.store.map_size_mib << 20;
  so.max_map_size_bytes = cfg_.store.max_map_size_mib << 20;
  so.sync_mode = cfg_.store.sync_mode == "two" ? store::SyncMode::kTwo : store::SyncMode::kOne;
  auto st = store::Store::Open(so);
  if (!st.ok()) return st.status();
  store_ = std::move(*st);

  poster_ = std::make_unique<Poster>(&loop_);
  writer_ = std::make_unique<store::Writer>(store_.get(), poster_.get());
  writer_->Start();
  PrepareSharedState();

  budget_->SetRate(static_cast<double>(cfg_.workos.requests_per_second));
  http_ = std::make_unique<sync::HttpClient>(&loop_, SystemClock(), cfg_.workos.max_concurrency);
  http_->SetMaxQueued(cfg_.workos.max_queued_requests);
  workos_ = std::make_unique<sync::WorkosClient>(http_.get(), SystemClock(), WorkosOptionsFrom(cfg_, config_path_));
  workos_->SetBudget(budget_.get());
  auth_ = std::make_unique<auth::Authenticator>(SystemClock(), VerifyOptionsFrom(cfg_));

  sync::JwksOptions jo;
  jo.file = cfg_.auth.jwks_file;
  // With only a file configured, the file is the whole truth; an explicit
  // URL (or no file at all) means fetching.
  if (cfg_.auth.jwks_url || !cfg_.auth.jwks_file) jo.url = cfg_.EffectiveJwksUrl();
  // An unconfigured daemon contacts nothing, JWKS included (SPEC 4): the
  // manager fetches only while workos_->Configured().
  jo.refresh_seconds = cfg_.auth.jwks_refresh_seconds;
  jwks_ = std::make_unique<sync::JwksManager>(&loop_, workos_.get(), store_.get(), writer_.get(), auth_.get(),
                                              SystemClock(), jo);
  USERSD_RETURN_IF_ERROR(jwks_->Start());
  if (jo.url) {
    auth_->SetRefetch([this](std::function<void()> done) { jwks_->Refresh([done](Status) { done(); }); },
                      cfg_.auth.jwks_min_refresh_seconds * 1000);
  }

  outbox_ = std::make_unique<sync::OutboxSender>(&loop_, workos_.get(), store_.get(), writer_.get(), SystemClock(),
                                                 OutboxOptionsFrom(cfg_, budget_), &Random01);
  outbox_->Start();
  backfill_ = std::make_unique<sync::ExternalIdBackfill>(
      store_.get(), writer_.get(), SystemClock(), sync::BackfillOptions{SyncPolicyFrom(cfg_), 500, KickOutbox()});
  backfill_->Start();
  events_ = std::make_unique<sync::EventsPoller>(&loop_, workos_.get(), store_.get(), writer_.get(), SystemClock(),
                                                 EventsOptionsFrom(cfg_, KickOutbox()));
  reconciler_ = std::make_unique<sync::Reconciler>(&loop_, workos_.get(), store_.get(), writer_.get(), SystemClock(),
                                                   ReconcileOptionsFrom(cfg_, KickOutbox(), budget_));
  events_->SetReconcileHooks([this](const std::string& reason) { return reconciler_->StartAll(reason).status(); },
                             [this] { return reconciler_->running(); });
  reconciler_->SetOnFinished([this] {
    events_->Reload();
    events_->PollNow([](Status) {});
  });
  reconciler_->Start();
  events_->Start();

  service_ = std::make_unique<domain::UsersService>(store_.get(), writer_.get(), workos_.get(), SystemClock(),
                                                    ServiceOptionsFrom(cfg_));
  service_->SetOutboxNotifier([this] { outbox_->Kick(); });
  api_ = std::make_unique<domain::UsersApi>(auth_.get(), service_.get(), &metrics_, SystemClock());
  ApplyConfiguredState(/*at_start=*/true);
  // When WorkOS takes the key again (or answers again), the workers that
  // back off are woken at once instead of at the end of their waits.
  workos_->SetOnStateChange([this](sync::UpstreamState) {
    if (!stopping_ && workos_->state() == sync::UpstreamState::kOnline) WakeSync();
  });
  RegisterMetrics();
  metrics_textfile_ = std::make_unique<admin::MetricsTextfile>(&loop_, &metrics_, &cfg_);

  USERSD_RETURN_IF_ERROR(OpenSockets());

  auto on_signal = [](uv_signal_t* h, int signum) {
    auto* self = static_cast<App*>(h->data);
    if (signum == SIGHUP) {
      if (self->stopping_) return;
      std::vector<std::string> reloaded, restart;
      Status s = self->Reload(&reloaded, &restart);
      if (!s.ok()) LogError("reload failed; keeping the running configuration", {{"error", s.message()}});
      return;
    }
    LogInfo("stopping", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
    self->Stop();
  };
  for (auto [h, sig] : {std::pair{&sigterm_, SIGTERM}, std::pair{&sigint_, SIGINT}, std::pair{&sighup_, SIGHUP}}) {
    uv_signal_init(&loop_, h);
    h->data = this;
    uv_signal_start(h, on_signal, sig);
  }

  // The watchdog ping comes from a loop timer, so a stuck loop stops it.
  uint64_t wd_usec = 0;
  uv_timer_init(&loop_, &watchdog_timer_);
  watchdog_timer_.data = this;
  if (sd::WatchdogEnabled(&wd_usec) > 0 && wd_usec > 0) {
    uv_timer_start(
        &watchdog_timer_, [](uv_timer_t*) { sd::Notify("WATCHDOG=1"); }, 0, wd_usec / 2000);
  }
  uv_timer_init(&loop_, &stop_timer_);
  stop_timer_.data = this;

  // After a burst, glibc keeps the freed heap; when the socket has been
  // quiet for a whole period, hand it back so an idle sidecar stays small.
  uv_timer_init(&loop_, &trim_timer_);
  trim_timer_.data = this;
  uv_timer_start(&trim_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<App*>(t->data);
    uint64_t requests = self->app_server_ ? self->app_server_->stats().requests : 0;
    if (requests == self->requests_at_last_trim_) malloc_trim(0);
    self->requests_at_last_trim_ = requests;
  }, 30000, 30000);

  // "unknown" until WorkOS has answered: at this point nothing has been
  // sent yet, and "online" would be a guess.
  const char* upstream =
      workos_->Configured() && !workos_->answered() ? "unknown" : sync::UpstreamStateName(workos_->state());
  LogInfo("usersd ready",
          {{"version", version()}, {"socket", cfg_.socket.path}, {"store", cfg_.store.path}, {"upstream", upstream}});
  metrics_textfile_->Start();
  Notify("READY=1\nSTATUS=serving");
  return Status::Ok();
}

Status App::OpenSockets() {
  ipc::ServerOptions ao;
  ao.name = "app";
  ao.path = cfg_.socket.path;
  ao.mode = cfg_.socket.mode;
  ao.group = cfg_.socket.group;
  ao.max_line_bytes = cfg_.socket.max_line_bytes;
  ao.max_connections = cfg_.socket.max_connections;
  ao.first_request_timeout_ms = cfg_.socket.first_request_timeout_ms;
  ao.idle_timeout_ms = cfg_.socket.idle_timeout_ms;
  ao.max_buffered_bytes = cfg_.socket.max_buffered_bytes;
  ao.max_connections_per_uid = cfg_.socket.max_connections_per_uid;
  app_server_ = std::make_unique<ipc::Server>(&loop_, ao, api_.get());

  admin::AdminDeps deps;
  deps.loop = &loop_;
  deps.version = version();
  deps.started_at_ms = started_at_ms_;
  deps.clock = &SystemClock();
  deps.config = &cfg_;
  deps.config_path = config_path_;
  deps.store = store_.get();
  deps.writer = writer_.get();
  deps.metrics = &metrics_;
  deps.workos = workos_.get();
  deps.jwks = jwks_.get();
  deps.outbox = outbox_.get();
  deps.events = events_.get();
  deps.reconciler = reconciler_.get();
  deps.app_server = app_server_.get();
  deps.sync = SyncPolicyFrom(cfg_);
  deps.reload = [this](std::vector<std::string>* r, std::vector<std::string>* n) { return Reload(r, n); };
  admin_api_ = std::make_unique<admin::AdminApi>(std::move(deps));
  ipc::ServerOptions mo;
  mo.name = "admin";
  mo.path = cfg_.admin_socket.path;
  mo.mode = cfg_.admin_socket.mode;
  mo.max_line_bytes = admin::kMaxLineBytes;  // its own: usersctl sizes its import batches from it
  mo.max_connections = 64;
  mo.authorize = admin::AdminAuthorizer(cfg_.admin_socket.allowed_uids, cfg_.admin_socket.allowed_gids);
  admin_server_ = std::make_unique<ipc::Server>(&loop_, mo, admin_api_.get());

  // Socket activation: systemd passes the sockets of usersd.socket, named
  // by FileDescriptorName= ("app", "admin"). They are used as they are,
  // never unlinked or re-created. Unnamed sockets are taken in order.
  int app_fd = -1, admin_fd = -1;
  std::vector<int> unnamed;
  for (const auto& [fd, name] : sd::ListenFds()) {
    if (name == "app") app_fd = fd;
    else if (name == "admin") admin_fd = fd;
    else unnamed.push_back(fd);
  }
  if (app_fd < 0 && !unnamed.empty()) app_fd = unnamed[0], unnamed.erase(unnamed.begin());
  if (admin_fd < 0 && !unnamed.empty()) admin_fd = unnamed[0];

  auto listen = [](ipc::Server* server, int fd, const std::string& path, const char* name) -> Status {
    if (fd >= 0) {
      LogInfo("using socket passed by systemd", {{"socket", name}, {"fd", std::to_string(fd)}});
      return server->ListenFd(fd);
    }
    std::string dir = path.substr(0, path.rfind('/'));
    if (!dir.empty()) mkdir(dir.c_str(), 0755);
    return server->Listen();
  };
  USERSD_RETURN_IF_ERROR(listen(app_server_.get(), app_fd, cfg_.socket.path, "app"));
  return listen(admin_server_.get(), admin_fd, cfg_.admin_socket.path, "admin");
}

std::function<void()> App::KickOutbox() {
  return [this] {
    if (outbox_) outbox_->Kick();
  };
}

// SPEC 4b: this host's id for the versions of shared fields, and an outbox
// of an earlier release converted to per-user state. Submitted before the
// sync parts start: the writer runs ops in order, so no event or publish is
// applied before it.
void App::PrepareSharedState() {
  domain::MutationContext ctx{SystemClock().NowMs(), nullptr};
  auto sync = SyncPolicyFrom(cfg_);
  auto converted = std::make_shared<size_t>(0);
  writer_->Submit(
      [ctx, sync, converted](store::WriteTxn& t) -> Status {
        domain::MutationContext c = ctx;
        c.sync = sync.get();
        auto host = domain::EnsureHostId(t);
        if (!host.ok()) return host.status();
        auto n = domain::ConvertLegacyJobs(t, c);
        if (!n.ok()) return n.status();
        *converted = *n;
        return Status::Ok();
      },
      [converted](Status st) {
        if (!st.ok()) {
          LogError("could not prepare the versions of shared fields", {{"error", st.ToString()}});
        } else if (*converted > 0) {
          LogInfo("outbox jobs of an earlier release now publish the versioned document",
                  {{"jobs", std::to_string(*converted)}});
        }
      });
}

void App::RegisterMetrics() {
  // The store, writer, outbox, JWKS, events, reconciliation and the
  // application socket are exported by the admin API's collector (it has
  // them all as dependencies); the request series are the UsersApi's own.
  metrics_.AddCollector([this](Metrics& m) {
    workos_->ExportMetrics(m);
    budget_->ExportMetrics(m);
    domain::ExportSharedFieldsMetrics(m);
  });
}

Status App::Reload(std::vector<std::string>* reloaded, std::vector<std::string>* needs_restart) {
  if (config_path_.empty()) return Status::InvalidArgument("usersd was started without --config; nothing to reload");
  auto next = config::LoadConfigFile(config_path_);
  if (!next.ok()) return next.status();
  // WORKOS_API_KEY was read and scrubbed from the environment at start
  // (issue 21): a reload cannot see it, so the key it gave stays in force.
  if (api_key_from_env_) {
    next->workos.api_key = cfg_.workos.api_key;
    next->workos.api_key_source = cfg_.workos.api_key_source;
    next->workos.api_key_source_path = cfg_.workos.api_key_source_path;
  }
  // One table (config::Keys()) decides both what is reported and what is
  // applied: restart-only keys keep their running values in `applied`.
  config::ReloadPlan plan = config::PlanReload(cfg_, *next);
  *reloaded = plan.reloaded;
  *needs_restart = plan.needs_restart;
  const bool key_changed = std::find(reloaded->begin(), reloaded->end(), "workos.api_key") != reloaded->end();
  cfg_ = std::move(plan.applied);
  ApplyLogConfig(cfg_);
  WarnAboutSettings(cfg_);
  workos_->SetOptions(WorkosOptionsFrom(cfg_, config_path_));
  http_->SetMaxConcurrency(cfg_.workos.max_concurrency);
  http_->SetMaxQueued(cfg_.workos.max_queued_requests);
  auth_->SetOptions(VerifyOptionsFrom(cfg_));
  auth_->SetMinRefetchInterval(cfg_.auth.jwks_min_refresh_seconds * 1000);
  jwks_->SetRefreshSeconds(cfg_.auth.jwks_refresh_seconds);
  service_->SetOptions(ServiceOptionsFrom(cfg_));
  budget_->SetRate(static_cast<double>(cfg_.workos.requests_per_second));
  outbox_->SetOptions(OutboxOptionsFrom(cfg_, budget_));
  events_->SetOptions(EventsOptionsFrom(cfg_, KickOutbox()));
  reconciler_->SetOptions(ReconcileOptionsFrom(cfg_, KickOutbox(), budget_));
  bool was_configured = unconfigured_detail_.empty();
  ApplyConfiguredState(/*at_start=*/false);
  std::string r, n;
  for (const auto& k : *reloaded) r += (r.empty() ? "" : ",") + k;
  for (const auto& k : *needs_restart) n += (n.empty() ? "" : ",") + k;
  LogInfo("configuration reloaded", {{"reloaded", r}, {"needs_restart", n}});
  // A new key (or the first one) is tried now, not when each worker's
  // backoff ends.
  if (workos_->Configured() && (key_changed || !was_configured)) {
    jwks_->Refresh([](Status) {});
    WakeSync();
  }
  return Status::Ok();
}

void App::ApplyConfiguredState(bool at_start) {
  std::string detail = config::UnconfiguredDetail(cfg_, config_path_);
  if (detail == unconfigured_detail_ && !at_start) return;
  unconfigured_detail_ = detail;
  api_->SetUnconfigured(detail.empty() ? std::string() : "usersd is not configured", detail);
  if (!detail.empty()) {
    LogWarn("usersd is not configured: it contacts nothing and refuses every request", {{"fix", detail}});
  } else if (!at_start) {
    LogInfo("usersd is configured: contacting WorkOS");
  }
}

void App::WakeSync() {
  if (stopping_) return;
  if (outbox_) outbox_->Kick();
  if (events_) events_->PollNow([](Status) {});
  if (reconciler_) reconciler_->RetryNow();
}

void App::Stop() {
  if (stopping_) return;
  stopping_ = true;
  Notify("STOPPING=1");
  if (backfill_) backfill_->Stop();  // a batch with the writer still commits
  if (app_server_) app_server_->StopAccepting();
  if (admin_server_) admin_server_->StopAccepting();
  stop_deadline_ms_ = SystemClock().MonotonicMs() + kStopGraceMs;
  // Let requests in flight finish (bounded), then tear down.
  uv_timer_start(&stop_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<App*>(t->data);
    bool idle = (!self->app_server_ || self->app_server_->inflight() == 0) && self->writer_->queued() == 0;
    if (idle || SystemClock().MonotonicMs() >= self->stop_deadline_ms_) {
      uv_timer_stop(t);
      self->FinishStop();
    }
  }, 0, 10);
}

void App::FinishStop() {
  auto close = [](auto* h) {
    auto* handle = reinterpret_cast<uv_handle_t*>(h);
    if (handle->loop && !uv_is_closing(handle)) uv_close(handle, nullptr);
  };
  // The signal handlers stay installed (but no longer keep the loop alive)
  // until the loop has drained: a second SIGTERM during teardown must not
  // kill the process by the default action. Run() closes them at the end.
  for (uv_signal_t* h : {&sigterm_, &sigint_, &sighup_})
    if (reinterpret_cast<uv_handle_t*>(h)->loop) uv_unref(reinterpret_cast<uv_handle_t*>(h));
  close(&watchdog_timer_);
  close(&stop_timer_);
  close(&trim_timer_);
  if (jwks_) jwks_->Close();
  if (backfill_) backfill_->Stop();
  if (outbox_) outbox_->Close();
  if (events_) events_->Close();
  if (reconciler_) reconciler_->Close();
  if (metrics_textfile_) metrics_textfile_->Close();
  // Cancel HTTP first: requests still waiting on WorkOS (provisioning,
  // resetAvatar) then take their offline path and may still submit writes.
  if (http_) http_->Shutdown([] {});
  // Drain the writer: every queued mutation commits (or fails) and its reply
  // is posted; Poster::Close runs those replies before closing.
  if (writer_) writer_->Stop();
  if (poster_) poster_->Close();
  // Finally write the last replies and close the connections.
  if (app_server_) app_server_->Close([] {});
  if (admin_server_) admin_server_->Close([] {});
}

int App::Run() {
  Status st = Start();
  if (!st.ok()) {
    LogError("usersd failed to start", {{"error", st.message()}});
    Notify("STATUS=failed to start: " + st.message());
    stopping_ = true;
    FinishStop();
    exit_code_ = 1;
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (uv_signal_t* h : {&sigterm_, &sigint_, &sighup_}) {
    auto* handle = reinterpret_cast<uv_handle_t*>(h);
    if (handle->loop && !uv_is_closing(handle)) uv_close(handle, nullptr);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Closing the handlers restored the default actions; a late SIGTERM while
  // LMDB closes must not turn a clean exit into death by signal.
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  int rc = uv_loop_close(&loop_);
  if (rc != 0) {
    LogError("event loop closed with open handles", {{"error", uv_strerror(rc)}});
    uv_print_all_handles(&loop_, stderr);
  }
  writer_.reset();
  store_.reset();
  if (exit_code_ == 0) LogInfo("usersd stopped");
  return exit_code_;
}

}  // namespace usersd::daemon
