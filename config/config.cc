// The YAML loader for Config. yaml-cpp builds a node tree; this file walks it
// against a fixed schema so that every unknown key, duplicate key and bad value
// becomes a message naming the dotted key and its 1-based line. yaml-cpp
// exceptions never leave this file.
#include "config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <utility>

#include "common/log.h"
#include "common/text.h"

namespace usersd::config {
namespace {

// sun_path includes the terminating NUL, so a usable path is at most 107 bytes.
constexpr size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);
constexpr size_t kMaxConfigFileBytes = 4 << 20;
constexpr size_t kMaxSecretFileBytes = 64 << 10;
// After this many messages the rest are only counted, so a wrong file of
// thousands of lines still yields a readable error.
constexpr size_t kMaxReportedErrors = 20;

constexpr const char* kWorkosIssuer = "https://api.workos.com";

const char* const kTagInt = "tag:yaml.org,2002:int";
const char* const kTagBool = "tag:yaml.org,2002:bool";
const char* const kTagStr = "tag:yaml.org,2002:str";

// A value with the key path and line it came from. `line` is 1-based.
struct Field {
  std::string path;
  YAML::Node node;
  int line;
};

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string StripTrailingSlashes(std::string url) {
  // Keep "https://" intact even though validation rejects a URL without host.
  while (url.size() > 1 && url.back() == '/' && url.compare(url.size() - 3, 3, "://") != 0) url.pop_back();
  return url;
}

// Walks one parsed document. Collects every error rather than stopping at the
// first, so `usersd --check-config` shows all of them at once.
class Loader {
 public:
  explicit Loader(Config* cfg) : cfg_(cfg) {}

  const std::vector<std::string>& errors() const { return errors_; }
  size_t error_count() const { return error_count_; }

  void Root(const YAML::Node& root);

 private:
  using Handler = std::function<void(const Field&)>;
  struct Entry {
    const char* key;
    Handler handler;
  };

  void Error(const Field& f, const std::string& what) {
    Report((f.path.empty() ? std::string("top level") : f.path) + " (line " + std::to_string(f.line) + "): " + what);
  }
  void Report(std::string message) {
    if (errors_.size() < kMaxReportedErrors) errors_.push_back(std::move(message));
    ++error_count_;
  }

  // Chooses the line to report for `key: value`. A null value has no useful
  // mark of its own: for "key:" with nothing after it yaml-cpp marks the next
  // token, which can be the following key. An alias ("key: *anchor") carries
  // the anchor's mark, which may be far above. Both cases use the key's line.
  static int LineOf(const YAML::Node& key, const YAML::Node& value) {
    int key_line = key.Mark().line;
    if (value.IsNull() || value.Mark().is_null() || value.Mark().line < key_line) return key_line + 1;
    return value.Mark().line + 1;
  }
  static int LineOf(const YAML::Node& node) { return node.Mark().is_null() ? 0 : node.Mark().line + 1; }

  // Iterates the mapping `f.node`, dispatching each key to its handler. A null
  // section ("socket:" with every child commented out) keeps the defaults.
  void Section(const Field& f, const std::vector<Entry>& entries);

  // Scalar readers. Each returns false after reporting an error.
  bool Scalar(const Field& f, const char* expected);
  bool Int(const Field& f, int64_t min, int64_t max, int64_t* out);
  template <class T>
  void IntField(const Field& f, int64_t min, int64_t max, T* out) {
    int64_t v;
    if (Int(f, min, max, &v)) *out = static_cast<T>(v);
  }
  void Bool(const Field& f, bool* out);
  bool String(const Field& f, std::string* out);
  void NonEmptyString(const Field& f, std::string* out);
  void OptNonEmptyString(const Field& f, std::optional<std::string>* out);
  void Path(const Field& f, std::string* out);
  void OptPath(const Field& f, std::optional<std::string>* out);
  void SocketPath(const Field& f, std::string* out);
  void AbsolutePath(const Field& f, std::string* out);
  bool Url(const Field& f, std::string* out);
  void OptUrl(const Field& f, std::optional<std::string>* out);
  void Enum(const Field& f, std::initializer_list<const char*> allowed, std::string* out);
  void Mode(const Field& f, uint32_t* out);
  void Group(const Field& f, std::optional<std::string>* out);
  void IdList(const Field& f, std::vector<uint32_t>* out);
  void ClientId(const Field& f, std::optional<std::string>* out);
  void OptUuid(const Field& f, std::optional<std::string>* out);
  void MetadataPrefix(const Field& f, std::string* out);
  void Issuers(const Field& f, std::optional<std::vector<std::string>>* out);
  void Algorithms(const Field& f, std::vector<std::string>* out);

  // Checks between keys, run after every key has been read. They report the
  // line of the key the user most likely needs to change.
  void CrossChecks();
  Field At(const std::string& path) const {
    auto it = lines_.find(path);
    return Field{path, YAML::Node(), it == lines_.end() ? 0 : it->second};
  }
  void CrossError(const std::string& path, const std::string& what) {
    Field f = At(path);
    if (f.line > 0) {
      Error(f, what);
    } else {
      Report(path + ": " + what);
    }
  }

