// Tests for the YAML configuration loader (config/config.h).
#include <catch2/catch.hpp>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace usersd::config {
namespace {

// Sets or unsets an environment variable for one scope and restores the old
// value afterwards, so the secret tests do not leak into each other.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// A fresh directory per test, removed (with its files) at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = ::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/usersd-config-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    for (const std::string& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  // Written mode 0600 (a key file or a config holding a key must not be
  // readable by others: LoadConfigFile and ResolveSecrets refuse that);
  // `mode` sets another.
  std::string Write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    ::chmod(p.c_str(), mode);
    files_.push_back(p);
    return p;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses `yaml`, which must fail, and returns the message.
std::string ErrorOf(const std::string& yaml) {
  Result<Config> r = ParseConfig(yaml, "test.yaml");
  if (r.ok()) FAIL("expected an error for:\n" << yaml);
  CHECK(r.status().code() == Code::kInvalidArgument);
  return r.status().message();
}

const char* const kFullYaml = R"(# every key, each set to a value other than its default
socket:
  path: /tmp/u/usersd.sock
  mode: "0666"
  group: usersd
  max_line_bytes: 2048
  max_connections: 10
  first_request_timeout_ms: 1000
  idle_timeout_ms: 2000
  max_buffered_bytes: 65536
  max_connections_per_uid: 7
admin_socket:
  path: /tmp/u/admin.sock
  mode: 0640
  allowed_uids: [0, 1000]
  allowed_gids:
    - 4
  backup_dir: /tmp/u/backups/
store:
  path: /tmp/u/store
  map_size_mib: 128
  max_map_size_mib: 1024
  sync_mode: two
auth:
  client_id: client_01HXYZ
  jwks_url: https://auth.example.com/jwks
  jwks_file: /etc/usersd/jwks.json
  issuers: [https://auth.example.com]
  audience: my-api
  algorithms: [RS256, RS512]
  leeway_seconds: 5
  require_exp: false
  max_token_age_seconds: 3600
  jwks_refresh_seconds: 600
  jwks_min_refresh_seconds: 60
workos:
  base_url: http://127.0.0.1:8080/
  api_key: sk_test_inline
  api_key_file: /etc/usersd/key
  timeout_ms: 2500
  max_concurrency: 2
  events_poll_seconds: 0
  max_queued_requests: 5
  allow_insecure_http: true
outbox:
  initial_backoff_ms: 50
  max_backoff_ms: 5000
  max_age_seconds: 3600
policy:
  org_admins_manage_members: true
provisioning:
  jit: false
log:
  level: debug
  format: json
metrics:
  textfile: /var/lib/node_exporter/usersd.prom
  textfile_interval_seconds: 30
)";

void CheckDefaults(const Config& c) {
  CHECK(c.socket.path == "/run/usersd/usersd.sock");
  CHECK(c.socket.mode == 0660);
  CHECK_FALSE(c.socket.group.has_value());
  CHECK(c.socket.max_line_bytes == 1048576);
  CHECK(c.socket.max_connections == 4096);
  CHECK(c.socket.first_request_timeout_ms == 30000);
  CHECK(c.socket.idle_timeout_ms == 300000);
  CHECK(c.socket.max_buffered_bytes == 16u << 20);
  CHECK(c.socket.max_connections_per_uid == 1024);
  CHECK(c.admin_socket.path == "/run/usersd/admin.sock");
  CHECK(c.admin_socket.backup_dir == "/var/lib/usersd/backups");
  CHECK(c.admin_socket.mode == 0600);
  CHECK(c.admin_socket.allowed_uids.empty());
  CHECK(c.admin_socket.allowed_gids.empty());
  CHECK(c.store.path == "/var/lib/usersd");
  CHECK(c.store.map_size_mib == 64);
  CHECK(c.store.max_map_size_mib == 65536);
  CHECK(c.store.sync_mode == "one");
  CHECK_FALSE(c.auth.client_id.has_value());
  CHECK_FALSE(c.auth.jwks_url.has_value());
  CHECK_FALSE(c.auth.jwks_file.has_value());
  CHECK_FALSE(c.auth.issuers.has_value());
  CHECK_FALSE(c.auth.audience.has_value());
  CHECK(c.auth.algorithms == std::vector<std::string>{"RS256"});
  CHECK(c.auth.leeway_seconds == 30);
  CHECK(c.auth.require_exp);
  CHECK(c.auth.max_token_age_seconds == 0);
  CHECK(c.auth.jwks_refresh_seconds == 3600);
  CHECK(c.auth.jwks_min_refresh_seconds == 30);
  CHECK(c.workos.base_url == "https://api.workos.com");
  CHECK_FALSE(c.workos.api_key.has_value());
  CHECK_FALSE(c.workos.api_key_file.has_value());
  CHECK(c.workos.timeout_ms == 10000);
  CHECK(c.workos.max_concurrency == 8);
  CHECK(c.workos.events_poll_seconds == 10);
  CHECK(c.workos.max_queued_requests == 64);
  CHECK_FALSE(c.workos.allow_insecure_http);
  CHECK(c.outbox.initial_backoff_ms == 1000);
  CHECK(c.outbox.max_backoff_ms == 300000);
  CHECK(c.outbox.max_age_seconds == 604800);
  CHECK_FALSE(c.policy.org_admins_manage_members);
  CHECK(c.provisioning.jit);
  CHECK(c.log.level == "info");
  CHECK(c.log.format == "text");
  CHECK_FALSE(c.metrics.textfile.has_value());
  CHECK(c.metrics.textfile_interval_seconds == 15);
}

std::vector<std::string> AllChangedKeys(const Config& a, const Config& b) {
  std::vector<std::string> restart;
  std::vector<std::string> keys = DiffReloadable(a, b, &restart);
  keys.insert(keys.end(), restart.begin(), restart.end());
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST_CASE("config: an empty file, {} and a comment-only file give the defaults", "[config]") {
  for (const char* text : {"", "{}", "# nothing here\n", "~\n", "---\n", "socket:\nlog: {}\n"}) {
    INFO("text: " << text);
    Result<Config> r = ParseConfig(text);
    REQUIRE(r.ok());
    CheckDefaults(*r);
  }
  CheckDefaults(Config{});
}

TEST_CASE("config: a file with every key sets every field", "[config]") {
  Result<Config> r = ParseConfig(kFullYaml, "full.yaml");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const Config& c = *r;
  CHECK(c.socket.path == "/tmp/u/usersd.sock");
  CHECK(c.socket.mode == 0666);
  CHECK(c.socket.group == std::optional<std::string>("usersd"));
  CHECK(c.socket.max_line_bytes == 2048);
  CHECK(c.socket.max_connections == 10);
  CHECK(c.socket.first_request_timeout_ms == 1000);
  CHECK(c.socket.idle_timeout_ms == 2000);
  CHECK(c.socket.max_buffered_bytes == 65536);
  CHECK(c.socket.max_connections_per_uid == 7);
  CHECK(c.admin_socket.backup_dir == "/tmp/u/backups");  // trailing slash stripped
  CHECK(c.admin_socket.path == "/tmp/u/admin.sock");
  CHECK(c.admin_socket.mode == 0640);
  CHECK(c.admin_socket.allowed_uids == std::vector<uint32_t>{0, 1000});
  CHECK(c.admin_socket.allowed_gids == std::vector<uint32_t>{4});
  CHECK(c.store.path == "/tmp/u/store");
  CHECK(c.store.map_size_mib == 128);
  CHECK(c.store.max_map_size_mib == 1024);
  CHECK(c.store.sync_mode == "two");
  CHECK(c.auth.client_id == std::optional<std::string>("client_01HXYZ"));
  CHECK(c.auth.jwks_url == std::optional<std::string>("https://auth.example.com/jwks"));
  CHECK(c.auth.jwks_file == std::optional<std::string>("/etc/usersd/jwks.json"));
  CHECK(c.auth.issuers == std::optional<std::vector<std::string>>({"https://auth.example.com"}));
  CHECK(c.auth.audience == std::optional<std::string>("my-api"));
  CHECK(c.auth.algorithms == std::vector<std::string>{"RS256", "RS512"});
  CHECK(c.auth.leeway_seconds == 5);
  CHECK_FALSE(c.auth.require_exp);
  CHECK(c.auth.max_token_age_seconds == 3600);
  CHECK(c.auth.jwks_refresh_seconds == 600);
  CHECK(c.auth.jwks_min_refresh_seconds == 60);
  CHECK(c.workos.base_url == "http://127.0.0.1:8080");  // trailing slash stripped
  CHECK(c.workos.api_key == std::optional<std::string>("sk_test_inline"));
  CHECK(c.workos.api_key_file == std::optional<std::string>("/etc/usersd/key"));
  CHECK(c.workos.timeout_ms == 2500);
  CHECK(c.workos.max_concurrency == 2);
  CHECK(c.workos.events_poll_seconds == 0);
  CHECK(c.workos.max_queued_requests == 5);
  CHECK(c.workos.allow_insecure_http);
  CHECK(c.outbox.initial_backoff_ms == 50);
  CHECK(c.outbox.max_backoff_ms == 5000);
  CHECK(c.outbox.max_age_seconds == 3600);
  CHECK(c.policy.org_admins_manage_members);
  CHECK_FALSE(c.provisioning.jit);
  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");
  CHECK(c.metrics.textfile == std::optional<std::string>("/var/lib/node_exporter/usersd.prom"));
  CHECK(c.metrics.textfile_interval_seconds == 30);
  CHECK(c.EffectiveJwksUrl() == std::optional<std::string>("https://auth.example.com/jwks"));
  CHECK(c.EffectiveIssuers() == std::vector<std::string>{"https://auth.example.com"});

  // Every key differs from its default, so the diff must name all of them:
  // this catches a key that is parsed but missing from DiffReloadable.
  CHECK(AllChangedKeys(Config{}, c).size() == 46);
}

TEST_CASE("config: the example config for systemd parses", "[config]") {
  std::string path = std::string(USERSD_SOURCE_DIR) + "/systemd/usersd.example.yaml";
  std::string text = ReadText(path);
  REQUIRE_FALSE(text.empty());
  Result<Config> r = ParseConfig(text, path);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->socket.path == "/run/usersd/usersd.sock");
  CHECK(r->store.path == "/var/lib/usersd");
}

TEST_CASE("config: unknown keys name the dotted path and line", "[config]") {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"socket:\n  mode: \"0660\"\n  pth: /x.sock\n", "unknown key \"socket.pth\" (line 3)"},
      {"sockets:\n  path: /x\n", "unknown key \"sockets\" (line 1)"},
      {"log: {level: info, colour: true}\n", "unknown key \"log.colour\" (line 1)"},
      {"auth:\n  client_id: c\n\n  algorithm: [RS256]\n", "unknown key \"auth.algorithm\" (line 4)"},
      {"workos:\n  timeout: 5\n", "unknown key \"workos.timeout\" (line 2)"},
  };
  for (const Case& c : cases) {
    INFO("yaml:\n" << c.yaml);
    CHECK_THAT(ErrorOf(c.yaml), Catch::Contains(c.expect));
  }
  CHECK_THAT(ErrorOf("socket:\n  pth: /x\n"), Catch::Contains("did you mean \"socket.path\"?"));
  CHECK_THAT(ErrorOf("? [a, b]\n: 1\n"), Catch::Contains("keys must be plain strings"));
}

