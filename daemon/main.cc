// usersd entry point: argument parsing, config loading, then App::Run().
#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"
#include "config/config.h"
#include "daemon/app.h"
#include "sync/http_client.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/usersd/usersd.yaml";

void Usage(FILE* out) {
  fprintf(out,
          "usage: usersd [--config FILE] [--check-config] [--version] [--help]\n"
          "\n"
          "  --config FILE    YAML configuration (default %s when it exists,\n"
          "                   otherwise built-in defaults)\n"
          "  --check-config   validate the configuration and exit (0 = valid)\n"
          "  --version        print the version and exit\n"
          "\n"
          "Environment: WORKOS_API_KEY overrides workos.api_key; with systemd,\n"
          "$CREDENTIALS_DIRECTORY/workos_api_key is used (LoadCredential=).\n"
          "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the config.\n",
          kDefaultConfig);
}

// GnuTLS is loaded but never used: libcurl does its TLS with OpenSSL, and
// GnuTLS comes in as a dependency of librtmp and libldap, which libcurl
// links. Its library constructor initialises it anyway (ASN.1 trees, the
// pages that touches: about 650 KiB of the daemon's resident memory, SPEC 7)
// unless GNUTLS_NO_IMPLICIT_INIT=1 is in the environment when the process
// starts, before any library loads. So the daemon sets it and executes
// itself again, once (same pid, arguments, descriptors; a few milliseconds).
// Set GNUTLS_NO_IMPLICIT_INIT=0 to skip this; if the exec fails (no /proc),
// the daemon goes on as it is.
//
// It executes its file by that file's path, not by "/proc/self/exe": the
// kernel names a process after the file name it executed (/proc/PID/comm,
// what ps, pgrep, top and systemd show), and "exe" is no daemon's name (the
// package test found `comm` = "exe"). Only when that path cannot be executed
// (the file was replaced in the moment since it started) does it use
// /proc/self/exe, and is then called "exe".
void ReexecWithoutGnutlsInit(char** argv) {
  if (std::getenv("GNUTLS_NO_IMPLICIT_INIT") != nullptr) return;
  if (setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1) != 0) return;
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n > 0) {
    path[n] = '\0';
    execv(path, argv);
  }
  execv("/proc/self/exe", argv);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" || a == "-c") {
      if (i + 1 >= argc) {
        fprintf(stderr, "usersd: --config needs a file\n");
        return 2;
      }
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--version") {
      printf("usersd %s\n", USERSD_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      Usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "usersd: unknown argument \"%s\"\n", a.c_str());
      Usage(stderr);
      return 2;
    }
  }
  // Before anything is read, opened or started.
  if (!check_only) ReexecWithoutGnutlsInit(argv);
  if (config_path.empty() && access(kDefaultConfig, R_OK) == 0) config_path = kDefaultConfig;

  // The daemon scrubs WORKOS_API_KEY from its environment once it has read
  // it (a check-config run has nothing to protect and exits at once).
  const bool scrub_env = !check_only;
  const char* env_key = std::getenv("WORKOS_API_KEY");
  const bool key_from_env = env_key != nullptr && *env_key != '\0';
  usersd::Result<usersd::config::Config> cfg = usersd::config::Config{};
  if (!config_path.empty()) {
    cfg = usersd::config::LoadConfigFile(config_path, scrub_env);
  } else {
    usersd::config::Config defaults;
    usersd::Status s = usersd::config::ResolveSecrets(&defaults, scrub_env);
    if (s.ok()) cfg = defaults;
    else cfg = s;
  }
  if (!cfg.ok()) {
    fprintf(stderr, "usersd: %s: %s\n", config_path.empty() ? "defaults" : config_path.c_str(),
            cfg.status().message().c_str());
    return 1;
  }
  if (check_only) {
    printf("%s: configuration is valid\n", config_path.empty() ? "defaults" : config_path.c_str());
    return 0;
  }

  // A process that holds the WorkOS API key writes no core file: a dump
  // would carry the key (in the config, in every request's header, in
  // libcurl's and OpenSSL's buffers), which no single MADV_DONTDUMP range
  // covers. Only the soft limit is lowered, so an operator who needs a core
  // can raise it again (prlimit --core=unlimited --pid PID). The unit sets
  // LimitCORE=0 as well.
  if (cfg->workos.api_key) {
    struct rlimit core {};
    if (getrlimit(RLIMIT_CORE, &core) == 0 && core.rlim_cur != 0) {
      core.rlim_cur = 0;
      setrlimit(RLIMIT_CORE, &core);
    }
  }

  // libcurl's global state must be set up before any thread starts.
  usersd::sync::GlobalHttpInit();
  usersd::daemon::App app(std::move(*cfg), config_path);
  app.set_api_key_from_environment(key_from_env);
  return app.Run();
}