  Config* cfg_;
  std::vector<std::string> errors_;
  size_t error_count_ = 0;
  std::map<std::string, int> lines_;  // dotted key -> 1-based line, for keys present
};

void Loader::Section(const Field& f, const std::vector<Entry>& entries) {
  if (f.node.IsNull()) return;
  if (!f.node.IsMap()) {
    Error(f, f.path.empty() ? "must be a mapping of sections (socket:, auth:, ...)"
                            : "must be a mapping of keys");
    return;
  }
  std::map<std::string, int> seen;
  for (auto it = f.node.begin(); it != f.node.end(); ++it) {
    // Copies, not references: the iterator's operator-> returns a temporary
    // pair, so a reference to its members dangles at the end of the statement.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    const std::string prefix = f.path.empty() ? "" : f.path + ".";
    if (!key.IsScalar()) {
      Report((f.path.empty() ? std::string("top level") : f.path) + " (line " + std::to_string(LineOf(key)) +
             "): keys must be plain strings");
      continue;
    }
    const std::string name = key.Scalar();
    const std::string path = prefix + name;
    const int key_line = LineOf(key);
    auto [pos, inserted] = seen.emplace(name, key_line);
    if (!inserted) {
      Report("duplicate key \"" + path + "\" (line " + std::to_string(key_line) + "; first at line " +
             std::to_string(pos->second) + ")");
      continue;
    }
    auto entry = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return name == e.key; });
    if (entry == entries.end()) {
      std::string message = "unknown key \"" + path + "\" (line " + std::to_string(key_line) + ")";
      const Entry* best = nullptr;
      size_t best_distance = 0;
      for (const Entry& e : entries) {
        size_t d = EditDistance(name, e.key);
        if (best == nullptr || d < best_distance) {
          best = &e;
          best_distance = d;
        }
      }
      if (best != nullptr && best_distance <= std::max<size_t>(2, name.size() / 4)) {
        message += "; did you mean \"" + prefix + best->key + "\"?";
      }
      Report(std::move(message));
      continue;
    }
    Field child{path, value, LineOf(key, value)};
    lines_[path] = child.line;
    entry->handler(child);
  }
}

bool Loader::Scalar(const Field& f, const char* expected) {
  if (f.node.IsNull()) {
    Error(f, std::string("must be ") + expected + ", not null");
    return false;
  }
  if (!f.node.IsScalar()) {
    Error(f, std::string("must be ") + expected + ", not a " + (f.node.IsMap() ? "mapping" : "list"));
    return false;
  }
  return true;
}

bool Loader::Int(const Field& f, int64_t min, int64_t max, int64_t* out) {
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!Scalar(f, range.c_str())) return false;
  const std::string& tag = f.node.Tag();
  const std::string& s = f.node.Scalar();
  // A quoted "30" is a string in YAML; accepting it would hide a typo such as
  // "30s", so numbers must be written plainly.
  if (tag != "?" && tag != kTagInt) {
    Error(f, "must be " + range + " written without quotes");
    return false;
  }
  size_t digits_at = (!s.empty() && s[0] == '-') ? 1 : 0;
  bool decimal = s.size() > digits_at &&
                 std::all_of(s.begin() + digits_at, s.end(), [](char c) { return c >= '0' && c <= '9'; });
  // "010" is octal in YAML 1.1 and decimal in YAML 1.2; refuse the ambiguity.
  bool leading_zero = decimal && s.size() > digits_at + 1 && s[digits_at] == '0';
  if (!decimal || leading_zero) {
    Error(f, "must be " + range + " (decimal digits, got \"" + s + "\")");
    return false;
  }
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < min || v > max) {
    Error(f, "must be " + range);
    return false;
  }
  *out = v;
  return true;
}

void Loader::Bool(const Field& f, bool* out) {
  if (!Scalar(f, "true or false")) return;
  const std::string& tag = f.node.Tag();
  const std::string& s = f.node.Scalar();
  if (tag == "?" || tag == kTagBool) {
    // Only the YAML 1.2 spellings: yaml-cpp would also take yes/no/on/off,
    // which surprise readers ("on" for a country code, "no" for Norway).
    if (s == "true" || s == "True" || s == "TRUE") {
      *out = true;
      return;
    }
    if (s == "false" || s == "False" || s == "FALSE") {
      *out = false;
      return;
    }
  }
  Error(f, "must be true or false (a YAML boolean, not a string)");
}

bool Loader::String(const Field& f, std::string* out) {
  if (!Scalar(f, "a string")) return false;
  const std::string& tag = f.node.Tag();
  if (tag != "?" && tag != "!" && tag != kTagStr) {
    Error(f, "must be a string (unsupported tag " + tag + ")");
    return false;
  }
  if (HasControlChars(f.node.Scalar())) {
    Error(f, "must not contain control characters");
    return false;
  }
  // Strict UTF-8: yaml-cpp passes invalid bytes through unchanged, and its
  // emitter would rewrite them, so they are refused at the edge.
  if (!IsValidUtf8(f.node.Scalar())) {
    Error(f, "must be valid UTF-8");
    return false;
  }
  *out = f.node.Scalar();
  return true;
}

void Loader::NonEmptyString(const Field& f, std::string* out) {
  std::string s;
  if (!String(f, &s)) return;
  if (s.empty()) {
    Error(f, "must not be empty");
    return;
  }
  *out = std::move(s);
}

void Loader::OptNonEmptyString(const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (!String(f, &s)) return;
  if (s.empty()) {
    Error(f, "must not be empty (use null to unset)");
    return;
  }
  *out = std::move(s);
}

void Loader::Path(const Field& f, std::string* out) {
  std::string s;
  if (!String(f, &s)) return;
  if (s.empty()) {
    Error(f, "must be a non-empty path");
    return;
  }
  *out = std::move(s);
}

void Loader::OptPath(const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  Path(f, &s);
  if (!s.empty()) *out = std::move(s);
}

void Loader::SocketPath(const Field& f, std::string* out) {
  std::string s;
  Path(f, &s);
  if (s.empty()) return;
  if (s.size() >= kSunPathSize) {
    Error(f, "must be shorter than " + std::to_string(kSunPathSize) + " bytes (the sun_path limit of a Unix socket), got " +
                 std::to_string(s.size()));
    return;
  }
  *out = std::move(s);
}

