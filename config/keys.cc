// The configuration keys, declared once: one row per key (dotted name, the
// Config member, its kind with range or choices, reload or restart, a line
// of doc), then the rules between keys. Parsing (loader.cc), the YAML dump
// (dump.cc), the reload report and what a reload applies (PlanReload, below)
// and the docs test all read this table. A key's default is its member's
// initializer in config.h; the row shows it from Config{}.
#include <memory>
#include <type_traits>
#include <utility>

#include "config/schema.h"

namespace usersd::config {
namespace {

using internal::Integer;
using internal::Kind;

constexpr bool kReload = true;    // a reload puts a new value in force
constexpr bool kRestart = false;  // the running value stays until the next start

// The type of the Config member that an accessor (USERSD_KEY) returns.
template <class Access>
using ValueOf = std::remove_cvref_t<decltype(Access{}(std::declval<Config&>()))>;

// One row. `Access` is a captureless lambda returning the member from a
// Config (const or not); C++20 lets it be default-constructed, so equal and
// copy stay plain function pointers.
template <class Access>
KeySpec MakeKey(const char* path, Access, Kind<ValueOf<Access>> kind, bool reloadable, const char* doc) {
  const Config defaults;
  auto codec = std::make_shared<internal::KeyCodec>();
  codec->read = [read = kind.read](internal::Errors& errors, const internal::Field& f, Config* c) {
    read(errors, f, &Access{}(*c));
  };
  codec->write = [write = kind.write](YAML::Emitter& out, const Config& c) { write(out, Access{}(c)); };
  return KeySpec{
      path,
      kind.type,
      kind.show(Access{}(defaults)),
      reloadable,
      doc,
      [](const Config& a, const Config& b) -> bool { return Access{}(a) == Access{}(b); },
      [](const Config& from, Config* to) { Access{}(*to) = Access{}(from); },
      std::move(codec),
  };
}

template <class Access>
KeySpec MakeKey(const char* path, Access access, Integer range, bool reloadable, const char* doc) {
  return MakeKey(path, access, internal::IntegerKind<ValueOf<Access>>(range), reloadable, doc);
}

// USERSD_KEY("dotted.path", member.of.Config, kind, kReload or kRestart, "doc")
// clang-format off
#define USERSD_KEY(path, member, ...) MakeKey(path, [](auto& c) -> auto& { return c.member; }, __VA_ARGS__)
// clang-format on

// workos.api_key is the key in force, wherever it came from: its source
// travels with it.
void CopyApiKey(const Config& from, Config* to) {
  to->workos.api_key = from.workos.api_key;
  to->workos.api_key_source = from.workos.api_key_source;
  to->workos.api_key_source_path = from.workos.api_key_source_path;
}

KeySpec CopiedBy(void (*copy)(const Config&, Config*), KeySpec key) {
  key.copy = copy;
  return key;
}

// Restart-only keys, and why:
//   socket.*, admin_socket.*  the sockets are bound (or inherited from
//                             systemd) once, at start;
//   store.*                   the LMDB environment is opened once;
//   auth.client_id, auth.jwks_url, auth.jwks_file, workos.base_url,
//   workos.allow_insecure_http
//                             where keys are fetched from and which issuers
//                             are derived, wired into the JWKS manager at start;
//   identity.namespace, sync.metadata.*
//                             a host changing these while running would
//                             compute other ids and documents than the rest
//                             of the fleet for the same users (SPEC 4b).
// Everything else is reloadable, auth.issuers, auth.audience,
// auth.algorithms and the API key included (the authenticator and the WorkOS
// client take new values at once; cached token verdicts are dropped).
//
// The order is the file's: ToYaml writes the keys in it, and a section's
// keys are offered in it when a name is misspelt.
std::vector<KeySpec> BuildKeys() {
  using namespace internal;  // the kinds
  return {
      USERSD_KEY("socket.path", socket.path, SocketPath(), kRestart, "Unix socket the clients connect to"),
      USERSD_KEY("socket.mode", socket.mode, Mode(), kRestart, "permissions of the socket file"),
      USERSD_KEY("socket.group", socket.group, Group(), kRestart, "group of the socket file; null: the daemon's"),
      USERSD_KEY("socket.max_line_bytes", socket.max_line_bytes, Integer{1024, 64 << 20}, kRestart,
                 "longest request line; a longer one ends the connection"),
      USERSD_KEY("socket.max_connections", socket.max_connections, Integer{1, 1000000}, kRestart,
                 "client connections open at once"),
      USERSD_KEY("socket.first_request_timeout_ms", socket.first_request_timeout_ms, Integer{0, 3600 * 1000}, kRestart,
                 "time a new connection has to send its first line; 0: no limit"),
      USERSD_KEY("socket.idle_timeout_ms", socket.idle_timeout_ms, Integer{0, 86400LL * 1000}, kRestart,
                 "an idle connection with nothing in flight is closed after this; 0: never"),
      USERSD_KEY("socket.max_buffered_bytes", socket.max_buffered_bytes, Integer{65536, 1LL << 40}, kRestart,
                 "unfinished input of all connections; above it the largest holder is closed"),
      USERSD_KEY("socket.max_connections_per_uid", socket.max_connections_per_uid, Integer{1, 1000000}, kRestart,
                 "client connections one peer uid holds at once"),

      USERSD_KEY("admin_socket.path", admin_socket.path, SocketPath(), kRestart, "Unix socket of usersctl"),
      USERSD_KEY("admin_socket.mode", admin_socket.mode, Mode(), kRestart, "permissions of the admin socket file"),
      USERSD_KEY("admin_socket.allowed_uids", admin_socket.allowed_uids, IdList(), kRestart,
                 "peer uids allowed besides 0 and the daemon's"),
      USERSD_KEY("admin_socket.allowed_gids", admin_socket.allowed_gids, IdList(), kRestart,
                 "peer gids allowed, primary or supplementary"),
      USERSD_KEY("admin_socket.backup_dir", admin_socket.backup_dir, AbsolutePath(), kRestart,
                 "admin.backup writes only below this directory"),

      USERSD_KEY("store.path", store.path, Path(), kRestart, "directory of the LMDB environment"),
      // 16 TiB keeps the byte size far from overflow.
      USERSD_KEY("store.map_size_mib", store.map_size_mib, Integer{1, 1 << 24}, kRestart,
                 "initial LMDB map size; it grows when full"),
      USERSD_KEY("store.max_map_size_mib", store.max_map_size_mib, Integer{1, 1 << 24}, kRestart,
                 "largest LMDB map size"),
      USERSD_KEY("store.sync_mode", store.sync_mode, Choice({"one", "two"}), kRestart,
                 "syncs per commit before a write is acknowledged"),

      USERSD_KEY("auth.client_id", auth.client_id, ClientId(), kRestart,
                 "the WorkOS client id; unset, usersd is unconfigured"),
      USERSD_KEY("auth.jwks_url", auth.jwks_url, OptUrl(), kRestart,
                 "where signing keys are fetched; null: derived from base_url and client_id"),
      USERSD_KEY("auth.jwks_file", auth.jwks_file, OptPath(), kRestart, "a static JWKS used before the URL"),
      USERSD_KEY("auth.issuers", auth.issuers, Issuers(), kReload, "accepted iss values; null: the WorkOS ones"),
      USERSD_KEY("auth.audience", auth.audience, OptString(), kReload, "required aud; checked only when set"),
      USERSD_KEY("auth.algorithms", auth.algorithms, Algorithms(), kReload, "accepted signature algorithms"),
      USERSD_KEY("auth.leeway_seconds", auth.leeway_seconds, Integer{0, 3600}, kReload,
                 "clock leeway for exp, nbf and iat"),
      USERSD_KEY("auth.require_exp", auth.require_exp, Boolean(), kReload, "a token without exp is refused"),
      USERSD_KEY("auth.max_token_age_seconds", auth.max_token_age_seconds, Integer{0, 366LL * 86400}, kReload,
                 "tokens issued longer ago are refused; 0: no limit"),
      USERSD_KEY("auth.jwks_refresh_seconds", auth.jwks_refresh_seconds, Integer{1, 30 * 86400}, kReload,
                 "period of the JWKS refresh"),
      USERSD_KEY("auth.jwks_min_refresh_seconds", auth.jwks_min_refresh_seconds, Integer{1, 86400}, kReload,
                 "least time between refetches for an unknown kid"),

      USERSD_KEY("workos.base_url", workos.base_url, BaseUrl(), kRestart, "base URL of the WorkOS API"),
      CopiedBy(&CopyApiKey, USERSD_KEY("workos.api_key", workos.api_key, Secret(), kReload,
                                       "the API key inline; the last source tried")),
      USERSD_KEY("workos.api_key_file", workos.api_key_file, OptPath(), kReload, "a file holding the API key"),
      USERSD_KEY("workos.timeout_ms", workos.timeout_ms, Integer{1, 3600 * 1000}, kReload, "per-request timeout"),
      USERSD_KEY("workos.max_concurrency", workos.max_concurrency, Integer{1, 1024}, kReload,
                 "requests in flight to WorkOS at once"),
      USERSD_KEY("workos.events_poll_seconds", workos.events_poll_seconds, Integer{0, 86400}, kReload,
                 "interval of the events poller; 0: off"),
      USERSD_KEY("workos.requests_per_second", workos.requests_per_second, Integer{0, 100000}, kReload,
                 "this host's pace for WorkOS; 0: unlimited"),
      USERSD_KEY("workos.max_queued_requests", workos.max_queued_requests, Integer{1, 100000}, kReload,
                 "request-path reads waiting for a connection; beyond it they fail at once"),
      USERSD_KEY("workos.allow_insecure_http", workos.allow_insecure_http, Boolean(), kRestart,
                 "allows http:// to hosts that are not loopback"),

      USERSD_KEY("outbox.initial_backoff_ms", outbox.initial_backoff_ms, Integer{1, 86400 * 1000}, kReload,
                 "first retry delay"),
      USERSD_KEY("outbox.max_backoff_ms", outbox.max_backoff_ms, Integer{1, 86400 * 1000}, kReload,
                 "largest retry delay"),
      USERSD_KEY("outbox.max_age_seconds", outbox.max_age_seconds, Integer{1, 3650LL * 86400}, kReload,
                 "a job older than this is dead-lettered"),

      USERSD_KEY("identity.namespace", identity.namespace_uuid, Uuid(), kRestart,
                 "namespace of the ids of WorkOS users without a UUID external_id"),

      USERSD_KEY("sync.metadata.enabled", sync.metadata.enabled, Boolean(), kRestart,
                 "shared fields travel in the WorkOS user's metadata"),
      USERSD_KEY("sync.metadata.prefix", sync.metadata.prefix, MetadataPrefix(), kRestart,
                 "prefix of the metadata keys holding the document"),
      USERSD_KEY("sync.metadata.keys", sync.metadata.keys, Integer{1, 10}, kRestart,
                 "metadata keys of 600 characters the document may use"),
      USERSD_KEY("sync.metadata.read_first", sync.metadata.read_first, Choice({"app_keys", "never"}), kRestart,
                 "when publishing reads the user first"),
      USERSD_KEY("sync.reconcile.interval_hours", sync.reconcile.interval_hours, Integer{0, 24 * 365}, kReload,
                 "time between full reconciliations; 0: no timer"),
      USERSD_KEY("sync.reconcile.max_cursor_age_days", sync.reconcile.max_cursor_age_days, Integer{1, 3650}, kReload,
                 "an older feed position is reconciled instead of read"),
      USERSD_KEY("sync.reconcile.requests_per_second", sync.reconcile.requests_per_second, Integer{1, 1000}, kReload,
                 "requests per second of a reconciliation"),

      USERSD_KEY("policy.org_admins_manage_members", policy.org_admins_manage_members, Boolean(), kReload,
                 "organization owners and admins manage its members"),
      USERSD_KEY("provisioning.jit", provisioning.jit, Boolean(), kReload,
                 "a valid token of an unknown user creates the user"),
      USERSD_KEY("log.level", log.level, Choice({"error", "warn", "info", "debug"}), kReload,
                 "least severe level written"),
      USERSD_KEY("log.format", log.format, Choice({"text", "json"}), kReload, "text for journald, or JSON lines"),
      USERSD_KEY("metrics.textfile", metrics.textfile, OptPath(), kReload,
                 "also write the metrics to this node_exporter textfile"),
      USERSD_KEY("metrics.textfile_interval_seconds", metrics.textfile_interval_seconds, Integer{1, 86400}, kReload,
                 "how often that file is rewritten"),
  };
}

#undef USERSD_KEY

// The rules between keys, named validators the loader runs after every key
// is read, in this order.

// "low must not exceed high", reported at `low` unless only `high` is set.
void NotAbove(const internal::RuleContext& ctx, const std::string& low, int64_t low_value, const std::string& high,
              int64_t high_value) {
  if (low_value <= high_value) return;
  ctx.Error(ctx.Present(low) ? low : high, low + " (" + std::to_string(low_value) + ") must not exceed " + high + " (" +
                                               std::to_string(high_value) + ")");
}

void MapSizeWithinMax(const internal::RuleContext& ctx) {
  const StoreConfig& s = ctx.config().store;
  NotAbove(ctx, "store.map_size_mib", static_cast<int64_t>(s.map_size_mib), "store.max_map_size_mib",
           static_cast<int64_t>(s.max_map_size_mib));
}

void BackoffWithinMax(const internal::RuleContext& ctx) {
  const OutboxConfig& o = ctx.config().outbox;
  NotAbove(ctx, "outbox.initial_backoff_ms", o.initial_backoff_ms, "outbox.max_backoff_ms", o.max_backoff_ms);
}

void JwksRefetchWithinRefresh(const internal::RuleContext& ctx) {
  const AuthConfig& a = ctx.config().auth;
  NotAbove(ctx, "auth.jwks_min_refresh_seconds", a.jwks_min_refresh_seconds, "auth.jwks_refresh_seconds",
           a.jwks_refresh_seconds);
}

// A whole line must fit in the shared input budget.
void BufferHoldsALine(const internal::RuleContext& ctx) {
  const SocketConfig& s = ctx.config().socket;
  if (s.max_buffered_bytes >= s.max_line_bytes) return;
  ctx.Error(ctx.Present("socket.max_buffered_bytes") ? "socket.max_buffered_bytes" : "socket.max_line_bytes",
            "socket.max_buffered_bytes (" + std::to_string(s.max_buffered_bytes) +
                ") must be at least socket.max_line_bytes (" + std::to_string(s.max_line_bytes) + ")");
}

// The API key (workos.base_url) and the keys that decide who is who
// (auth.jwks_url) must not travel in clear, except to this host.
void NoClearTextUpstream(const internal::RuleContext& ctx) {
  const Config& c = ctx.config();
  if (c.workos.allow_insecure_http) return;
  auto check = [&](const std::string& key, const std::string& url) {
    if (url.rfind("http://", 0) != 0 || IsLoopbackUrl(url)) return;
    ctx.Error(key, key + " uses http:// to a host that is not loopback (\"" + url +
                       "\"): use https://, or set workos.allow_insecure_http: true");
  };
  check("workos.base_url", c.workos.base_url);
  if (c.auth.jwks_url) check("auth.jwks_url", *c.auth.jwks_url);
}

void SocketsDiffer(const internal::RuleContext& ctx) {
  const Config& c = ctx.config();
  if (c.socket.path != c.admin_socket.path) return;
  ctx.Error(ctx.Present("admin_socket.path") ? "admin_socket.path" : "socket.path",
            "socket.path and admin_socket.path must differ");
}

}  // namespace

namespace internal {

const std::vector<Rule>& Rules() {
  static const std::vector<Rule> rules = {
      {"map size within its maximum", &MapSizeWithinMax},
      {"initial backoff within the maximum", &BackoffWithinMax},
      {"JWKS refetch interval within the refresh period", &JwksRefetchWithinRefresh},
      {"input buffer holds a line", &BufferHoldsALine},
      {"no clear-text upstream", &NoClearTextUpstream},
      {"client and admin sockets differ", &SocketsDiffer},
  };
  return rules;
}

}  // namespace internal

const std::vector<KeySpec>& Keys() {
  static const std::vector<KeySpec> keys = BuildKeys();
  return keys;
}

const KeySpec* FindKey(const std::string& path) {
  for (const KeySpec& k : Keys())
    if (path == k.path) return &k;
  return nullptr;
}

ReloadPlan PlanReload(const Config& running, const Config& next) {
  ReloadPlan plan{next, {}, {}};
  for (const KeySpec& k : Keys()) {
    if (k.equal(running, next)) continue;
    if (k.reloadable) {
      plan.reloaded.emplace_back(k.path);
    } else {
      plan.needs_restart.emplace_back(k.path);
      k.copy(running, &plan.applied);
    }
  }
  return plan;
}

std::vector<std::string> DiffReloadable(const Config& old_cfg, const Config& new_cfg,
                                        std::vector<std::string>* needs_restart) {
  ReloadPlan plan = PlanReload(old_cfg, new_cfg);
  if (needs_restart != nullptr) {
    needs_restart->insert(needs_restart->end(), plan.needs_restart.begin(), plan.needs_restart.end());
  }
  return std::move(plan.reloaded);
}

}  // namespace usersd::config
