// The kinds of value a configuration key holds (schema.h): how each is read
// from a yaml-cpp node, checked, written back by ToYaml and shown in the
// docs. Every message names the dotted key and its line through Errors::At,
// in the words docs/CONFIGURATION.md's "Rules" use; tests match them.
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <utility>

#include "common/text.h"
#include "config/schema.h"

namespace usersd::config::internal {
namespace {

// sun_path includes the terminating NUL, so a usable path is at most 107 bytes.
constexpr size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);

const char* const kTagInt = "tag:yaml.org,2002:int";
const char* const kTagBool = "tag:yaml.org,2002:bool";
const char* const kTagStr = "tag:yaml.org,2002:str";

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

void Errors::At(const Field& f, const std::string& what) {
  Report((f.path.empty() ? std::string("top level") : f.path) + " (line " + std::to_string(f.line) + "): " + what);
}

void Errors::Report(std::string message) {
  if (messages_.size() < kMaxReported) messages_.push_back(std::move(message));
  ++count_;
}

int LineOf(const YAML::Node& key, const YAML::Node& value) {
  int key_line = key.Mark().line;
  if (value.IsNull() || value.Mark().is_null() || value.Mark().line < key_line) return key_line + 1;
  return value.Mark().line + 1;
}

int LineOf(const YAML::Node& node) {
  return node.Mark().is_null() ? 0 : node.Mark().line + 1;
}

namespace {

bool ReadScalar(Errors& e, const Field& f, const char* expected) {
  if (f.node.IsNull()) {
    e.At(f, std::string("must be ") + expected + ", not null");
    return false;
  }
  if (!f.node.IsScalar()) {
    e.At(f, std::string("must be ") + expected + ", not a " + (f.node.IsMap() ? "mapping" : "list"));
    return false;
  }
  return true;
}

}  // namespace

bool ReadInt(Errors& e, const Field& f, int64_t min, int64_t max, int64_t* out) {
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!ReadScalar(e, f, range.c_str())) return false;
  const std::string& tag = f.node.Tag();
  const std::string& s = f.node.Scalar();
  // A quoted "30" is a string in YAML; accepting it would hide a typo such as
  // "30s", so numbers must be written plainly.
  if (tag != "?" && tag != kTagInt) {
    e.At(f, "must be " + range + " written without quotes");
    return false;
  }
  size_t digits_at = (!s.empty() && s[0] == '-') ? 1 : 0;
  bool decimal =
      s.size() > digits_at && std::all_of(s.begin() + digits_at, s.end(), [](char c) { return c >= '0' && c <= '9'; });
  // "010" is octal in YAML 1.1 and decimal in YAML 1.2; refuse the ambiguity.
  bool leading_zero = decimal && s.size() > digits_at + 1 && s[digits_at] == '0';
  if (!decimal || leading_zero) {
    e.At(f, "must be " + range + " (decimal digits, got \"" + s + "\")");
    return false;
  }
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < min || v > max) {
    e.At(f, "must be " + range);
    return false;
  }
  *out = v;
  return true;
}