void Loader::AbsolutePath(const Field& f, std::string* out) {
  std::string s;
  Path(f, &s);
  if (s.empty()) return;
  if (s[0] != '/') {
    Error(f, "must be an absolute path");
    return;
  }
  // "." and ".." would make "below this directory" mean something else than
  // it reads.
  for (size_t at = 0; at < s.size();) {
    size_t end = s.find('/', at);
    if (end == std::string::npos) end = s.size();
    std::string_view part(s.data() + at, end - at);
    if (part == "." || part == "..") {
      Error(f, "must not contain \".\" or \"..\" components");
      return;
    }
    at = end + 1;
  }
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  *out = std::move(s);
}

bool Loader::Url(const Field& f, std::string* out) {
  std::string s;
  if (!String(f, &s)) return false;
  size_t host_at;
  if (s.rfind("https://", 0) == 0) {
    host_at = 8;
  } else if (s.rfind("http://", 0) == 0) {
    host_at = 7;
  } else {
    Error(f, "must be a URL starting with http:// or https://");
    return false;
  }
  if (s.size() == host_at || s[host_at] == '/') {
    Error(f, "must be a URL with a host after the scheme");
    return false;
  }
  if (std::any_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '#'; })) {
    Error(f, "must be a URL without spaces or a #fragment");
    return false;
  }
  *out = std::move(s);
  return true;
}

void Loader::OptUrl(const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (Url(f, &s)) *out = std::move(s);
}

void Loader::Enum(const Field& f, std::initializer_list<const char*> allowed, std::string* out) {
  std::string s;
  if (!String(f, &s)) return;
  std::string list;
  for (const char* a : allowed) {
    if (s == a) {
      *out = std::move(s);
      return;
    }
    list += list.empty() ? "" : ", ";
    list += a;
  }
  Error(f, "must be one of " + list + " (got \"" + s + "\")");
}

void Loader::Mode(const Field& f, uint32_t* out) {
  static const char* const kWhat = "must be an octal permission string like \"0660\"";
  if (!Scalar(f, "an octal permission string like \"0660\"")) return;
  const std::string& tag = f.node.Tag();
  std::string s = f.node.Scalar();
  if (tag != "?" && tag != "!" && tag != kTagStr && tag != kTagInt) {
    Error(f, kWhat);
    return;
  }
  // A plain 0660 reaches us as the text "0660": read it as octal, which is
  // what every reader of a permission means. "0o660" is YAML 1.2's spelling.
  if (s.rfind("0o", 0) == 0) s.erase(0, 2);
  bool octal = !s.empty() && s.size() <= 6 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!octal) {
    Error(f, kWhat);
    return;
  }
  uint32_t v = 0;
  for (char c : s) v = v * 8 + static_cast<uint32_t>(c - '0');
  if (v > 0777) {
    Error(f, std::string(kWhat) + " and at most 0777");
    return;
  }
  *out = v;
}

void Loader::Group(const Field& f, std::optional<std::string>* out) {
  static const char* const kWhat = "must be a group name or numeric gid";
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  if (!Scalar(f, "a group name or numeric gid")) return;
  const std::string& tag = f.node.Tag();
  std::string s = f.node.Scalar();
  if ((tag != "?" && tag != "!" && tag != kTagStr && tag != kTagInt) || HasControlChars(s) || !IsValidUtf8(s)) {
    Error(f, kWhat);
    return;
  }
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t gid = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), gid);
    // (gid_t)-1 means "no change" to chown(), so it cannot name a group.
    if (ec != std::errc() || gid >= 0xffffffffu) {
      Error(f, "must be a numeric gid below 4294967295");
      return;
    }
    *out = std::to_string(gid);
    return;
  }
  bool valid_name = !s.empty() && s.size() <= 256 && s[0] != '-' &&
                    std::none_of(s.begin(), s.end(), [](char c) { return c == ':' || c == '/' || c == ',' || IsBlank(c); });
  if (!valid_name) {
    Error(f, kWhat);
    return;
  }
  *out = std::move(s);
}

void Loader::IdList(const Field& f, std::vector<uint32_t>* out) {
  if (f.node.IsNull()) {
    out->clear();
    return;
  }
  if (!f.node.IsSequence()) {
    Error(f, "must be a list of numeric ids, like [0, 1000]");
    return;
  }
  std::vector<uint32_t> ids;
  size_t i = 0;
  bool ok = true;
  for (const YAML::Node& item : f.node) {
    int64_t v;
    Field itf{f.path + "[" + std::to_string(i) + "]", item, std::max(f.line, LineOf(item))};
    if (Int(itf, 0, 4294967294LL, &v)) {
      ids.push_back(static_cast<uint32_t>(v));
    } else {
      ok = false;
    }
    ++i;
  }
  if (ok) *out = std::move(ids);
}

void Loader::OptUuid(const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (!String(f, &s)) return;
  bool ok = s.size() == 36;
  for (size_t i = 0; ok && i < s.size(); ++i) {
    char ch = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) ok = ch == '-';
    else ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
  }
  if (!ok) {
    Error(f, "must be a UUID (8-4-4-4-12 hex digits) or null");
    return;
  }
  for (char& ch : s) ch = (ch >= 'A' && ch <= 'F') ? static_cast<char>(ch - 'A' + 'a') : ch;
  *out = std::move(s);
}

void Loader::MetadataPrefix(const Field& f, std::string* out) {
  std::string s;
  if (!String(f, &s)) return;
  // The chunk keys are {prefix}0..{prefix}9: WorkOS allows keys of 40 ASCII
  // characters; a narrow alphabet keeps them from clashing with JSON or URLs.
  bool ok = !s.empty() && s.size() <= 30 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  if (!ok) {
    Error(f, "must be 1 to 30 ASCII letters, digits, '_' or '-'");
    return;
  }
  *out = std::move(s);
}

