// Where the WorkOS API key comes from (config.h, ResolveSecrets): the
// environment, the systemd credential, workos.api_key_file or the inline
// key, and the file-mode rules for files that hold it; reading the
// configuration file itself (LoadConfigFile); and what messages say about
// the key's source. No message ever contains the key or a file's contents.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "common/text.h"
#include "config/config.h"

namespace usersd::config {
namespace {

constexpr size_t kMaxConfigFileBytes = 4 << 20;
constexpr size_t kMaxSecretFileBytes = 64 << 10;

// Reads a small file whole. `max_bytes` guards against a path that names
// /dev/zero or a huge file by mistake. Requires a regular file when
// `regular_only`, so a FIFO cannot block startup.
Status ReadSmallFile(const std::string& path, size_t max_bytes, bool regular_only, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Status::IOError(std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::IOError(std::strerror(e));
  }
  if (S_ISDIR(st.st_mode) || (regular_only && !S_ISREG(st.st_mode))) {
    ::close(fd);
    return Status::IOError("not a regular file");
  }
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return Status::IOError(std::strerror(e));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max_bytes) {
      ::close(fd);
      return Status::IOError("larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  *out = std::move(data);
  return Status::Ok();
}

// The key goes into an Authorization header: anything but visible ASCII
// could split the header, so it is refused here rather than sent.
Status CheckApiKey(const std::string& key, const std::string& source) {
  if (key.empty()) return Status::InvalidArgument(source + ": the WorkOS API key is empty");
  bool visible = std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!visible) {
    return Status::InvalidArgument(source + ": the WorkOS API key must be one line of visible ASCII characters");
  }
  return Status::Ok();
}

// Who besides the owner may read `path`: 'o' (others), 'g' (its group) or 0.
// An unreadable stat (the file was read a moment ago) counts as private.
char ReadableBy(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  if (st.st_mode & S_IROTH) return 'o';
  if (st.st_mode & S_IRGRP) return 'g';
  return 0;
}

// The rule for a file that holds the API key (`what` names it in messages):
// refused when anyone on the host may read it, a warning when its group may.
Status CheckSecretFileMode(const std::string& path, const std::string& what) {
  char who = ReadableBy(path);
  if (who == 'o') {
    return Status::InvalidArgument(what + " holds the WorkOS API key and is readable by every user on the host (" +
                                   path + "): chmod o-r it, or move the key to a systemd credential");
  }
  if (who == 'g') {
    LogWarn("a file holding the WorkOS API key is readable by its group; chmod g-r it unless that is meant",
            {{"file", path}, {"what", what}});
  }
  return Status::Ok();
}

// Overwrites the value of `name` in the environment block, then removes the
// variable: unsetenv alone leaves the bytes where /proc/PID/environ reads them.
void ScrubEnv(const char* name) {
  if (char* v = std::getenv(name)) std::memset(v, 0, std::strlen(v));
  ::unsetenv(name);
}

}  // namespace

Result<Config> LoadConfigFile(const std::string& path, bool scrub_env) {
  std::string text;
  Status read = ReadSmallFile(path, kMaxConfigFileBytes, /*regular_only=*/false, &text);
  if (!read.ok()) return Status::IOError("cannot read configuration file " + path + ": " + read.message());
  Result<Config> cfg = ParseConfig(text, path);
  if (!cfg.ok()) return cfg;
  // Checked before the other sources are looked at: the key sits in this
  // file whichever source wins.
  if (cfg->workos.api_key) USERSD_RETURN_IF_ERROR(CheckSecretFileMode(path, "the configuration file (workos.api_key)"));
  USERSD_RETURN_IF_ERROR(ResolveSecrets(&cfg.value(), scrub_env));
  return cfg;
}

Status ResolveSecrets(Config* cfg, bool scrub_env) {
  cfg->workos.api_key_source = ApiKeySource::kNone;
  cfg->workos.api_key_source_path.clear();
  if (const char* env = std::getenv("WORKOS_API_KEY"); env != nullptr && *env != '\0') {
    std::string key = std::string(Trim(env));
    if (scrub_env) ScrubEnv("WORKOS_API_KEY");
    USERSD_RETURN_IF_ERROR(CheckApiKey(key, "environment variable WORKOS_API_KEY"));
    cfg->workos.api_key = std::move(key);
    cfg->workos.api_key_source = ApiKeySource::kEnvironment;
    return Status::Ok();
  }
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir != nullptr && *dir != '\0') {
    const std::string path = std::string(dir) + "/workos_api_key";
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      const std::string source = "systemd credential workos_api_key (" + path + ")";
      std::string key;
      Status read = ReadSmallFile(path, kMaxSecretFileBytes, /*regular_only=*/true, &key);
      if (!read.ok()) return Status::IOError(source + ": cannot read: " + read.message());
      key = std::string(Trim(key));
      // Empty: the placeholder the package creates so that LoadCredential=
      // finds a file before the administrator wrote the key.
      if (!key.empty()) {
        USERSD_RETURN_IF_ERROR(CheckApiKey(key, source));
        cfg->workos.api_key = std::move(key);
        cfg->workos.api_key_source = ApiKeySource::kCredential;
        cfg->workos.api_key_source_path = path;
        return Status::Ok();
      }
    }
  }
  if (cfg->workos.api_key_file) {
    const std::string source = "workos.api_key_file (" + *cfg->workos.api_key_file + ")";
    USERSD_RETURN_IF_ERROR(CheckSecretFileMode(*cfg->workos.api_key_file, "workos.api_key_file"));
    std::string key;
    Status read = ReadSmallFile(*cfg->workos.api_key_file, kMaxSecretFileBytes, /*regular_only=*/true, &key);
    if (!read.ok()) return Status::IOError(source + ": cannot read: " + read.message());
    key = std::string(Trim(key));
    USERSD_RETURN_IF_ERROR(CheckApiKey(key, source));
    cfg->workos.api_key = std::move(key);
    cfg->workos.api_key_source = ApiKeySource::kFile;
    cfg->workos.api_key_source_path = *cfg->workos.api_key_file;
    return Status::Ok();
  }
  if (cfg->workos.api_key) {
    std::string key = std::string(Trim(*cfg->workos.api_key));
    USERSD_RETURN_IF_ERROR(CheckApiKey(key, "workos.api_key"));
    cfg->workos.api_key = std::move(key);
    cfg->workos.api_key_source = ApiKeySource::kInline;
  }
  return Status::Ok();
}