TEST_CASE("config: bad values name the dotted key, the line and the rule", "[config]") {
  struct Case {
    const char* yaml;
    const char* key;   // "key (line N)"
    const char* rule;  // part of the explanation
  };
  const Case cases[] = {
      {"log: {level: info}\nsocket:\n  mode: rw-rw----\n", "socket.mode (line 3)",
       "octal permission string like \"0660\""},
      {"socket:\n  mode: \"0888\"\n", "socket.mode (line 2)", "octal permission string"},
      {"socket:\n  mode: 1777\n", "socket.mode (line 2)", "at most 0777"},
      {"admin_socket:\n  mode: [6, 0, 0]\n", "admin_socket.mode (line 2)", "not a list"},
      {"socket:\n  group: \"bad group\"\n", "socket.group (line 2)", "group name or numeric gid"},
      {"socket:\n  group: 4294967295\n", "socket.group (line 2)", "below 4294967295"},
      {"socket:\n  path: \"\"\n", "socket.path (line 2)", "non-empty path"},
      {"socket:\n  path: ~\n", "socket.path (line 2)", "not null"},
      {"socket:\n  path:\nlog: {}\n", "socket.path (line 2)", "not null"},
      {"socket:\n  max_line_bytes: 1023\n", "socket.max_line_bytes (line 2)", "from 1024 to 67108864"},
      {"socket:\n  max_line_bytes: 67108865\n", "socket.max_line_bytes (line 2)", "from 1024 to 67108864"},
      {"socket:\n  max_connections: 0\n", "socket.max_connections (line 2)", "from 1 to 1000000"},
      {"socket:\n  max_connections: 1000001\n", "socket.max_connections (line 2)", "from 1 to 1000000"},
      {"socket:\n  max_connections: 10.5\n", "socket.max_connections (line 2)", "decimal digits"},
      {"socket:\n  max_connections: \"10\"\n", "socket.max_connections (line 2)", "without quotes"},
      {"socket:\n  max_connections: 010\n", "socket.max_connections (line 2)", "decimal digits"},
      {"socket:\n  max_connections: 99999999999999999999999\n", "socket.max_connections (line 2)", "from 1 to"},
      {"admin_socket:\n  allowed_uids: [0, -1]\n", "admin_socket.allowed_uids[1] (line 2)", "from 0 to 4294967294"},
      {"admin_socket:\n  allowed_gids:\n    - 1\n    - staff\n", "admin_socket.allowed_gids[1] (line 4)", "integer"},
      {"admin_socket:\n  allowed_uids: 0\n", "admin_socket.allowed_uids (line 2)", "list of numeric ids"},
      {"store:\n  map_size_mib: 0\n", "store.map_size_mib (line 2)", "from 1 to"},
      {"store:\n  map_size_mib: 2048\n  max_map_size_mib: 1024\n", "store.map_size_mib (line 2)",
       "must not exceed store.max_map_size_mib"},
      {"store:\n  max_map_size_mib: 32\n", "store.max_map_size_mib (line 2)", "must not exceed"},
      {"store:\n  sync_mode: three\n", "store.sync_mode (line 2)", "must be one of one, two"},
      {"store:\n  sync_mode: 1\n", "store.sync_mode (line 2)", "must be one of one, two"},
      {"auth:\n  client_id: \"client/../x\"\n", "auth.client_id (line 2)", "WorkOS client id"},
      {"auth:\n  jwks_url: ftp://x/jwks\n", "auth.jwks_url (line 2)", "http:// or https://"},
      {"auth:\n  issuers: []\n", "auth.issuers (line 2)", "use null for the WorkOS defaults"},
      {"auth:\n  audience: \"\"\n", "auth.audience (line 2)", "must not be empty"},
      {"auth:\n  algorithms: []\n", "auth.algorithms (line 2)", "at least one"},
      {"auth:\n  algorithms: RS256\n", "auth.algorithms (line 2)", "must be a list"},
      {"auth:\n  algorithms: [RS256, none]\n", "auth.algorithms[1] (line 2)", "unsigned tokens"},
      {"auth:\n  algorithms:\n    - HS256\n", "auth.algorithms[0] (line 3)", "HMAC"},
      {"auth:\n  algorithms: [ES256]\n", "auth.algorithms[0] (line 2)", "unsupported algorithm"},
      {"auth:\n  leeway_seconds: 3601\n", "auth.leeway_seconds (line 2)", "from 0 to 3600"},
      {"auth:\n  leeway_seconds: -1\n", "auth.leeway_seconds (line 2)", "from 0 to 3600"},
      {"auth:\n  jwks_refresh_seconds: 0\n", "auth.jwks_refresh_seconds (line 2)", "from 1 to"},
      {"auth:\n  jwks_refresh_seconds: 10\n", "auth.jwks_refresh_seconds (line 2)", "must not exceed"},
      {"workos:\n  base_url: api.workos.com\n", "workos.base_url (line 2)", "http:// or https://"},
      {"workos:\n  base_url: \"https://\"\n", "workos.base_url (line 2)", "host"},
      {"workos:\n  api_key_file: \"\"\n", "workos.api_key_file (line 2)", "non-empty path"},
      {"workos:\n  timeout_ms: 0\n", "workos.timeout_ms (line 2)", "from 1 to"},
      {"workos:\n  max_concurrency: 1025\n", "workos.max_concurrency (line 2)", "from 1 to 1024"},
      {"workos:\n  events_poll_seconds: -5\n", "workos.events_poll_seconds (line 2)", "from 0 to"},
      {"outbox:\n  initial_backoff_ms: 0\n", "outbox.initial_backoff_ms (line 2)", "from 1 to"},
      {"outbox:\n  initial_backoff_ms: 5000\n  max_backoff_ms: 100\n", "outbox.initial_backoff_ms (line 2)",
       "must not exceed outbox.max_backoff_ms"},
      {"outbox:\n  max_age_seconds: 0\n", "outbox.max_age_seconds (line 2)", "from 1 to"},
      {"policy:\n  org_admins_manage_members: \"true\"\n", "policy.org_admins_manage_members (line 2)", "not a string"},
      {"provisioning:\n  jit: yes\n", "provisioning.jit (line 2)", "true or false"},
      {"provisioning:\n  jit: 1\n", "provisioning.jit (line 2)", "true or false"},
      {"log:\n  level: verbose\n", "log.level (line 2)", "one of error, warn, info, debug"},
      {"log:\n  format: xml\n", "log.format (line 2)", "one of text, json"},
      {"metrics:\n  textfile: \"\"\n", "metrics.textfile (line 2)", "non-empty path"},
      {"metrics:\n  textfile_interval_seconds: 0\n", "metrics.textfile_interval_seconds (line 2)", "from 1 to"},
      {"socket: /run/x.sock\n", "socket (line 1)", "must be a mapping"},
      {"auth:\n  client_id: \"a\\tb\"\n", "auth.client_id (line 2)", "control characters"},
      {"auth:\n  audience: \"x\xe0\xd8\x87\"\n", "auth.audience (line 2)", "valid UTF-8"},
      {"store:\n  path: /var/\xc0\xaf\n", "store.path (line 2)", "valid UTF-8"},
  };
  for (const Case& c : cases) {
    INFO("yaml:\n" << c.yaml);
    std::string message = ErrorOf(c.yaml);
    CHECK_THAT(message, Catch::Contains(c.key));
    CHECK_THAT(message, Catch::Contains(c.rule));
    CHECK_THAT(message, Catch::StartsWith("test.yaml: "));
  }
}