void Loader::ClientId(const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (!String(f, &s)) return;
  // The id is pasted into URLs and issuer strings, so keep it to the
  // characters WorkOS uses ("client_01H...").
  bool ok = !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
  if (!ok) {
    Error(f, "must be a WorkOS client id of letters, digits, '_', '-' or '.'");
    return;
  }
  *out = std::move(s);
}

void Loader::Issuers(const Field& f, std::optional<std::vector<std::string>>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  if (!f.node.IsSequence()) {
    Error(f, "must be a list of issuer strings, or null for the WorkOS defaults");
    return;
  }
  if (f.node.size() == 0) {
    Error(f, "must not be empty (use null for the WorkOS defaults)");
    return;
  }
  std::vector<std::string> issuers;
  size_t i = 0;
  bool ok = true;
  for (const YAML::Node& item : f.node) {
    Field itf{f.path + "[" + std::to_string(i++) + "]", item, std::max(f.line, LineOf(item))};
    std::string s;
    NonEmptyString(itf, &s);
    if (s.empty()) {
      ok = false;
    } else {
      issuers.push_back(std::move(s));
    }
  }
  if (ok) *out = std::move(issuers);
}

void Loader::Algorithms(const Field& f, std::vector<std::string>* out) {
  if (!f.node.IsSequence()) {
    Error(f, "must be a list such as [RS256]");
    return;
  }
  if (f.node.size() == 0) {
    Error(f, "must list at least one of RS256, RS384, RS512");
    return;
  }
  std::vector<std::string> algs;
  size_t i = 0;
  bool ok = true;
  for (const YAML::Node& item : f.node) {
    Field itf{f.path + "[" + std::to_string(i++) + "]", item, std::max(f.line, LineOf(item))};
    std::string s;
    if (!String(itf, &s)) {
      ok = false;
      continue;
    }
    std::string upper = s;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    if (s == "RS256" || s == "RS384" || s == "RS512") {
      if (std::find(algs.begin(), algs.end(), s) == algs.end()) algs.push_back(s);
      continue;
    }
    ok = false;
    if (upper == "NONE") {
      Error(itf, "\"" + s + "\" is refused: it would accept unsigned tokens; use RS256, RS384 or RS512");
    } else if (upper.rfind("HS", 0) == 0) {
      Error(itf, "\"" + s +
                     "\" is refused: HMAC with a public JWKS key lets anyone forge tokens; use RS256, RS384 or RS512");
    } else {
      Error(itf, "unsupported algorithm \"" + s + "\"; use RS256, RS384 or RS512");
    }
  }
  if (ok) *out = std::move(algs);
}

