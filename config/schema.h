// The configuration schema, internal to config/: the kinds of value a key can
// hold (how each is read from YAML, checked, written back and shown in the
// docs), the key table's YAML side, and the rules that relate several keys.
// The table itself is in keys.cc; loader.cc and dump.cc walk it. yaml-cpp
// types appear here and never in config.h. Functions only; thread-compatible.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "config/config.h"

namespace usersd::config::internal {

// A value with the key path and line it came from. `line` is 1-based.
struct Field {
  std::string path;
  YAML::Node node;
  int line;
};

// The errors of one parse. Every error is counted; after kMaxReported the
// rest are only counted, so a wrong file of thousands of lines still yields a
// readable message.
class Errors {
 public:
  static constexpr size_t kMaxReported = 20;

  // "socket.mode (line 3): must be ..." ("top level" for the root).
  void At(const Field& f, const std::string& what);
  void Report(std::string message);

  const std::vector<std::string>& messages() const { return messages_; }
  size_t count() const { return count_; }

 private:
  std::vector<std::string> messages_;
  size_t count_ = 0;
};

// The line to report for `key: value`. A null value has no useful mark of
// its own: for "key:" with nothing after it yaml-cpp marks the next token,
// which can be the following key. An alias ("key: *anchor") carries the
// anchor's mark, which may be far above. Both cases use the key's line.
int LineOf(const YAML::Node& key, const YAML::Node& value);
int LineOf(const YAML::Node& node);

// Reads a plain decimal integer from `min` to `max`; false after reporting.
bool ReadInt(Errors& errors, const Field& f, int64_t min, int64_t max, int64_t* out);

// One kind of value, held in a Config member of type T.
template <class T>
struct Kind {
  // The value's type as CONFIGURATION.md's Type column writes it
  // ("integer 1 … 1024", "path, nullable"); the docs test compares the two.
  std::string type;
  // Reads `f` into *out, or reports an error and leaves *out as it was.
  std::function<void(Errors&, const Field&, T*)> read;
  // Writes the value as ToYaml does; `read` gives the same value back.
  std::function<void(YAML::Emitter&, const T&)> write;
  // The value as the docs write a default: 1048576, "0660", null, [RS256].
  std::function<std::string(const T&)> show;
};

// The kinds. Each name says what it accepts; the messages are those of
// docs/CONFIGURATION.md's "Rules".
Kind<bool> Boolean();
Kind<std::string> Path();          // non-empty
Kind<std::string> SocketPath();    // a Path that fits in sun_path
Kind<std::string> AbsolutePath();  // "/..." without "." or ".."; trailing '/' removed
Kind<std::string> BaseUrl();       // http(s)://host...; trailing '/' removed
Kind<std::string> Choice(std::vector<std::string> allowed);
Kind<std::string> MetadataPrefix();  // 1..30 of [A-Za-z0-9_-]
Kind<std::optional<std::string>> OptPath();
Kind<std::optional<std::string>> OptUrl();
Kind<std::optional<std::string>> OptString();  // non-empty when set
Kind<std::optional<std::string>> Secret();     // an OptString that ToYaml always writes as null
Kind<std::optional<std::string>> ClientId();
Kind<std::optional<std::string>> Uuid();   // nullable; stored in lower case
Kind<std::optional<std::string>> Group();  // a group name or a numeric gid
Kind<uint32_t> Mode();                     // octal permission bits, at most 0777
Kind<std::vector<uint32_t>> IdList();      // uids or gids; null means []
Kind<std::optional<std::vector<std::string>>> Issuers();
Kind<std::vector<std::string>> Algorithms();  // RS256, RS384, RS512

// An integer from `min` to `max`, held in any integer member.
struct Integer {
  int64_t min;
  int64_t max;
};
template <class T>
Kind<T> IntegerKind(Integer range) {
  static_assert(std::is_integral_v<T>);
  return Kind<T>{
      "integer " + std::to_string(range.min) + " \u2026 " + std::to_string(range.max),
      [range](Errors& errors, const Field& f, T* out) {
        int64_t v;
        if (ReadInt(errors, f, range.min, range.max, &v)) *out = static_cast<T>(v);
      },
      [](YAML::Emitter& out, const T& v) { out << static_cast<int64_t>(v); },
      [](const T& v) { return std::to_string(v); },
  };
}

// A key's YAML side, type-erased: KeySpec::codec.
struct KeyCodec {
  std::function<void(Errors&, const Field&, Config*)> read;
  std::function<void(YAML::Emitter&, const Config&)> write;
};

// What a rule between keys sees once every key has been read.
class RuleContext {
 public:
  // `lines`: the 1-based line of each dotted key the file sets.
  RuleContext(const Config& config, const std::map<std::string, int>& lines, Errors* errors)
      : config_(config), lines_(lines), errors_(errors) {}

  const Config& config() const { return config_; }
  // True when the file sets `path` (a dotted key).
  bool Present(const std::string& path) const { return lines_.count(path) > 0; }
  // Reports `what` at the line of `path`, or without a line when the file
  // does not set it (the value is the default).
  void Error(const std::string& path, const std::string& what) const;

 private:
  const Config& config_;
  const std::map<std::string, int>& lines_;
  Errors* errors_;
};

// A check that involves several keys, run after they are all read. It
// reports at the key the user most likely needs to change.
struct Rule {
  const char* name;
  void (*check)(const RuleContext& ctx);
};
// Every rule, in the order their errors are reported (keys.cc).
const std::vector<Rule>& Rules();

// "https://x/" -> "https://x"; keeps "https://" itself intact.
std::string StripTrailingSlashes(std::string url);

}  // namespace usersd::config::internal