TEST_CASE("config: socket paths must fit in sun_path", "[config]") {
  std::string ok_path = "/" + std::string(106, 'a');  // 107 bytes + NUL = 108
  Result<Config> r = ParseConfig("socket:\n  path: " + ok_path + "\n");
  REQUIRE(r.ok());
  CHECK(r->socket.path == ok_path);
  std::string message = ErrorOf("admin_socket:\n  path: " + ok_path + "b\n");
  CHECK_THAT(message, Catch::Contains("admin_socket.path (line 2)"));
  CHECK_THAT(message, Catch::Contains("sun_path"));
  CHECK_THAT(message, Catch::Contains("108 bytes"));
  CHECK_THAT(ErrorOf("admin_socket:\n  path: /run/usersd/usersd.sock\n"),
             Catch::Contains("admin_socket.path (line 2): socket.path and admin_socket.path must differ"));
}

TEST_CASE("config: modes accept octal strings, plain octal numbers and 0o", "[config]") {
  struct Case {
    const char* text;
    uint32_t mode;
  };
  for (const Case& c : {Case{"\"0660\"", 0660}, Case{"\"660\"", 0660}, Case{"0660", 0660}, Case{"640", 0640},
                        Case{"0o600", 0600}, Case{"'0777'", 0777}, Case{"0", 0}}) {
    INFO("mode: " << c.text);
    Result<Config> r = ParseConfig(std::string("admin_socket:\n  mode: ") + c.text + "\n");
    REQUIRE(r.ok());
    CHECK(r->admin_socket.mode == c.mode);
  }
}

TEST_CASE("config: socket.group takes null, a name or a number", "[config]") {
  CHECK_FALSE(ParseConfig("socket: {group: null}")->socket.group.has_value());
  CHECK(ParseConfig("socket: {group: usersd-clients}")->socket.group == std::optional<std::string>("usersd-clients"));
  CHECK(ParseConfig("socket: {group: 1001}")->socket.group == std::optional<std::string>("1001"));
  CHECK(ParseConfig("socket: {group: \"1001\"}")->socket.group == std::optional<std::string>("1001"));
}

TEST_CASE("config: null is accepted for the nullable keys", "[config]") {
  Result<Config> r = ParseConfig(R"(
socket: {group: null}
admin_socket: {allowed_uids: null, allowed_gids: ~}
auth: {jwks_url: null, jwks_file: null, issuers: null, audience: null}
workos: {api_key: null, api_key_file: null}
metrics: {textfile: null}
)");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CheckDefaults(*r);
}