namespace {

bool ReadString(Errors& e, const Field& f, std::string* out) {
  if (!ReadScalar(e, f, "a string")) return false;
  const std::string& tag = f.node.Tag();
  if (tag != "?" && tag != "!" && tag != kTagStr) {
    e.At(f, "must be a string (unsupported tag " + tag + ")");
    return false;
  }
  if (HasControlChars(f.node.Scalar())) {
    e.At(f, "must not contain control characters");
    return false;
  }
  // Strict UTF-8: yaml-cpp passes invalid bytes through unchanged, and its
  // emitter would rewrite them, so they are refused at the edge.
  if (!IsValidUtf8(f.node.Scalar())) {
    e.At(f, "must be valid UTF-8");
    return false;
  }
  *out = f.node.Scalar();
  return true;
}

void ReadBool(Errors& e, const Field& f, bool* out) {
  if (!ReadScalar(e, f, "true or false")) return;
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
  e.At(f, "must be true or false (a YAML boolean, not a string)");
}

void ReadNonEmptyString(Errors& e, const Field& f, std::string* out) {
  std::string s;
  if (!ReadString(e, f, &s)) return;
  if (s.empty()) {
    e.At(f, "must not be empty");
    return;
  }
  *out = std::move(s);
}

void ReadOptNonEmptyString(Errors& e, const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (!ReadString(e, f, &s)) return;
  if (s.empty()) {
    e.At(f, "must not be empty (use null to unset)");
    return;
  }
  *out = std::move(s);
}

void ReadPath(Errors& e, const Field& f, std::string* out) {
  std::string s;
  if (!ReadString(e, f, &s)) return;
  if (s.empty()) {
    e.At(f, "must be a non-empty path");
    return;
  }
  *out = std::move(s);
}

void ReadOptPath(Errors& e, const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  ReadPath(e, f, &s);
  if (!s.empty()) *out = std::move(s);
}

void ReadSocketPath(Errors& e, const Field& f, std::string* out) {
  std::string s;
  ReadPath(e, f, &s);
  if (s.empty()) return;
  if (s.size() >= kSunPathSize) {
    e.At(f, "must be shorter than " + std::to_string(kSunPathSize) +
                " bytes (the sun_path limit of a Unix socket), got " + std::to_string(s.size()));
    return;
  }
  *out = std::move(s);
}

void ReadAbsolutePath(Errors& e, const Field& f, std::string* out) {
  std::string s;
  ReadPath(e, f, &s);
  if (s.empty()) return;
  if (s[0] != '/') {
    e.At(f, "must be an absolute path");
    return;
  }
  // "." and ".." would make "below this directory" mean something else than
  // it reads.
  for (size_t at = 0; at < s.size();) {
    size_t end = s.find('/', at);
    if (end == std::string::npos) end = s.size();
    std::string_view part(s.data() + at, end - at);
    if (part == "." || part == "..") {
      e.At(f, "must not contain \".\" or \"..\" components");
      return;
    }
    at = end + 1;
  }
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  *out = std::move(s);
}

bool ReadUrl(Errors& e, const Field& f, std::string* out) {
  std::string s;
  if (!ReadString(e, f, &s)) return false;
  size_t host_at;
  if (s.rfind("https://", 0) == 0) {
    host_at = 8;
  } else if (s.rfind("http://", 0) == 0) {
    host_at = 7;
  } else {
    e.At(f, "must be a URL starting with http:// or https://");
    return false;
  }
  if (s.size() == host_at || s[host_at] == '/') {
    e.At(f, "must be a URL with a host after the scheme");
    return false;
  }
  if (std::any_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '#'; })) {
    e.At(f, "must be a URL without spaces or a #fragment");
    return false;
  }
  *out = std::move(s);
  return true;
}

void ReadOptUrl(Errors& e, const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (ReadUrl(e, f, &s)) *out = std::move(s);
}

void ReadEnum(Errors& e, const Field& f, const std::vector<std::string>& allowed, std::string* out) {
  std::string s;
  if (!ReadString(e, f, &s)) return;
  std::string list;
  for (const std::string& a : allowed) {
    if (s == a) {
      *out = std::move(s);
      return;
    }
    list += list.empty() ? "" : ", ";
    list += a;
  }
  e.At(f, "must be one of " + list + " (got \"" + s + "\")");
}