void Loader::Root(const YAML::Node& root) {
  Config& c = *cfg_;
  auto bind = [this](auto method, auto... args) {
    return [this, method, args...](const Field& f) { (this->*method)(f, args...); };
  };
  auto int_field = [this](auto* target, int64_t min, int64_t max) {
    return [this, target, min, max](const Field& f) { IntField(f, min, max, target); };
  };

  Section(Field{"", root, LineOf(root)},
          {
              {"socket",
               [&](const Field& f) {
                 Section(
                     f, {
                            {"path", bind(&Loader::SocketPath, &c.socket.path)},
                            {"mode", bind(&Loader::Mode, &c.socket.mode)},
                            {"group", bind(&Loader::Group, &c.socket.group)},
                            {"max_line_bytes", int_field(&c.socket.max_line_bytes, 1024, 64 << 20)},
                            {"max_connections", int_field(&c.socket.max_connections, 1, 1000000)},
                            {"first_request_timeout_ms", int_field(&c.socket.first_request_timeout_ms, 0, 3600 * 1000)},
                            {"idle_timeout_ms", int_field(&c.socket.idle_timeout_ms, 0, 86400LL * 1000)},
                            {"max_buffered_bytes", int_field(&c.socket.max_buffered_bytes, 65536, 1LL << 40)},
                            {"max_connections_per_uid", int_field(&c.socket.max_connections_per_uid, 1, 1000000)},
                        });
               }},
              {"admin_socket",
               [&](const Field& f) {
                 Section(f, {
                                {"path", bind(&Loader::SocketPath, &c.admin_socket.path)},
                                {"mode", bind(&Loader::Mode, &c.admin_socket.mode)},
                                {"allowed_uids", bind(&Loader::IdList, &c.admin_socket.allowed_uids)},
                                {"allowed_gids", bind(&Loader::IdList, &c.admin_socket.allowed_gids)},
                                {"backup_dir", bind(&Loader::AbsolutePath, &c.admin_socket.backup_dir)},
                            });
               }},
              {"store",
               [&](const Field& f) {
                 Section(f, {
                                {"path", bind(&Loader::Path, &c.store.path)},
                                // 16 TiB keeps the byte size far from overflow.
                                {"map_size_mib", int_field(&c.store.map_size_mib, 1, 1 << 24)},
                                {"max_map_size_mib", int_field(&c.store.max_map_size_mib, 1, 1 << 24)},
                                {"sync_mode",
                                 [&](const Field& v) {
                                   Enum(v, {"one", "two"}, &c.store.sync_mode);
                                 }},
                            });
               }},
              {"auth",
               [&](const Field& f) {
                 Section(f, {
                                {"client_id", bind(&Loader::ClientId, &c.auth.client_id)},
                                {"jwks_url", bind(&Loader::OptUrl, &c.auth.jwks_url)},
                                {"jwks_file", bind(&Loader::OptPath, &c.auth.jwks_file)},
                                {"issuers", bind(&Loader::Issuers, &c.auth.issuers)},
                                {"audience", bind(&Loader::OptNonEmptyString, &c.auth.audience)},
                                {"algorithms", bind(&Loader::Algorithms, &c.auth.algorithms)},
                                {"leeway_seconds", int_field(&c.auth.leeway_seconds, 0, 3600)},
                                {"require_exp", bind(&Loader::Bool, &c.auth.require_exp)},
                                {"max_token_age_seconds", int_field(&c.auth.max_token_age_seconds, 0, 366LL * 86400)},
                                {"jwks_refresh_seconds", int_field(&c.auth.jwks_refresh_seconds, 1, 30 * 86400)},
                                {"jwks_min_refresh_seconds", int_field(&c.auth.jwks_min_refresh_seconds, 1, 86400)},
                            });
               }},
              {"workos",
               [&](const Field& f) {
                 Section(f, {
                                {"base_url",
                                 [&](const Field& v) {
                                   std::string url;
                                   if (Url(v, &url)) c.workos.base_url = StripTrailingSlashes(url);
                                 }},
                                {"api_key", bind(&Loader::OptNonEmptyString, &c.workos.api_key)},
                                {"api_key_file", bind(&Loader::OptPath, &c.workos.api_key_file)},
                                {"timeout_ms", int_field(&c.workos.timeout_ms, 1, 3600 * 1000)},
                                {"max_concurrency", int_field(&c.workos.max_concurrency, 1, 1024)},
                                {"events_poll_seconds", int_field(&c.workos.events_poll_seconds, 0, 86400)},
                                {"requests_per_second", int_field(&c.workos.requests_per_second, 0, 100000)},
                                {"max_queued_requests", int_field(&c.workos.max_queued_requests, 1, 100000)},
                                {"allow_insecure_http", bind(&Loader::Bool, &c.workos.allow_insecure_http)},
                            });
               }},
              {"outbox",
               [&](const Field& f) {
                 Section(f, {
                                {"initial_backoff_ms", int_field(&c.outbox.initial_backoff_ms, 1, 86400 * 1000)},
                                {"max_backoff_ms", int_field(&c.outbox.max_backoff_ms, 1, 86400 * 1000)},
                                {"max_age_seconds", int_field(&c.outbox.max_age_seconds, 1, 3650LL * 86400)},
                            });
               }},
              {"identity",
               [&](const Field& f) {
                 Section(f, {{"namespace", bind(&Loader::OptUuid, &c.identity.namespace_uuid)}});
               }},
              {"sync",
               [&](const Field& f) {
                 Section(f, {
                                {"metadata",
                                 [&](const Field& m) {
                                   Section(m, {
                                                  {"enabled", bind(&Loader::Bool, &c.sync.metadata.enabled)},
                                                  {"prefix", bind(&Loader::MetadataPrefix, &c.sync.metadata.prefix)},
                                                  {"keys", int_field(&c.sync.metadata.keys, 1, 10)},
                                                  {"read_first",
                                                   [&](const Field& v) {
                                                     Enum(v, {"app_keys", "never"}, &c.sync.metadata.read_first);
                                                   }},
                                              });
                                 }},
                                {"reconcile",
                                 [&](const Field& r) {
                                   Section(r, {
                                                  {"interval_hours",
                                                   int_field(&c.sync.reconcile.interval_hours, 0, 24 * 365)},
                                                  {"max_cursor_age_days",
                                                   int_field(&c.sync.reconcile.max_cursor_age_days, 1, 3650)},
                                                  {"requests_per_second",
                                                   int_field(&c.sync.reconcile.requests_per_second, 1, 1000)},
                                              });
                                 }},
                            });
               }},
              {"policy",
               [&](const Field& f) {
                 Section(f, {{"org_admins_manage_members", bind(&Loader::Bool, &c.policy.org_admins_manage_members)}});
               }},
              {"provisioning",
               [&](const Field& f) {
                 Section(f, {{"jit", bind(&Loader::Bool, &c.provisioning.jit)}});
               }},
              {"log",
               [&](const Field& f) {
                 Section(f, {
                                {"level",
                                 [&](const Field& v) { Enum(v, {"error", "warn", "info", "debug"}, &c.log.level); }},
                                {"format", [&](const Field& v) { Enum(v, {"text", "json"}, &c.log.format); }},
                            });
               }},
              {"metrics",
               [&](const Field& f) {
                 Section(f, {
                                {"textfile", bind(&Loader::OptPath, &c.metrics.textfile)},
                                {"textfile_interval_seconds",
                                 int_field(&c.metrics.textfile_interval_seconds, 1, 86400)},
                            });
               }},
          });
  CrossChecks();
}

void Loader::CrossChecks() {
  const Config& c = *cfg_;
  if (c.store.map_size_mib > c.store.max_map_size_mib) {
    CrossError(lines_.count("store.map_size_mib") ? "store.map_size_mib" : "store.max_map_size_mib",
               "store.map_size_mib (" + std::to_string(c.store.map_size_mib) +
                   ") must not exceed store.max_map_size_mib (" + std::to_string(c.store.max_map_size_mib) + ")");
  }
  if (c.outbox.initial_backoff_ms > c.outbox.max_backoff_ms) {
    CrossError(lines_.count("outbox.initial_backoff_ms") ? "outbox.initial_backoff_ms" : "outbox.max_backoff_ms",
               "outbox.initial_backoff_ms (" + std::to_string(c.outbox.initial_backoff_ms) +
                   ") must not exceed outbox.max_backoff_ms (" + std::to_string(c.outbox.max_backoff_ms) + ")");
  }
  if (c.auth.jwks_min_refresh_seconds > c.auth.jwks_refresh_seconds) {
    CrossError(lines_.count("auth.jwks_min_refresh_seconds") ? "auth.jwks_min_refresh_seconds"
                                                              : "auth.jwks_refresh_seconds",
               "auth.jwks_min_refresh_seconds (" + std::to_string(c.auth.jwks_min_refresh_seconds) +
                   ") must not exceed auth.jwks_refresh_seconds (" + std::to_string(c.auth.jwks_refresh_seconds) +
                   ")");
  }
  if (c.socket.max_buffered_bytes < c.socket.max_line_bytes) {
    CrossError(lines_.count("socket.max_buffered_bytes") ? "socket.max_buffered_bytes" : "socket.max_line_bytes",
               "socket.max_buffered_bytes (" + std::to_string(c.socket.max_buffered_bytes) +
                   ") must be at least socket.max_line_bytes (" + std::to_string(c.socket.max_line_bytes) + ")");
  }
  if (!c.workos.allow_insecure_http) {
    // The API key (workos.base_url) and the keys that decide who is who
    // (auth.jwks_url) must not travel in clear, except to this host.
    auto check = [&](const std::string& key, const std::string& url) {
      if (url.rfind("http://", 0) != 0 || IsLoopbackUrl(url)) return;
      CrossError(key, key + " uses http:// to a host that is not loopback (\"" + url +
                          "\"): use https://, or set workos.allow_insecure_http: true");
    };
    check("workos.base_url", c.workos.base_url);
    if (c.auth.jwks_url) check("auth.jwks_url", *c.auth.jwks_url);
  }
  if (c.socket.path == c.admin_socket.path) {
    CrossError(lines_.count("admin_socket.path") ? "admin_socket.path" : "socket.path",
               "socket.path and admin_socket.path must differ");
  }
}

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