TEST_CASE("config: duplicate keys are errors at any level", "[config]") {
  CHECK_THAT(ErrorOf("log:\n  level: info\nlog:\n  format: json\n"),
             Catch::Contains("duplicate key \"log\" (line 3; first at line 1)"));
  CHECK_THAT(ErrorOf("socket:\n  path: /a.sock\n  mode: \"0600\"\n  path: /b.sock\n"),
             Catch::Contains("duplicate key \"socket.path\" (line 4; first at line 2)"));
  CHECK_THAT(ErrorOf("auth: {leeway_seconds: 1, leeway_seconds: 2}"),
             Catch::Contains("duplicate key \"auth.leeway_seconds\" (line 1"));
}

TEST_CASE("config: YAML syntax errors and non-mapping documents report a line", "[config]") {
  CHECK_THAT(ErrorOf("log:\n  level: info\nauth: [RS256\n"), Catch::Contains("YAML syntax error (line 4"));
  CHECK_THAT(ErrorOf("socket:\n  path: /x\n bad: 1\n"), Catch::Contains("YAML syntax error (line 3"));
  CHECK_THAT(ErrorOf("- socket\n- log\n"), Catch::Contains("top level (line 1): must be a mapping of sections"));
  CHECK_THAT(ErrorOf("just text\n"), Catch::Contains("must be a mapping"));
  CHECK_THAT(ErrorOf("log: {}\n---\nlog: {}\n"), Catch::Contains("only one YAML document"));
}

TEST_CASE("config: several errors are reported together", "[config]") {
  std::string message = ErrorOf("log:\n  level: loud\nworkos:\n  timeout_ms: 0\nbogus: 1\n");
  CHECK_THAT(message, Catch::Contains("log.level (line 2)"));
  CHECK_THAT(message, Catch::Contains("workos.timeout_ms (line 4)"));
  CHECK_THAT(message, Catch::Contains("unknown key \"bogus\" (line 5)"));

  std::string many;
  for (int i = 0; i < 30; ++i) many += "k" + std::to_string(i) + ": 1\n";
  CHECK_THAT(ErrorOf(many), Catch::EndsWith("and 10 more errors"));
}

TEST_CASE("config: malformed input never throws", "[config]") {
  const char* inputs[] = {
      "[", "{", "a: *missing", "&a [*a]", "!!binary 'AAA'", "socket: {path: !custom x}",
      "socket:\n  mode: !!float 1.5\n", "auth: {algorithms: [[RS256]]}", "? \n: \n", "%YAML 9.9\n---\na: 1",
      "x: \"\\uD800\"",
      // yaml-cpp 0.7's LoadAll loops forever allocating on these (found by
      // fuzz/config_fuzz.cc; jbeder/yaml-cpp#1040).
      ",", ",{JJ", "a: 1\n,\n",
  };
  for (const char* in : inputs) {
    INFO("input: " << in);
    Result<Config> r = Config{};
    CHECK_NOTHROW(r = ParseConfig(in));
    CHECK_FALSE(r.ok());
  }
  // Whitespace alone and a byte-order mark are empty documents, not errors.
  for (const char* in : {"\t", "\xff\xfe", "\xef\xbb\xbf"}) {
    Result<Config> r = Status::Internal("unset");
    CHECK_NOTHROW(r = ParseConfig(in));
    CHECK(r.ok());
  }
  std::string deep(100000, '[');
  Result<Config> r = Config{};
  CHECK_NOTHROW(r = ParseConfig("auth: " + deep));
  CHECK_FALSE(r.ok());
}

TEST_CASE("config: derived JWKS URL and issuers follow client_id and base_url", "[config]") {
  Config c;
  c.auth.client_id = "client_123";
  CHECK(c.EffectiveJwksUrl() == std::optional<std::string>("https://api.workos.com/sso/jwks/client_123"));
  CHECK(c.EffectiveIssuers() ==
        std::vector<std::string>{"https://api.workos.com", "https://api.workos.com/user_management/client_123"});
  Result<Config> r = ParseConfig("workos: {base_url: 'http://127.0.0.1:9000//'}\nauth: {client_id: client_X}\n");
  REQUIRE(r.ok());
  CHECK(r->workos.base_url == "http://127.0.0.1:9000");
  CHECK(r->EffectiveJwksUrl() == std::optional<std::string>("http://127.0.0.1:9000/sso/jwks/client_X"));
  // A WorkOS-compatible server elsewhere signs with its own URL (SPEC 3).
  CHECK(r->EffectiveIssuers() ==
        std::vector<std::string>{"https://api.workos.com", "https://api.workos.com/user_management/client_X",
                                 "http://127.0.0.1:9000", "http://127.0.0.1:9000/user_management/client_X"});
  // Explicit issuers replace the defaults.
  r = ParseConfig("workos: {base_url: 'http://127.0.0.1:9000'}\nauth: {issuers: ['https://only.example']}\n");
  REQUIRE(r.ok());
  CHECK(r->EffectiveIssuers() == std::vector<std::string>{"https://only.example"});
}