std::string DescribeApiKeySource(const Config& cfg, const std::string& config_path) {
  const std::string& path = cfg.workos.api_key_source_path;
  switch (cfg.workos.api_key_source) {
    case ApiKeySource::kEnvironment: return "the environment variable WORKOS_API_KEY";
    case ApiKeySource::kCredential: return "the systemd credential workos_api_key (" + path + ")";
    case ApiKeySource::kFile: return "workos.api_key_file (" + path + ")";
    case ApiKeySource::kInline: return "workos.api_key in " + config_path;
    case ApiKeySource::kNone: break;
  }
  return "no API key is set";
}

std::string ApiKeyAdvice(const Config& cfg, const std::string& config_path) {
  const std::string& path = cfg.workos.api_key_source_path;
  switch (cfg.workos.api_key_source) {
    case ApiKeySource::kEnvironment:
      return "set WORKOS_API_KEY to a valid key with User Management and Events access, then restart usersd";
    case ApiKeySource::kCredential:
      // systemd copies a credential when the service starts: a reload reads
      // the same copy again.
      return "write a valid key to the file that the unit's LoadCredential=workos_api_key: names "
             "(/etc/usersd/workos_api_key in the packaged unit), then restart usersd (a reload does not re-read "
             "credentials)";
    case ApiKeySource::kFile:
      return "write a valid key to " + path + ", then reload usersd (systemctl reload usersd or usersctl reload)";
    case ApiKeySource::kInline:
      return "set workos.api_key (better: workos.api_key_file) in " + config_path +
             " to a valid key, then reload usersd";
    case ApiKeySource::kNone: break;
  }
  return "set a WorkOS API key: workos.api_key_file in " + config_path +
         ", the systemd credential workos_api_key, or WORKOS_API_KEY";
}

std::string UnconfiguredDetail(const Config& cfg, const std::string& config_path) {
  const bool client = cfg.auth.client_id.has_value();
  const bool key = cfg.workos.api_key.has_value() && !cfg.workos.api_key->empty();
  if (client && key) return {};
  const std::string file = config_path.empty() ? std::string("the configuration file") : config_path;
  const std::string key_where =
      "a WorkOS API key (/etc/usersd/workos_api_key under the packaged unit, workos.api_key_file in " + file +
      ", or WORKOS_API_KEY)";
  std::string what;
  if (!client && !key) what = "set auth.client_id in " + file + " and " + key_where;
  else if (!client) what = "set auth.client_id in " + file;
  else what = "set " + key_where;
  return what + ", then restart usersd";
}

}  // namespace usersd::config
