// Config: the daemon's settings, loaded from YAML (SPEC section 6a).
//
// Every key has a default, so an empty file is a valid configuration. Unknown
// keys and bad values are errors whose message names the key path and the
// line ("workos.timeout_ms (line 12): must be an integer from 1 to 3600000").
// Each key is one row of the table in config/keys.cc (Keys() below); a new
// key is a member here, with its default, plus that row (CONTRIBUTING.md).
// Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace usersd::config {

struct SocketConfig {
  std::string path = "/run/usersd/usersd.sock";
  uint32_t mode = 0660;                  // YAML: octal string "0660" (or integer)
  std::optional<std::string> group;      // group name or numeric gid
  uint64_t max_line_bytes = 1048576;
  uint32_t max_connections = 4096;
  // A connection must complete its first line within this time, and is
  // closed after this long without a complete line while it has nothing in
  // flight and no open stream (ipc/server.h). 0 disables each.
  int64_t first_request_timeout_ms = 30000;
  int64_t idle_timeout_ms = 300000;
  // Input buffered over all connections (unterminated lines); above it the
  // connection holding the most is closed.
  uint64_t max_buffered_bytes = 16ull << 20;
  uint32_t max_connections_per_uid = 1024;
};

struct AdminSocketConfig {
  std::string path = "/run/usersd/admin.sock";
  uint32_t mode = 0600;
  std::vector<uint32_t> allowed_uids;
  std::vector<uint32_t> allowed_gids;
  // admin.backup writes only below this directory (created 0700 on demand).
  std::string backup_dir = "/var/lib/usersd/backups";
};

struct StoreConfig {
  std::string path = "/var/lib/usersd";
  uint64_t map_size_mib = 64;
  uint64_t max_map_size_mib = 65536;
  std::string sync_mode = "one";  // "one" | "two" (store::SyncMode)
};

struct AuthConfig {
  // The WorkOS client id. Unset (the default), usersd is unconfigured: it
  // contacts nothing and refuses every request naming this key (SPEC 4).
  std::optional<std::string> client_id;
  std::optional<std::string> jwks_url;    // default {workos.base_url}/sso/jwks/{client_id}
  std::optional<std::string> jwks_file;
  std::optional<std::vector<std::string>> issuers;  // default: the two WorkOS issuers
  std::optional<std::string> audience;
  std::vector<std::string> algorithms = {"RS256"};
  int64_t leeway_seconds = 30;
  bool require_exp = true;            // a token without exp is refused (SPEC 3)
  int64_t max_token_age_seconds = 0;  // > 0: refuse tokens whose iat is older; 0 = off
  int64_t jwks_refresh_seconds = 3600;
  int64_t jwks_min_refresh_seconds = 30;
};

// Where the API key in force came from (set by ResolveSecrets).
enum class ApiKeySource { kNone, kEnvironment, kCredential, kFile, kInline };

struct WorkosConfig {
  std::string base_url = "https://api.workos.com";
  std::optional<std::string> api_key;       // resolved: WORKOS_API_KEY env > credential > api_key_file > api_key
  std::optional<std::string> api_key_file;
  // Not YAML keys: filled in by ResolveSecrets with the source of api_key
  // and, for a file or credential, its path.
  ApiKeySource api_key_source = ApiKeySource::kNone;
  std::string api_key_source_path;
  int64_t timeout_ms = 10000;
  uint32_t max_concurrency = 8;
  int64_t events_poll_seconds = 10;        // 0 disables the poller
  int64_t requests_per_second = 20;        // outbox + reconciliation + resync (SPEC 4b); 0: unlimited
  // Request-path reads (provisioning, resetAvatar) waiting for a free
  // connection; beyond it such a read fails at once (InternalServerError).
  uint32_t max_queued_requests = 64;
  // http:// is refused for workos.base_url and auth.jwks_url unless the host
  // is loopback or this is true: the API key and the JWKS would travel in
  // clear.
  bool allow_insecure_http = false;
};

struct OutboxConfig {
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 300000;
  int64_t max_age_seconds = 604800;
};

// SPEC 4b "Reconciliation": the full WorkOS user listing that repairs what
// the events feed missed.
struct ReconcileConfig {
  int64_t interval_hours = 24;       // 0 disables the timer
  int64_t max_cursor_age_days = 25;  // older feed positions are reconciled instead of read
  int64_t requests_per_second = 5;   // list requests per second at most
};

// SPEC 4b "Fields WorkOS has no column for": the metadata document.
struct MetadataConfig {
  bool enabled = true;
  std::string prefix = "usersd_";  // 1..30 ASCII letters, digits, '_' or '-'
  int64_t keys = 6;                // 1..10 chunks of 600 characters
  std::string read_first = "app_keys";  // app_keys | never: when the outbox reads a user before publishing
};

struct SyncConfig {
  MetadataConfig metadata;
  ReconcileConfig reconcile;
};

// SPEC 4b "Identity".
struct IdentityConfig {
  std::optional<std::string> namespace_uuid;  // null: domain::kDefaultIdentityNamespace
};

struct PolicyConfig {
  bool org_admins_manage_members = false;
};

struct ProvisioningConfig {
  bool jit = true;
};

struct LogConfig {
  std::string level = "info";   // error | warn | info | debug
  std::string format = "text";  // text | json
};

struct MetricsConfig {
  std::optional<std::string> textfile;  // node_exporter textfile path
  int64_t textfile_interval_seconds = 15;
};