TEST_CASE("config: sync.reconcile keys, their limits, and reload", "[config]") {
  Result<Config> r = ParseConfig(
      "sync:\n  reconcile:\n    interval_hours: 0\n    max_cursor_age_days: 3\n    requests_per_second: 20\n");
  REQUIRE(r.ok());
  CHECK(r->sync.reconcile.interval_hours == 0);
  CHECK(r->sync.reconcile.max_cursor_age_days == 3);
  CHECK(r->sync.reconcile.requests_per_second == 20);
  Config d;
  CHECK(d.sync.reconcile.interval_hours == 24);
  CHECK(d.sync.reconcile.max_cursor_age_days == 25);
  auto bad = ParseConfig("sync:\n  reconcile:\n    max_cursor_age_days: 0\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("sync.reconcile.max_cursor_age_days (line 3)") != std::string::npos);
  CHECK_FALSE(ParseConfig("sync:\n  reconcile:\n    nonsense: 1\n").ok());
  std::vector<std::string> restart;
  CHECK(DiffReloadable(d, *r, &restart) ==
        std::vector<std::string>{"sync.reconcile.interval_hours", "sync.reconcile.max_cursor_age_days",
                                 "sync.reconcile.requests_per_second"});
  CHECK(restart.empty());
  auto again = ParseConfig(ToYaml(*r));
  REQUIRE(again.ok());
  CHECK(again->sync.reconcile.requests_per_second == 20);
}

TEST_CASE("config: DiffReloadable separates runtime keys from restart keys", "[config]") {
  Config a;
  Config b = a;
  std::vector<std::string> restart;
  CHECK(DiffReloadable(a, b, &restart).empty());
  CHECK(restart.empty());

  b.log.level = "debug";
  b.outbox.max_backoff_ms = 1;
  b.auth.leeway_seconds = 0;
  b.socket.path = "/tmp/other.sock";
  b.workos.api_key = "sk_rotated";
  b.auth.algorithms = {"RS384"};
  CHECK(DiffReloadable(a, b, &restart) == std::vector<std::string>{"auth.algorithms", "auth.leeway_seconds",
                                                                   "workos.api_key", "outbox.max_backoff_ms",
                                                                   "log.level"});
  CHECK(restart == std::vector<std::string>{"socket.path"});
  CHECK(DiffReloadable(a, b, nullptr).size() == 5);

  // The reloadable set from the task: log, outbox, policy, provisioning,
  // metrics, the WorkOS client tuning and the JWKS timing.
  Result<Config> full = ParseConfig(kFullYaml);
  REQUIRE(full.ok());
  std::vector<std::string> full_restart;
  std::vector<std::string> reloadable = DiffReloadable(Config{}, *full, &full_restart);
  CHECK(reloadable == std::vector<std::string>{"auth.issuers",
                                               "auth.audience",
                                               "auth.algorithms",
                                               "auth.leeway_seconds",
                                               "auth.require_exp",
                                               "auth.max_token_age_seconds",
                                               "auth.jwks_refresh_seconds",
                                               "auth.jwks_min_refresh_seconds",
                                               "workos.api_key",
                                               "workos.api_key_file",
                                               "workos.timeout_ms",
                                               "workos.max_concurrency",
                                               "workos.events_poll_seconds",
                                               "workos.max_queued_requests",
                                               "outbox.initial_backoff_ms",
                                               "outbox.max_backoff_ms",
                                               "outbox.max_age_seconds",
                                               "policy.org_admins_manage_members",
                                               "provisioning.jit",
                                               "log.level",
                                               "log.format",
                                               "metrics.textfile",
                                               "metrics.textfile_interval_seconds"});
  CHECK(full_restart.size() == 23);  // store.sync_mode among them
}

TEST_CASE("config: ToYaml round-trips through ParseConfig without the API key", "[config]") {
  for (const char* text : {"", kFullYaml}) {
    Result<Config> first = ParseConfig(text);
    REQUIRE(first.ok());
    std::string yaml = ToYaml(*first);
    CHECK(yaml.find("sk_test_inline") == std::string::npos);
    Result<Config> second = ParseConfig(yaml, "roundtrip");
    INFO(yaml << "\n" << second.status().ToString());
    REQUIRE(second.ok());
    Config expected = *first;
    expected.workos.api_key.reset();
    std::vector<std::string> restart;
    CHECK(DiffReloadable(expected, *second, &restart).empty());
    CHECK(restart.empty());
  }
}

TEST_CASE("config: the API key comes from env, then credential, then file, then inline", "[config][secrets]") {
  TempDir dir;
  std::string key_file = dir.Write("key", "sk_from_file\n");
  std::string cred_dir = dir.path();
  dir.Write("workos_api_key", "  sk_from_credential \n");

  Config base;
  base.workos.api_key = "sk_inline";
  base.workos.api_key_file = key_file;

  {
    ScopedEnv env("WORKOS_API_KEY", "sk_from_env");
    ScopedEnv creds("CREDENTIALS_DIRECTORY", cred_dir.c_str());
    Config c = base;
    REQUIRE(ResolveSecrets(&c).ok());
    CHECK(c.workos.api_key == std::optional<std::string>("sk_from_env"));
  }
  {
    ScopedEnv env("WORKOS_API_KEY", "");  // set but empty counts as unset
    ScopedEnv creds("CREDENTIALS_DIRECTORY", cred_dir.c_str());
    Config c = base;
    REQUIRE(ResolveSecrets(&c).ok());
    CHECK(c.workos.api_key == std::optional<std::string>("sk_from_credential"));
  }
  {
    ScopedEnv env("WORKOS_API_KEY", nullptr);
    ScopedEnv creds("CREDENTIALS_DIRECTORY", (cred_dir + "/absent").c_str());
    Config c = base;
    REQUIRE(ResolveSecrets(&c).ok());
    CHECK(c.workos.api_key == std::optional<std::string>("sk_from_file"));
  }
  {
    ScopedEnv env("WORKOS_API_KEY", nullptr);
    ScopedEnv creds("CREDENTIALS_DIRECTORY", nullptr);
    Config c = base;
    c.workos.api_key_file.reset();
    REQUIRE(ResolveSecrets(&c).ok());
    CHECK(c.workos.api_key == std::optional<std::string>("sk_inline"));

    Config none;
    REQUIRE(ResolveSecrets(&none).ok());
    CHECK_FALSE(none.workos.api_key.has_value());
  }
}

TEST_CASE("config: an empty credential (the package's placeholder) counts as none, not as an error",
          "[config][secrets]") {
  TempDir dir, cred_dir;
  cred_dir.Write("workos_api_key", " \n");
  ScopedEnv env("WORKOS_API_KEY", nullptr);
  ScopedEnv creds("CREDENTIALS_DIRECTORY", cred_dir.path().c_str());

  Config none;
  REQUIRE(ResolveSecrets(&none).ok());
  CHECK_FALSE(none.workos.api_key.has_value());  // the daemon runs without WorkOS

  Config with_file;
  with_file.workos.api_key_file = dir.Write("key", "sk_from_file\n");
  REQUIRE(ResolveSecrets(&with_file).ok());
  CHECK(with_file.workos.api_key == std::optional<std::string>("sk_from_file"));
}

TEST_CASE("config: secret errors name the source but never the key", "[config][secrets]") {
  TempDir dir;
  ScopedEnv env("WORKOS_API_KEY", nullptr);
  ScopedEnv creds("CREDENTIALS_DIRECTORY", nullptr);

  Config missing;
  missing.workos.api_key_file = dir.path() + "/nope";
  Status st = ResolveSecrets(&missing);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.message(), Catch::Contains("workos.api_key_file"));
  CHECK_THAT(st.message(), Catch::Contains(dir.path() + "/nope"));
  CHECK_THAT(st.message(), Catch::Contains("No such file"));

  Config two_lines;
  two_lines.workos.api_key_file = dir.Write("two", "sk_secret_one\nsk_secret_two\n");
  st = ResolveSecrets(&two_lines);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.message(), Catch::Contains("workos.api_key_file"));
  CHECK(st.message().find("sk_secret") == std::string::npos);

  Config empty;
  empty.workos.api_key_file = dir.Write("empty", "\n");
  st = ResolveSecrets(&empty);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.message(), Catch::Contains("empty"));

  Config is_dir;
  is_dir.workos.api_key_file = dir.path();
  CHECK_FALSE(ResolveSecrets(&is_dir).ok());

  {
    ScopedEnv bad_env("WORKOS_API_KEY", "sk_evil\r\nX-Injected: 1");
    Config c;
    st = ResolveSecrets(&c);
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.message(), Catch::Contains("WORKOS_API_KEY"));
    CHECK(st.message().find("sk_evil") == std::string::npos);
  }
  {
    // A credential directory without the file falls through to the config.
    ScopedEnv cred_env("CREDENTIALS_DIRECTORY", dir.path().c_str());
    Config c;
    c.workos.api_key = "sk_inline";
    REQUIRE(ResolveSecrets(&c).ok());
    CHECK(c.workos.api_key == std::optional<std::string>("sk_inline"));
  }
}