// Records where documents start and ignores everything else.
class DocumentCounter : public YAML::EventHandler {
 public:
  const std::vector<YAML::Mark>& starts() const { return starts_; }

  void OnDocumentStart(const YAML::Mark& mark) override { starts_.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  std::vector<YAML::Mark> starts_;
};

// One row per key of Config, in document order (config.h, Keys()).
#define USERSD_KEY(path, member, reloadable)                                                 \
  KeySpec {                                                                                  \
    path, reloadable, [](const Config& a, const Config& b) { return a.member == b.member; }, \
        [](const Config& from, Config* to) { to->member = from.member; }                     \
  }

// workos.api_key is the key in force, wherever it came from: its source
// travels with it.
void CopyApiKey(const Config& from, Config* to) {
  to->workos.api_key = from.workos.api_key;
  to->workos.api_key_source = from.workos.api_key_source;
  to->workos.api_key_source_path = from.workos.api_key_source_path;
}

// Restart-only keys, and why:
//   socket.*, admin_socket.*  the sockets are bound (or inherited from
//                             systemd) once, at start;
//   store.*                   the LMDB environment is opened once;
//   auth.client_id, auth.jwks_url, auth.jwks_file, workos.base_url
//                             where keys are fetched from and which issuers
//                             are derived, wired into the JWKS manager at start;
//   identity.namespace, sync.metadata.*
//                             a host changing these while running would
//                             compute other ids and documents than the rest
//                             of the fleet for the same users (SPEC 4b).
// Everything else is reloadable, auth.issuers, auth.audience,
// auth.algorithms and the API key included (the authenticator and the WorkOS
// client take new values at once; cached token verdicts are dropped).
const std::vector<KeySpec> kKeys = {
    USERSD_KEY("socket.path", socket.path, false),
    USERSD_KEY("socket.mode", socket.mode, false),
    USERSD_KEY("socket.group", socket.group, false),
    USERSD_KEY("socket.max_line_bytes", socket.max_line_bytes, false),
    USERSD_KEY("socket.max_connections", socket.max_connections, false),
    USERSD_KEY("socket.first_request_timeout_ms", socket.first_request_timeout_ms, false),
    USERSD_KEY("socket.idle_timeout_ms", socket.idle_timeout_ms, false),
    USERSD_KEY("socket.max_buffered_bytes", socket.max_buffered_bytes, false),
    USERSD_KEY("socket.max_connections_per_uid", socket.max_connections_per_uid, false),
    USERSD_KEY("admin_socket.path", admin_socket.path, false),
    USERSD_KEY("admin_socket.mode", admin_socket.mode, false),
    USERSD_KEY("admin_socket.allowed_uids", admin_socket.allowed_uids, false),
    USERSD_KEY("admin_socket.allowed_gids", admin_socket.allowed_gids, false),
    USERSD_KEY("admin_socket.backup_dir", admin_socket.backup_dir, false),
    USERSD_KEY("store.path", store.path, false),
    USERSD_KEY("store.map_size_mib", store.map_size_mib, false),
    USERSD_KEY("store.max_map_size_mib", store.max_map_size_mib, false),
    USERSD_KEY("store.sync_mode", store.sync_mode, false),
    USERSD_KEY("auth.client_id", auth.client_id, false),
    USERSD_KEY("auth.jwks_url", auth.jwks_url, false),
    USERSD_KEY("auth.jwks_file", auth.jwks_file, false),
    USERSD_KEY("auth.issuers", auth.issuers, true),
    USERSD_KEY("auth.audience", auth.audience, true),
    USERSD_KEY("auth.algorithms", auth.algorithms, true),
    USERSD_KEY("auth.leeway_seconds", auth.leeway_seconds, true),
    USERSD_KEY("auth.require_exp", auth.require_exp, true),
    USERSD_KEY("auth.max_token_age_seconds", auth.max_token_age_seconds, true),
    USERSD_KEY("auth.jwks_refresh_seconds", auth.jwks_refresh_seconds, true),
    USERSD_KEY("auth.jwks_min_refresh_seconds", auth.jwks_min_refresh_seconds, true),
    USERSD_KEY("workos.base_url", workos.base_url, false),
    KeySpec{"workos.api_key", true,
            [](const Config& a, const Config& b) { return a.workos.api_key == b.workos.api_key; }, &CopyApiKey},
    USERSD_KEY("workos.api_key_file", workos.api_key_file, true),
    USERSD_KEY("workos.timeout_ms", workos.timeout_ms, true),
    USERSD_KEY("workos.max_concurrency", workos.max_concurrency, true),
    USERSD_KEY("workos.events_poll_seconds", workos.events_poll_seconds, true),
    USERSD_KEY("workos.requests_per_second", workos.requests_per_second, true),
    USERSD_KEY("workos.max_queued_requests", workos.max_queued_requests, true),
    USERSD_KEY("workos.allow_insecure_http", workos.allow_insecure_http, false),
    USERSD_KEY("outbox.initial_backoff_ms", outbox.initial_backoff_ms, true),
    USERSD_KEY("outbox.max_backoff_ms", outbox.max_backoff_ms, true),
    USERSD_KEY("outbox.max_age_seconds", outbox.max_age_seconds, true),
    USERSD_KEY("identity.namespace", identity.namespace_uuid, false),
    USERSD_KEY("sync.metadata.enabled", sync.metadata.enabled, false),
    USERSD_KEY("sync.metadata.prefix", sync.metadata.prefix, false),
    USERSD_KEY("sync.metadata.keys", sync.metadata.keys, false),
    USERSD_KEY("sync.metadata.read_first", sync.metadata.read_first, false),
    USERSD_KEY("sync.reconcile.interval_hours", sync.reconcile.interval_hours, true),
    USERSD_KEY("sync.reconcile.max_cursor_age_days", sync.reconcile.max_cursor_age_days, true),
    USERSD_KEY("sync.reconcile.requests_per_second", sync.reconcile.requests_per_second, true),
    USERSD_KEY("policy.org_admins_manage_members", policy.org_admins_manage_members, true),
    USERSD_KEY("provisioning.jit", provisioning.jit, true),
    USERSD_KEY("log.level", log.level, true),
    USERSD_KEY("log.format", log.format, true),
    USERSD_KEY("metrics.textfile", metrics.textfile, true),
    USERSD_KEY("metrics.textfile_interval_seconds", metrics.textfile_interval_seconds, true),
};

#undef USERSD_KEY

std::string OctalMode(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0%03o", mode & 0777u);
  return buf;
}

}  // namespace