void ReadMode(Errors& e, const Field& f, uint32_t* out) {
  static const char* const kWhat = "must be an octal permission string like \"0660\"";
  if (!ReadScalar(e, f, "an octal permission string like \"0660\"")) return;
  const std::string& tag = f.node.Tag();
  std::string s = f.node.Scalar();
  if (tag != "?" && tag != "!" && tag != kTagStr && tag != kTagInt) {
    e.At(f, kWhat);
    return;
  }
  // A plain 0660 reaches us as the text "0660": read it as octal, which is
  // what every reader of a permission means. "0o660" is YAML 1.2's spelling.
  if (s.rfind("0o", 0) == 0) s.erase(0, 2);
  bool octal =
      !s.empty() && s.size() <= 6 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!octal) {
    e.At(f, kWhat);
    return;
  }
  uint32_t v = 0;
  for (char c : s) v = v * 8 + static_cast<uint32_t>(c - '0');
  if (v > 0777) {
    e.At(f, std::string(kWhat) + " and at most 0777");
    return;
  }
  *out = v;
}

void ReadGroup(Errors& e, const Field& f, std::optional<std::string>* out) {
  static const char* const kWhat = "must be a group name or numeric gid";
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  if (!ReadScalar(e, f, "a group name or numeric gid")) return;
  const std::string& tag = f.node.Tag();
  std::string s = f.node.Scalar();
  if ((tag != "?" && tag != "!" && tag != kTagStr && tag != kTagInt) || HasControlChars(s) || !IsValidUtf8(s)) {
    e.At(f, kWhat);
    return;
  }
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t gid = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), gid);
    // (gid_t)-1 means "no change" to chown(), so it cannot name a group.
    if (ec != std::errc() || gid >= 0xffffffffu) {
      e.At(f, "must be a numeric gid below 4294967295");
      return;
    }
    *out = std::to_string(gid);
    return;
  }
  bool valid_name = !s.empty() && s.size() <= 256 && s[0] != '-' && std::none_of(s.begin(), s.end(), [](char c) {
    return c == ':' || c == '/' || c == ',' || IsBlank(c);
  });
  if (!valid_name) {
    e.At(f, kWhat);
    return;
  }
  *out = std::move(s);
}

void ReadIdList(Errors& e, const Field& f, std::vector<uint32_t>* out) {
  if (f.node.IsNull()) {
    out->clear();
    return;
  }
  if (!f.node.IsSequence()) {
    e.At(f, "must be a list of numeric ids, like [0, 1000]");
    return;
  }
  std::vector<uint32_t> ids;
  size_t i = 0;
  bool ok = true;
  for (const YAML::Node& item : f.node) {
    int64_t v;
    Field itf{f.path + "[" + std::to_string(i) + "]", item, std::max(f.line, LineOf(item))};
    if (ReadInt(e, itf, 0, 4294967294LL, &v)) {
      ids.push_back(static_cast<uint32_t>(v));
    } else {
      ok = false;
    }
    ++i;
  }
  if (ok) *out = std::move(ids);
}

void ReadOptUuid(Errors& e, const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (!ReadString(e, f, &s)) return;
  bool ok = s.size() == 36;
  for (size_t i = 0; ok && i < s.size(); ++i) {
    char ch = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) ok = ch == '-';
    else ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
  }
  if (!ok) {
    e.At(f, "must be a UUID (8-4-4-4-12 hex digits) or null");
    return;
  }
  for (char& ch : s) ch = (ch >= 'A' && ch <= 'F') ? static_cast<char>(ch - 'A' + 'a') : ch;
  *out = std::move(s);
}

void ReadMetadataPrefix(Errors& e, const Field& f, std::string* out) {
  std::string s;
  if (!ReadString(e, f, &s)) return;
  // The chunk keys are {prefix}0..{prefix}9: WorkOS allows keys of 40 ASCII
  // characters; a narrow alphabet keeps them from clashing with JSON or URLs.
  bool ok = !s.empty() && s.size() <= 30 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  if (!ok) {
    e.At(f, "must be 1 to 30 ASCII letters, digits, '_' or '-'");
    return;
  }
  *out = std::move(s);
}