TEST_CASE("config: LoadConfigFile parses the file and resolves the key", "[config][secrets]") {
  TempDir dir;
  ScopedEnv creds("CREDENTIALS_DIRECTORY", nullptr);
  std::string key_file = dir.Write("key", "sk_file_key\n");
  std::string cfg_file = dir.Write("usersd.yaml", "log: {level: warn}\nworkos:\n  api_key_file: " + key_file + "\n");

  {
    ScopedEnv env("WORKOS_API_KEY", nullptr);
    Result<Config> r = LoadConfigFile(cfg_file);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->log.level == "warn");
    CHECK(r->workos.api_key == std::optional<std::string>("sk_file_key"));
  }
  {
    ScopedEnv env("WORKOS_API_KEY", "sk_env_key");
    Result<Config> r = LoadConfigFile(cfg_file);
    REQUIRE(r.ok());
    CHECK(r->workos.api_key == std::optional<std::string>("sk_env_key"));
  }

  Result<Config> missing = LoadConfigFile(dir.path() + "/absent.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kIOError);
  CHECK_THAT(missing.status().message(), Catch::Contains("absent.yaml"));

  std::string bad = dir.Write("bad.yaml", "log:\n  level: shouty\n");
  Result<Config> invalid = LoadConfigFile(bad);
  REQUIRE_FALSE(invalid.ok());
  CHECK_THAT(invalid.status().message(), Catch::StartsWith(bad + ": log.level (line 2)"));
}

TEST_CASE("config: http:// is refused for workos.base_url and auth.jwks_url unless loopback or allowed", "[config]") {
  // Issue 21, item 7: the API key and the JWKS must not travel in clear.
  std::string e = ErrorOf("workos:\n  base_url: http://workos.internal.example\n");
  CHECK_THAT(e, Catch::Contains("workos.base_url (line 2)"));
  CHECK_THAT(e, Catch::Contains("workos.allow_insecure_http"));
  e = ErrorOf("auth:\n  jwks_url: http://10.0.0.7/jwks\n");
  CHECK_THAT(e, Catch::Contains("auth.jwks_url (line 2)"));
  for (const char* ok : {"workos: {base_url: \"http://127.0.0.1:8089\"}", "workos: {base_url: \"http://[::1]:80/\"}",
                         "workos: {base_url: \"http://localhost:9\"}", "auth: {jwks_url: \"http://127.1.2.3/jwks\"}",
                         "workos: {base_url: \"https://workos.internal.example\"}",
                         "workos: {base_url: \"http://workos.internal.example\", allow_insecure_http: true}"}) {
    INFO(ok);
    Result<Config> r = ParseConfig(ok);
    INFO(r.status().ToString());
    CHECK(r.ok());
  }
}

TEST_CASE("config: IsLoopbackUrl", "[config]") {
  for (const char* yes : {"http://127.0.0.1", "http://127.0.0.1:8080/x", "http://127.255.0.9/", "http://localhost",
                          "http://LOCALHOST.:1", "http://a.localhost/", "http://[::1]:9", "http://u:p@127.0.0.1/"}) {
    INFO(yes);
    CHECK(IsLoopbackUrl(yes));
  }
  for (const char* no : {"http://128.0.0.1", "http://127.0.0.1.example.com", "http://localhost.example.com",
                         "http://[::2]", "http://127.0.0", "http://127.0.0.256", "http://10.0.0.1",
                         "http://127.0.0.1@evil.example/", "http://evil.example?127.0.0.1", "localhost"}) {
    INFO(no);
    CHECK_FALSE(IsLoopbackUrl(no));
  }
}

TEST_CASE("config: admin_socket.backup_dir must be an absolute path without . or ..", "[config]") {
  CHECK_THAT(ErrorOf("admin_socket: {backup_dir: backups}"), Catch::Contains("must be an absolute path"));
  CHECK_THAT(ErrorOf("admin_socket: {backup_dir: /var/lib/../tmp}"), Catch::Contains("\"..\""));
  CHECK_THAT(ErrorOf("socket: {max_line_bytes: 1048576, max_buffered_bytes: 65536}"),
             Catch::Contains("socket.max_buffered_bytes (65536) must be at least socket.max_line_bytes"));
}

TEST_CASE("config: a key in a file others may read is refused (config inline, api_key_file)", "[config][secrets]") {
  // Issue 21, item 10.
  TempDir dir;
  ScopedEnv env("WORKOS_API_KEY", nullptr);
  ScopedEnv creds("CREDENTIALS_DIRECTORY", nullptr);
  std::string open_cfg = dir.Write("open.yaml", "workos: {api_key: sk_inline_secret}\n", 0644);
  Result<Config> r = LoadConfigFile(open_cfg);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("readable by every user"));
  CHECK_THAT(r.status().message(), Catch::Contains(open_cfg));
  CHECK(r.status().message().find("sk_inline_secret") == std::string::npos);
  // Group-readable: a warning, not a refusal; private: fine.
  CHECK(LoadConfigFile(dir.Write("group.yaml", "workos: {api_key: sk_inline_secret}\n", 0640)).ok());
  CHECK(LoadConfigFile(dir.Write("private.yaml", "workos: {api_key: sk_inline_secret}\n", 0600)).ok());
  // A readable config without a key is no one's business.
  CHECK(LoadConfigFile(dir.Write("nokey.yaml", "log: {level: warn}\n", 0644)).ok());

  Config c;
  c.workos.api_key_file = dir.Write("open.key", "sk_file_secret\n", 0604);
  Status st = ResolveSecrets(&c);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.message(), Catch::Contains("workos.api_key_file"));
  CHECK(st.message().find("sk_file_secret") == std::string::npos);
  c.workos.api_key_file = dir.Write("group.key", "sk_file_secret\n", 0640);
  REQUIRE(ResolveSecrets(&c).ok());
  CHECK(c.workos.api_key == std::optional<std::string>("sk_file_secret"));
}

TEST_CASE("config: with scrub_env, WORKOS_API_KEY is overwritten and removed once read", "[config][secrets]") {
  ScopedEnv creds("CREDENTIALS_DIRECTORY", nullptr);
  ScopedEnv env("WORKOS_API_KEY", "sk_env_secret");
  char* value = ::getenv("WORKOS_API_KEY");
  REQUIRE(value != nullptr);
  Config kept;
  REQUIRE(ResolveSecrets(&kept).ok());
  CHECK(::getenv("WORKOS_API_KEY") != nullptr);  // without scrubbing, left alone
  Config c;
  REQUIRE(ResolveSecrets(&c, /*scrub_env=*/true).ok());
  CHECK(c.workos.api_key == std::optional<std::string>("sk_env_secret"));
  CHECK(::getenv("WORKOS_API_KEY") == nullptr);
  // The bytes the environment held are gone too (glibc keeps setenv's
  // buffer, so reading it here is safe).
  CHECK(std::string(value, 13).find("sk_env") == std::string::npos);
}