std::optional<std::string> Config::EffectiveJwksUrl() const {
  if (auth.jwks_url) return *auth.jwks_url;
  if (!auth.client_id) return std::nullopt;
  return StripTrailingSlashes(workos.base_url) + "/sso/jwks/" + *auth.client_id;
}

std::vector<std::string> Config::EffectiveIssuers() const {
  if (auth.issuers) return *auth.issuers;
  // WorkOS signs AuthKit tokens with these issuers, also behind a proxy; a
  // WorkOS-compatible server elsewhere signs with its own URL.
  std::vector<std::string> out = {kWorkosIssuer};
  if (auth.client_id) out.push_back(std::string(kWorkosIssuer) + "/user_management/" + *auth.client_id);
  std::string base = StripTrailingSlashes(workos.base_url);
  if (base != kWorkosIssuer) {
    out.push_back(base);
    if (auth.client_id) out.push_back(base + "/user_management/" + *auth.client_id);
  }
  return out;
}

Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source_name) {
  try {
    Config cfg;
    // Counted first, without building nodes, because YAML::LoadAll cannot be
    // used: yaml-cpp 0.7 loops forever allocating on input such as ",{"
    // (jbeder/yaml-cpp#1040, fixed after 0.7 by #1319), and two bounded calls
    // of HandleNextDocument are all a single-document check needs.
    std::istringstream stream(yaml_text);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    if (!parser.HandleNextDocument(counter)) return cfg;  // empty file or only comments
    if (parser.HandleNextDocument(counter)) {
      const YAML::Mark& second = counter.starts().back();
      return Status::InvalidArgument(source_name + ": only one YAML document is allowed (a second starts at line " +
                                     std::to_string(second.is_null() ? 0 : second.line + 1) + ")");
    }
    Loader loader(&cfg);
    loader.Root(YAML::Load(yaml_text));
    if (loader.error_count() > 0) {
      std::string message = source_name + ": ";
      for (size_t i = 0; i < loader.errors().size(); ++i) message += (i ? "; " : "") + loader.errors()[i];
      if (loader.error_count() > loader.errors().size()) {
        message += "; and " + std::to_string(loader.error_count() - loader.errors().size()) + " more errors";
      }
      return Status::InvalidArgument(std::move(message));
    }
    return cfg;
  } catch (const YAML::Exception& e) {
    std::string where = e.mark.is_null() ? std::string()
                                         : " (line " + std::to_string(e.mark.line + 1) + ", column " +
                                               std::to_string(e.mark.column + 1) + ")";
    return Status::InvalidArgument(source_name + ": YAML syntax error" + where + ": " + e.msg);
  } catch (const std::exception& e) {
    return Status::Internal(source_name + ": cannot parse configuration: " + e.what());
  }
}

bool IsLoopbackUrl(const std::string& url) {
  size_t at = url.find("://");
  if (at == std::string::npos) return false;
  std::string_view rest = std::string_view(url).substr(at + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t user = rest.rfind('@'); user != std::string_view::npos) rest.remove_prefix(user + 1);
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    host = std::string(rest.substr(1, close - 1));
    return host == "::1" || host == "0:0:0:0:0:0:0:1";
  }
  host = ToLowerAscii(rest.substr(0, rest.find(':')));
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host == "localhost" || (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0)) return true;
  // 127.0.0.0/8 as a dotted quad of decimal numbers.
  int parts = 0;
  size_t i = 0;
  while (i <= host.size()) {
    size_t end = host.find('.', i);
    if (end == std::string::npos) end = host.size();
    std::string_view part(host.data() + i, end - i);
    if (part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    if (parts == 0 && part != "127") return false;
    if (std::stoi(std::string(part)) > 255) return false;
    ++parts;
    i = end + 1;
  }
  return parts == 4;
}