struct Config {
  SocketConfig socket;
  AdminSocketConfig admin_socket;
  StoreConfig store;
  AuthConfig auth;
  WorkosConfig workos;
  OutboxConfig outbox;
  IdentityConfig identity;
  SyncConfig sync;
  PolicyConfig policy;
  ProvisioningConfig provisioning;
  LogConfig log;
  MetricsConfig metrics;

  // Derived values.
  // auth.jwks_url, or the WorkOS default for auth.client_id; nullopt when
  // neither is set.
  std::optional<std::string> EffectiveJwksUrl() const;
  // auth.issuers, or the WorkOS defaults plus, when workos.base_url is not
  // WorkOS's own, that URL and {base_url}/user_management/{client_id} (a
  // WorkOS-compatible local server signs with its own URL; SPEC 3).
  std::vector<std::string> EffectiveIssuers() const;
};

// Parses YAML text. `source_name` is used in messages only.
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source_name = "config");

// Reads and parses a file, then resolves the API key with ResolveSecrets.
// Refuses a file that holds workos.api_key inline while others may read it
// (o+r), and warns when its group may; ResolveSecrets does the same for
// workos.api_key_file.
// `scrub_env`: see ResolveSecrets.
Result<Config> LoadConfigFile(const std::string& path, bool scrub_env = false);

// True for a URL whose host is loopback (localhost, 127.0.0.0/8, [::1]).
bool IsLoopbackUrl(const std::string& url);

// Applies the environment/credential/file lookups for the API key to `cfg`.
// First match wins: a non-empty WORKOS_API_KEY, then
// $CREDENTIALS_DIRECTORY/workos_api_key if that file exists and is not
// empty (the package installs an empty one, so that LoadCredential= does not
// fail the start before the key is written), then workos.api_key_file, then
// the inline workos.api_key. Surrounding whitespace is trimmed. Errors name the source but never contain the key or the
// file's contents. An api_key_file that others may read (o+r) is refused,
// one its group may read is logged as a warning. Reads the environment, so
// it must not run concurrently with setenv(). When the key came from
// WORKOS_API_KEY and `scrub_env` is true, the variable's value is overwritten
// in place and the variable removed, so neither this process's environment
// nor /proc/PID/environ shows it afterwards (the daemon passes true once, at
// startup; later reloads keep the running key).
Status ResolveSecrets(Config* cfg, bool scrub_env = false);

namespace internal {
struct KeyCodec;  // config/schema.h: reads and writes a key's YAML value
}

// One configuration key (SPEC 6a), a row of the table in config/keys.cc that
// parsing, the YAML dump, admin.config.reload's report and the reload's
// apply step all read, so none of them can disagree about a key.
struct KeySpec {
  const char* path;  // dotted, as in the file: "auth.audience"
  // As CONFIGURATION.md's Type column writes it: "integer 1 … 1024" (the
  // range the parser enforces), "`one` / `two`", "path, nullable".
  std::string type;
  // The default (Config{}'s value) as the docs write it: 1048576, "0660",
  // null, [RS256].
  std::string default_value;
  // True: a reload puts the new value in force. False: the running value is
  // kept until the next start, and the key is reported under needsRestart.
  bool reloadable;
  const char* doc;  // one line: what the key is for
  bool (*equal)(const Config& a, const Config& b);
  // Copies this key's value from `from` into `to` (a restart-only key keeps
  // its running value this way).
  void (*copy)(const Config& from, Config* to);
  std::shared_ptr<const internal::KeyCodec> codec;  // for config/ only
};

// Every key of Config, in the order of the file (and of ToYaml).
const std::vector<KeySpec>& Keys();
// The entry for a dotted key, or nullptr.
const KeySpec* FindKey(const std::string& path);

// What a reload does (SIGHUP, admin.config.reload): `applied` is `next` with
// every restart-only key set back to its value in `running`. `reloaded` lists
// the reloadable keys whose value changes, `needs_restart` the restart-only
// keys that differ (both in Keys() order).
struct ReloadPlan {
  Config applied;
  std::vector<std::string> reloaded;
  std::vector<std::string> needs_restart;
};
ReloadPlan PlanReload(const Config& running, const Config& next);

// Compares two configurations key by key: the reloadable keys that differ
// are returned, the restart-only ones appended to `needs_restart` when it is
// not null (PlanReload's two lists). Two empty lists mean the configurations
// are equal.
std::vector<std::string> DiffReloadable(const Config& old_cfg, const Config& new_cfg,
                                        std::vector<std::string>* needs_restart);

// Where the API key in force came from, for messages: "workos.api_key_file
// (/etc/usersd/key)", "the environment variable WORKOS_API_KEY", ... ("no API
// key is set" without one). Never contains the key.
std::string DescribeApiKeySource(const Config& cfg, const std::string& config_path);
// What an operator does when WorkOS refuses that key: where to write a new
// one and whether a reload or a restart reads it.
std::string ApiKeyAdvice(const Config& cfg, const std::string& config_path);
// Empty when auth.client_id and an API key are set; otherwise what to set,
// naming `config_path` and the keys ("set auth.client_id in
// /etc/usersd/usersd.yaml and a WorkOS API key (...)").
std::string UnconfiguredDetail(const Config& cfg, const std::string& config_path);

// Writes `cfg` as YAML that ParseConfig reads back to the same values, for
// `--check-config` output and the fuzzer's round trip. workos.api_key is
// always written as null so the output is safe to print or log.
std::string ToYaml(const Config& cfg);

}  // namespace usersd::config