// Issue 22: admin.config.reload reported auth.audience, auth.issuers,
// auth.algorithms and workos.api_key under needsRestart while the reload put
// them in force at once. One table (Keys()) now drives both; this checks it
// key by key: each changed alone, reloaded, and looked at in what the reload
// puts in force.
TEST_CASE("config: every key, changed alone and reloaded, is in force exactly when reported reloaded",
          "[config][reload]") {
  // A value for every key that differs from its default and is valid alone.
  const std::map<std::string, std::string> changed = {
      {"socket.path", "/tmp/x/other.sock"},
      {"socket.mode", "\"0600\""},
      {"socket.group", "wheel"},
      {"socket.max_line_bytes", "2048"},
      {"socket.max_connections", "10"},
      {"socket.first_request_timeout_ms", "5000"},
      {"socket.idle_timeout_ms", "60000"},
      {"socket.max_buffered_bytes", "33554432"},
      {"socket.max_connections_per_uid", "7"},
      {"admin_socket.path", "/tmp/x/adm.sock"},
      {"admin_socket.mode", "\"0640\""},
      {"admin_socket.allowed_uids", "[1000]"},
      {"admin_socket.allowed_gids", "[4]"},
      {"admin_socket.backup_dir", "/tmp/x/backups"},
      {"store.path", "/tmp/x/store"},
      {"store.map_size_mib", "128"},
      {"store.max_map_size_mib", "1024"},
      {"store.sync_mode", "two"},
      {"auth.client_id", "client_changed"},
      {"auth.jwks_url", "https://auth.example.com/jwks"},
      {"auth.jwks_file", "/etc/usersd/jwks.json"},
      {"auth.issuers", "[https://issuer.example.com]"},
      {"auth.audience", "my-api"},
      {"auth.algorithms", "[RS512]"},
      {"auth.leeway_seconds", "5"},
      {"auth.require_exp", "false"},
      {"auth.max_token_age_seconds", "86400"},
      {"auth.jwks_refresh_seconds", "600"},
      {"auth.jwks_min_refresh_seconds", "60"},
      {"workos.base_url", "http://127.0.0.1:8080"},
      {"workos.api_key", "sk_test_changed"},
      {"workos.api_key_file", "/etc/usersd/key"},
      {"workos.timeout_ms", "2500"},
      {"workos.max_concurrency", "2"},
      {"workos.events_poll_seconds", "0"},
      {"workos.requests_per_second", "5"},
      {"workos.max_queued_requests", "3"},
      {"workos.allow_insecure_http", "true"},
      {"outbox.initial_backoff_ms", "50"},
      {"outbox.max_backoff_ms", "5000"},
      {"outbox.max_age_seconds", "3600"},
      {"identity.namespace", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
      {"sync.metadata.enabled", "false"},
      {"sync.metadata.prefix", "app_"},
      {"sync.metadata.keys", "3"},
      {"sync.metadata.read_first", "never"},
      {"sync.reconcile.interval_hours", "0"},
      {"sync.reconcile.max_cursor_age_days", "3"},
      {"sync.reconcile.requests_per_second", "20"},
      {"policy.org_admins_manage_members", "true"},
      {"provisioning.jit", "false"},
      {"log.level", "debug"},
      {"log.format", "json"},
      {"metrics.textfile", "/tmp/x.prom"},
      {"metrics.textfile_interval_seconds", "30"},
  };
  // What needs a restart, and why (config/keys.cc, above the table): sockets and
  // the store are opened once; where keys come from is wired at start; ids
  // and documents must stay those of the fleet.
  const std::set<std::string> restart_only = {"socket.path",
                                              "socket.mode",
                                              "socket.group",
                                              "socket.max_line_bytes",
                                              "socket.max_connections",
                                              "socket.first_request_timeout_ms",
                                              "socket.idle_timeout_ms",
                                              "socket.max_buffered_bytes",
                                              "socket.max_connections_per_uid",
                                              "admin_socket.path",
                                              "admin_socket.mode",
                                              "admin_socket.allowed_uids",
                                              "admin_socket.allowed_gids",
                                              "admin_socket.backup_dir",
                                              "store.path",
                                              "store.map_size_mib",
                                              "store.max_map_size_mib",
                                              "store.sync_mode",
                                              "auth.client_id",
                                              "auth.jwks_url",
                                              "auth.jwks_file",
                                              "workos.base_url",
                                              "workos.allow_insecure_http",
                                              "identity.namespace",
                                              "sync.metadata.enabled",
                                              "sync.metadata.prefix",
                                              "sync.metadata.keys",
                                              "sync.metadata.read_first"};

  std::set<std::string> table;
  for (const KeySpec& k : Keys()) table.insert(k.path);
  std::set<std::string> tested;
  for (const auto& [k, v] : changed) tested.insert(k);
  CHECK(table == tested);  // a new key needs a value above

  const Config running;
  for (const KeySpec& key : Keys()) {
    INFO("key: " << key.path);
    REQUIRE(changed.count(key.path) == 1);
    // "a.b.c: v" as nested YAML.
    std::string yaml, indent;
    std::string rest = key.path;
    for (size_t dot; (dot = rest.find('.')) != std::string::npos; rest = rest.substr(dot + 1)) {
      yaml += indent + rest.substr(0, dot) + ":\n";
      indent += "  ";
    }
    yaml += indent + rest + ": " + changed.at(key.path) + "\n";
    Result<Config> next = ParseConfig(yaml, "changed.yaml");
    INFO(yaml << next.status().ToString());
    REQUIRE(next.ok());
    REQUIRE_FALSE(key.equal(running, *next));

    ReloadPlan plan = PlanReload(running, *next);
    const bool expect_reload = restart_only.count(key.path) == 0;
    CHECK(key.reloadable == expect_reload);
    CHECK(plan.reloaded == (expect_reload ? std::vector<std::string>{key.path} : std::vector<std::string>{}));
    CHECK(plan.needs_restart == (expect_reload ? std::vector<std::string>{} : std::vector<std::string>{key.path}));
    // In force after the reload: the new value when reported reloaded, the
    // running one when reported as needing a restart; every other key as it was.
    if (expect_reload) {
      CHECK(key.equal(plan.applied, *next));
    } else {
      CHECK(key.equal(plan.applied, running));
    }
    for (const KeySpec& other : Keys()) {
      if (std::string(other.path) == key.path) continue;
      INFO("other key: " << other.path);
      CHECK(other.equal(plan.applied, running));
    }
    // Reloading the same file again changes and reports nothing more.
    ReloadPlan again = PlanReload(plan.applied, *next);
    CHECK(again.reloaded.empty());
    CHECK(again.needs_restart == plan.needs_restart);
  }
  // The four keys the issue names are reloadable now, and say so.
  for (const char* k : {"auth.audience", "auth.issuers", "auth.algorithms", "workos.api_key"}) {
    REQUIRE(FindKey(k) != nullptr);
    CHECK(FindKey(k)->reloadable);
  }
  CHECK(FindKey("no.such.key") == nullptr);
}

TEST_CASE("config: a reloaded API key carries where it came from; one kept for a restart keeps its source",
          "[config][reload][secrets]") {
  Config running;
  running.workos.api_key = "sk_old";
  running.workos.api_key_source = ApiKeySource::kCredential;
  running.workos.api_key_source_path = "/run/credentials/usersd.service/workos_api_key";
  Config next = running;
  next.workos.api_key = "sk_new";
  next.workos.api_key_source = ApiKeySource::kFile;
  next.workos.api_key_source_path = "/etc/usersd/key";
  ReloadPlan plan = PlanReload(running, next);
  CHECK(plan.reloaded == std::vector<std::string>{"workos.api_key"});
  CHECK(plan.applied.workos.api_key == std::optional<std::string>("sk_new"));
  CHECK(plan.applied.workos.api_key_source == ApiKeySource::kFile);
  CHECK(DescribeApiKeySource(plan.applied, "/etc/usersd/usersd.yaml") == "workos.api_key_file (/etc/usersd/key)");
  CHECK(ApiKeyAdvice(plan.applied, "/etc/usersd/usersd.yaml").find("reload") != std::string::npos);
  CHECK(ApiKeyAdvice(running, "/etc/usersd/usersd.yaml").find("restart usersd") != std::string::npos);
  CHECK(DescribeApiKeySource(running, "x").find("sk_") == std::string::npos);
}

TEST_CASE("config: an unset client id or API key is named, with the file, as what to set", "[config]") {
  Config c;
  CHECK_FALSE(c.auth.client_id.has_value());
  CHECK_FALSE(c.EffectiveJwksUrl().has_value());
  CHECK(c.EffectiveIssuers() == std::vector<std::string>{"https://api.workos.com"});
  std::string both = UnconfiguredDetail(c, "/etc/usersd/usersd.yaml");
  CHECK(both.find("auth.client_id in /etc/usersd/usersd.yaml") != std::string::npos);
  CHECK(both.find("WorkOS API key") != std::string::npos);
  c.auth.client_id = "client_1";
  std::string key_only = UnconfiguredDetail(c, "/etc/usersd/usersd.yaml");
  CHECK(key_only.find("auth.client_id") == std::string::npos);
  CHECK(key_only.find("/etc/usersd/workos_api_key") != std::string::npos);
  c.workos.api_key = "sk_1";
  CHECK(UnconfiguredDetail(c, "/etc/usersd/usersd.yaml").empty());
  c.auth.client_id.reset();
  CHECK(UnconfiguredDetail(c, "/etc/usersd/usersd.yaml") ==
        "set auth.client_id in /etc/usersd/usersd.yaml, then restart usersd");
  // null is a valid value for it (the packaged file shows it).
  Result<Config> r = ParseConfig("auth:\n  client_id: null\n");
  REQUIRE(r.ok());
  CHECK_FALSE(r->auth.client_id.has_value());
}

// The docs are written by hand and the key table (config/keys.cc) is what
// the daemon does: each key's row in CONFIGURATION.md must give the table's
// type (with the range the parser enforces), default and reload column, and
// every row must name a key of the table. A failure shows the row to write.
TEST_CASE("config: docs/CONFIGURATION.md gives each key's type, default and reload as the key table does",
          "[config][reload]") {
  std::string docs = ReadText(std::string(USERSD_SOURCE_DIR) + "/docs/CONFIGURATION.md");
  REQUIRE_FALSE(docs.empty());
  for (const KeySpec& key : Keys()) {
    INFO("key: " << key.path);
    INFO("the table's row: | `" << key.path << "` | " << key.type << " | `" << key.default_value << "` | "
                                << (key.reloadable ? "reload" : "restart") << " | " << key.doc << " |");
    // | `key` | type | default | reload/restart | meaning |
    size_t row = docs.find("\n| `" + std::string(key.path) + "` |");
    REQUIRE(row != std::string::npos);
    std::string line = docs.substr(row + 1, docs.find('\n', row + 1) - row - 1);
    std::vector<std::string> cells;
    for (size_t at = 0, bar; (bar = line.find(" | ", at)) != std::string::npos; at = bar + 3) {
      cells.push_back(line.substr(at, bar - at));
    }
    REQUIRE(cells.size() >= 4);
    CHECK(cells[1] == key.type);
    CHECK(cells[2] == "`" + key.default_value + "`");
    CHECK(cells[3] == (key.reloadable ? "reload" : "restart"));
  }
  std::istringstream lines(docs);
  const std::regex key_row("^\\| `([a-z_.]+)` \\|.*");
  int rows = 0;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, key_row)) continue;
    INFO("row: " << line);
    CHECK(FindKey(m[1].str()) != nullptr);
    ++rows;
  }
  CHECK(rows == static_cast<int>(Keys().size()));
}