namespace {

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

const std::vector<KeySpec>& Keys() {
  return kKeys;
}

const KeySpec* FindKey(const std::string& path) {
  for (const KeySpec& k : kKeys)
    if (path == k.path) return &k;
  return nullptr;
}

ReloadPlan PlanReload(const Config& running, const Config& next) {
  ReloadPlan plan{next, {}, {}};
  for (const KeySpec& k : kKeys) {
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

std::string ToYaml(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  auto str = [&](const char* key, const std::string& v) {
    out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  };
  auto opt = [&](const char* key, const std::optional<std::string>& v) {
    out << YAML::Key << key << YAML::Value;
    if (v) {
      out << YAML::DoubleQuoted << *v;
    } else {
      out << YAML::Null;
    }
  };
  auto num = [&](const char* key, int64_t v) { out << YAML::Key << key << YAML::Value << v; };
  auto boolean = [&](const char* key, bool v) {
    out << YAML::Key << key << YAML::Value << YAML::TrueFalseBool << v;
  };
  auto section = [&](const char* key) { out << YAML::Key << key << YAML::Value << YAML::BeginMap; };
  auto ids = [&](const char* key, const std::vector<uint32_t>& v) {
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (uint32_t id : v) out << id;
    out << YAML::EndSeq;
  };
  auto strs = [&](const std::vector<std::string>& v) {
    out << YAML::BeginSeq;
    for (const std::string& s : v) out << YAML::DoubleQuoted << s;
    out << YAML::EndSeq;
  };

  section("socket");
  str("path", c.socket.path);
  str("mode", OctalMode(c.socket.mode));
  opt("group", c.socket.group);
  num("max_line_bytes", static_cast<int64_t>(c.socket.max_line_bytes));
  num("max_connections", c.socket.max_connections);
  num("first_request_timeout_ms", c.socket.first_request_timeout_ms);
  num("idle_timeout_ms", c.socket.idle_timeout_ms);
  num("max_buffered_bytes", static_cast<int64_t>(c.socket.max_buffered_bytes));
  num("max_connections_per_uid", c.socket.max_connections_per_uid);
  out << YAML::EndMap;

  section("admin_socket");
  str("path", c.admin_socket.path);
  str("mode", OctalMode(c.admin_socket.mode));
  ids("allowed_uids", c.admin_socket.allowed_uids);
  ids("allowed_gids", c.admin_socket.allowed_gids);
  str("backup_dir", c.admin_socket.backup_dir);
  out << YAML::EndMap;

  section("store");
  str("path", c.store.path);
  num("map_size_mib", static_cast<int64_t>(c.store.map_size_mib));
  num("max_map_size_mib", static_cast<int64_t>(c.store.max_map_size_mib));
  str("sync_mode", c.store.sync_mode);
  out << YAML::EndMap;

  section("auth");
  opt("client_id", c.auth.client_id);
  opt("jwks_url", c.auth.jwks_url);
  opt("jwks_file", c.auth.jwks_file);
  out << YAML::Key << "issuers" << YAML::Value;
  if (c.auth.issuers) {
    strs(*c.auth.issuers);
  } else {
    out << YAML::Null;
  }
  opt("audience", c.auth.audience);
  out << YAML::Key << "algorithms" << YAML::Value;
  strs(c.auth.algorithms);
  num("leeway_seconds", c.auth.leeway_seconds);
  boolean("require_exp", c.auth.require_exp);
  num("max_token_age_seconds", c.auth.max_token_age_seconds);
  num("jwks_refresh_seconds", c.auth.jwks_refresh_seconds);
  num("jwks_min_refresh_seconds", c.auth.jwks_min_refresh_seconds);
  out << YAML::EndMap;

  section("workos");
  str("base_url", c.workos.base_url);
  opt("api_key", std::nullopt);
  opt("api_key_file", c.workos.api_key_file);
  num("timeout_ms", c.workos.timeout_ms);
  num("max_concurrency", c.workos.max_concurrency);
  num("events_poll_seconds", c.workos.events_poll_seconds);
  num("requests_per_second", c.workos.requests_per_second);
  num("max_queued_requests", c.workos.max_queued_requests);
  boolean("allow_insecure_http", c.workos.allow_insecure_http);
  out << YAML::EndMap;

  section("outbox");
  num("initial_backoff_ms", c.outbox.initial_backoff_ms);
  num("max_backoff_ms", c.outbox.max_backoff_ms);
  num("max_age_seconds", c.outbox.max_age_seconds);
  out << YAML::EndMap;

  section("identity");
  opt("namespace", c.identity.namespace_uuid);
  out << YAML::EndMap;

  section("sync");
  section("metadata");
  boolean("enabled", c.sync.metadata.enabled);
  str("prefix", c.sync.metadata.prefix);
  num("keys", c.sync.metadata.keys);
  str("read_first", c.sync.metadata.read_first);
  out << YAML::EndMap;
  section("reconcile");
  num("interval_hours", c.sync.reconcile.interval_hours);
  num("max_cursor_age_days", c.sync.reconcile.max_cursor_age_days);
  num("requests_per_second", c.sync.reconcile.requests_per_second);
  out << YAML::EndMap;
  out << YAML::EndMap;

  section("policy");
  boolean("org_admins_manage_members", c.policy.org_admins_manage_members);
  out << YAML::EndMap;

  section("provisioning");
  boolean("jit", c.provisioning.jit);
  out << YAML::EndMap;

  section("log");
  str("level", c.log.level);
  str("format", c.log.format);
  out << YAML::EndMap;

  section("metrics");
  opt("textfile", c.metrics.textfile);
  num("textfile_interval_seconds", c.metrics.textfile_interval_seconds);
  out << YAML::EndMap;

  out << YAML::EndMap;
  std::string text(out.c_str(), out.size());
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace usersd::config