void ReadClientId(Errors& e, const Field& f, std::optional<std::string>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  std::string s;
  if (!ReadString(e, f, &s)) return;
  // The id is pasted into URLs and issuer strings, so keep it to the
  // characters WorkOS uses ("client_01H...").
  bool ok = !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
  if (!ok) {
    e.At(f, "must be a WorkOS client id of letters, digits, '_', '-' or '.'");
    return;
  }
  *out = std::move(s);
}

void ReadIssuers(Errors& e, const Field& f, std::optional<std::vector<std::string>>* out) {
  if (f.node.IsNull()) {
    out->reset();
    return;
  }
  if (!f.node.IsSequence()) {
    e.At(f, "must be a list of issuer strings, or null for the WorkOS defaults");
    return;
  }
  if (f.node.size() == 0) {
    e.At(f, "must not be empty (use null for the WorkOS defaults)");
    return;
  }
  std::vector<std::string> issuers;
  size_t i = 0;
  bool ok = true;
  for (const YAML::Node& item : f.node) {
    Field itf{f.path + "[" + std::to_string(i++) + "]", item, std::max(f.line, LineOf(item))};
    std::string s;
    ReadNonEmptyString(e, itf, &s);
    if (s.empty()) {
      ok = false;
    } else {
      issuers.push_back(std::move(s));
    }
  }
  if (ok) *out = std::move(issuers);
}

void ReadAlgorithms(Errors& e, const Field& f, std::vector<std::string>* out) {
  if (!f.node.IsSequence()) {
    e.At(f, "must be a list such as [RS256]");
    return;
  }
  if (f.node.size() == 0) {
    e.At(f, "must list at least one of RS256, RS384, RS512");
    return;
  }
  std::vector<std::string> algs;
  size_t i = 0;
  bool ok = true;
  for (const YAML::Node& item : f.node) {
    Field itf{f.path + "[" + std::to_string(i++) + "]", item, std::max(f.line, LineOf(item))};
    std::string s;
    if (!ReadString(e, itf, &s)) {
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
      e.At(itf, "\"" + s + "\" is refused: it would accept unsigned tokens; use RS256, RS384 or RS512");
    } else if (upper.rfind("HS", 0) == 0) {
      e.At(itf,
           "\"" + s + "\" is refused: HMAC with a public JWKS key lets anyone forge tokens; use RS256, RS384 or RS512");
    } else {
      e.At(itf, "unsupported algorithm \"" + s + "\"; use RS256, RS384 or RS512");
    }
  }
  if (ok) *out = std::move(algs);
}

std::string OctalMode(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0%03o", mode & 0777u);
  return buf;
}

// The writers are those ToYaml has always used: strings double-quoted (so
// "0660", "true" or "null" stay strings), lists of ids in flow style.
void WriteString(YAML::Emitter& out, const std::string& v) {
  out << YAML::DoubleQuoted << v;
}

void WriteOptString(YAML::Emitter& out, const std::optional<std::string>& v) {
  if (v) {
    out << YAML::DoubleQuoted << *v;
  } else {
    out << YAML::Null;
  }
}

void WriteStrings(YAML::Emitter& out, const std::vector<std::string>& v) {
  out << YAML::BeginSeq;
  for (const std::string& s : v) out << YAML::DoubleQuoted << s;
  out << YAML::EndSeq;
}

std::string ShowString(const std::string& v) {
  return v;
}
std::string ShowOptString(const std::optional<std::string>& v) {
  return v ? *v : "null";
}

template <class T>
std::string ShowList(const std::vector<T>& v) {
  std::string out = "[";
  for (const T& item : v) {
    if (out.size() > 1) out += ", ";
    if constexpr (std::is_same_v<T, std::string>) {
      out += item;
    } else {
      out += std::to_string(item);
    }
  }
  return out + "]";
}

Kind<std::string> StringKind(std::string type, std::function<void(Errors&, const Field&, std::string*)> read) {
  return {std::move(type), std::move(read), &WriteString, &ShowString};
}