// The same for usersd.yaml(5), whose entries read
// "*key*: type, default _value_, reload" (scdoc escapes '_' as "\_").
TEST_CASE("config: the man page usersd.yaml(5) gives each key's default and reload as the key table does",
          "[config][reload]") {
  std::string man = ReadText(std::string(USERSD_SOURCE_DIR) + "/man/usersd.yaml.5.scd");
  REQUIRE_FALSE(man.empty());
  auto unescape = [](std::string s) {
    for (size_t at; (at = s.find("\\_")) != std::string::npos;) s.erase(at, 1);
    return s;
  };
  for (const KeySpec& key : Keys()) {
    INFO("key: " << key.path);
    INFO("the table's entry: *" << key.path << "*: " << key.type << ", default _" << key.default_value << "_, "
                                << (key.reloadable ? "reload" : "restart"));
    size_t at = man.find("\n*" + std::string(key.path) + "*: ");
    REQUIRE(at != std::string::npos);
    std::string line = unescape(man.substr(at + 1, man.find('\n', at + 1) - at - 1));
    INFO("man page: " << line);
    const std::string tail =
        ", default _" + unescape(key.default_value) + "_, " + (key.reloadable ? "reload" : "restart");
    CHECK((line.size() >= tail.size() && line.compare(line.size() - tail.size(), tail.size(), tail) == 0));
    if (key.type.rfind("integer ", 0) == 0) {
      // "integer 1 … 10" in CONFIGURATION.md is "integer 1 to 10" here.
      std::string range = key.type;
      range.replace(range.find(" \u2026 "), std::string(" \u2026 ").size(), " to ");
      CHECK(line.find("*: " + range + ", ") != std::string::npos);
    }
  }
  std::istringstream lines(man);
  const std::regex entry("^\\*([a-z_]+\\.[a-z_.]+)\\*: .*");
  int entries = 0;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, entry)) continue;
    INFO("entry: " << line);
    CHECK(FindKey(m[1].str()) != nullptr);
    ++entries;
  }
  CHECK(entries == static_cast<int>(Keys().size()));
}

// Each row of the table is complete, and shows its default as the docs write it.
TEST_CASE("config: every key in the table has a type, a doc line and its default", "[config]") {
  std::set<std::string> paths;
  for (const KeySpec& key : Keys()) {
    INFO("key: " << key.path);
    CHECK(paths.insert(key.path).second);
    CHECK_FALSE(key.type.empty());
    CHECK(key.doc != nullptr);
    CHECK(std::string(key.doc).size() > 10);
    CHECK(std::string(key.doc).find('\n') == std::string::npos);
  }
  CHECK(FindKey("socket.max_line_bytes")->type == "integer 1024 \u2026 67108864");
  CHECK(FindKey("socket.max_line_bytes")->default_value == "1048576");
  CHECK(FindKey("socket.mode")->default_value == "\"0660\"");
  CHECK(FindKey("auth.algorithms")->default_value == "[RS256]");
  CHECK(FindKey("auth.client_id")->default_value == "null");
  CHECK(FindKey("store.sync_mode")->type == "`one` / `two`");
}

}  // namespace
}  // namespace usersd::config
