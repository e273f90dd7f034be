// Config: the daemon's settings, loaded from YAML (SPEC section 6a).
//
// Every key has a default, so an empty file is a valid configuration. Unknown
// keys and bad values are errors whose message names the key path and the
// line ("workos.timeout_ms (line 12): must be a positive integer").
// Value type; thread-compatible.
#pragma once

#include <cstdint>
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
};

struct AdminSocketConfig {
  std::string path = "/run/usersd/admin.sock";
  uint32_t mode = 0600;
  std::vector<uint32_t> allowed_uids;
  std::vector<uint32_t> allowed_gids;
};

struct StoreConfig {
  std::string path = "/var/lib/usersd";
  uint64_t map_size_mib = 64;
  uint64_t max_map_size_mib = 65536;
  std::string sync_mode = "one";  // "one" | "two" (store::SyncMode)
};

struct AuthConfig {
  std::string client_id = "client_123";
  std::optional<std::string> jwks_url;    // default {workos.base_url}/sso/jwks/{client_id}
  std::optional<std::string> jwks_file;
  std::optional<std::vector<std::string>> issuers;  // default: the two WorkOS issuers
  std::optional<std::string> audience;
  std::vector<std::string> algorithms = {"RS256"};
  int64_t leeway_seconds = 30;
  int64_t jwks_refresh_seconds = 3600;
  int64_t jwks_min_refresh_seconds = 30;
};

struct WorkosConfig {
  std::string base_url = "https://api.workos.com";
  std::optional<std::string> api_key;       // resolved: WORKOS_API_KEY env > credential > api_key_file > api_key
  std::optional<std::string> api_key_file;
  int64_t timeout_ms = 10000;
  uint32_t max_concurrency = 8;
  int64_t events_poll_seconds = 10;        // 0 disables the poller
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
  std::string EffectiveJwksUrl() const;             // auth.jwks_url or the WorkOS default
  // auth.issuers, or the WorkOS defaults plus, when workos.base_url is not
  // WorkOS's own, that URL and {base_url}/user_management/{client_id} (a
  // WorkOS-compatible local server signs with its own URL; SPEC 3).
  std::vector<std::string> EffectiveIssuers() const;
};

// Parses YAML text. `source_name` is used in messages only.
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source_name = "config");

// Reads and parses a file, then resolves the API key with ResolveSecrets.
Result<Config> LoadConfigFile(const std::string& path);

// Applies the environment/credential/file lookups for the API key to `cfg`.
// First match wins: a non-empty WORKOS_API_KEY, then
// $CREDENTIALS_DIRECTORY/workos_api_key if that file exists and is not
// empty (the package installs an empty one, so that LoadCredential= does not
// fail the start before the key is written), then workos.api_key_file, then
// the inline workos.api_key. Surrounding whitespace is trimmed. Errors name the source but never contain the key or the
// file's contents. Reads the environment, so it must not run concurrently with setenv().
Status ResolveSecrets(Config* cfg);

// Compares two configurations key by key, for SIGHUP / admin config.reload.
// Returns the dotted keys that differ and can be applied at runtime
// ("log.level", "outbox.max_backoff_ms"); appends the differing keys that only
// take effect after a restart ("socket.path") to `needs_restart` when it is
// not null. Both lists follow the order of docs/CONFIGURATION.md. Every field
// of Config is covered, so two empty lists mean the configurations are equal.
std::vector<std::string> DiffReloadable(const Config& old_cfg, const Config& new_cfg,
                                        std::vector<std::string>* needs_restart);

// Writes `cfg` as YAML that ParseConfig reads back to the same values, for
// `--check-config` output and the fuzzer's round trip. workos.api_key is
// always written as null so the output is safe to print or log.
std::string ToYaml(const Config& cfg);

}  // namespace usersd::config