Kind<std::optional<std::string>> OptStringKind(std::string type,
                                               void (*read)(Errors&, const Field&, std::optional<std::string>*)) {
  return {std::move(type), read, &WriteOptString, &ShowOptString};
}

}  // namespace

Kind<bool> Boolean() {
  return {"boolean", &ReadBool, [](YAML::Emitter& out, const bool& v) { out << YAML::TrueFalseBool << v; },
          [](const bool& v) { return std::string(v ? "true" : "false"); }};
}

Kind<std::string> Path() {
  return StringKind("path", &ReadPath);
}
Kind<std::string> SocketPath() {
  return StringKind("path", &ReadSocketPath);
}
Kind<std::string> AbsolutePath() {
  return StringKind("absolute path", &ReadAbsolutePath);
}

Kind<std::string> BaseUrl() {
  return StringKind("URL", [](Errors& e, const Field& f, std::string* out) {
    std::string url;
    if (ReadUrl(e, f, &url)) *out = StripTrailingSlashes(url);
  });
}

Kind<std::string> Choice(std::vector<std::string> allowed) {
  std::string type;
  for (const std::string& a : allowed) type += (type.empty() ? "`" : " / `") + a + "`";
  return StringKind(type, [allowed](Errors& e, const Field& f, std::string* out) { ReadEnum(e, f, allowed, out); });
}

Kind<std::string> MetadataPrefix() {
  return StringKind("1 \u2026 30 of `A-Z a-z 0-9 _ -`", &ReadMetadataPrefix);
}

Kind<std::optional<std::string>> OptPath() {
  return OptStringKind("path, nullable", &ReadOptPath);
}
Kind<std::optional<std::string>> OptUrl() {
  return OptStringKind("URL, nullable", &ReadOptUrl);
}
Kind<std::optional<std::string>> OptString() {
  return OptStringKind("string, nullable", &ReadOptNonEmptyString);
}
Kind<std::optional<std::string>> ClientId() {
  return OptStringKind("string, nullable", &ReadClientId);
}
Kind<std::optional<std::string>> Uuid() {
  return OptStringKind("UUID, nullable", &ReadOptUuid);
}
Kind<std::optional<std::string>> Group() {
  return OptStringKind("string or integer, nullable", &ReadGroup);
}

Kind<std::optional<std::string>> Secret() {
  Kind<std::optional<std::string>> kind = OptString();
  // The dump is printed by --check-config and may be logged.
  kind.write = [](YAML::Emitter& out, const std::optional<std::string>&) { out << YAML::Null; };
  kind.show = [](const std::optional<std::string>& v) { return std::string(v ? "(set)" : "null"); };
  return kind;
}

Kind<uint32_t> Mode() {
  return {"octal mode", &ReadMode, [](YAML::Emitter& out, const uint32_t& v) { WriteString(out, OctalMode(v)); },
          [](const uint32_t& v) { return "\"" + OctalMode(v) + "\""; }};
}

Kind<std::vector<uint32_t>> IdList() {
  return {"list of integers 0 \u2026 4294967294", &ReadIdList,
          [](YAML::Emitter& out, const std::vector<uint32_t>& v) {
            out << YAML::Flow << YAML::BeginSeq;
            for (uint32_t id : v) out << id;
            out << YAML::EndSeq;
          },
          &ShowList<uint32_t>};
}

Kind<std::optional<std::vector<std::string>>> Issuers() {
  using T = std::optional<std::vector<std::string>>;
  return {"list of strings, nullable", &ReadIssuers,
          [](YAML::Emitter& out, const T& v) {
            if (v) {
              WriteStrings(out, *v);
            } else {
              out << YAML::Null;
            }
          },
          [](const T& v) { return v ? ShowList(*v) : std::string("null"); }};
}

Kind<std::vector<std::string>> Algorithms() {
  return {"list of `RS256` / `RS384` / `RS512`", &ReadAlgorithms, &WriteStrings, &ShowList<std::string>};
}

}  // namespace usersd::config::internal
