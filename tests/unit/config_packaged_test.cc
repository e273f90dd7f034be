// Tests for systemd/usersd.yaml, the configuration file the Debian package
// installs as /etc/usersd/usersd.yaml: every key commented out with its
// default value (docs/DEPLOYMENT.md, "Debian package").
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace usersd::config {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A commented-out setting is "#" directly followed by the YAML line: a
// section ("#socket:") or a key indented by two spaces ("#  path: /x").
// Prose comments start with "# " (one space) or "#   " (three, for examples).
const std::regex kCommentedSetting("^#((?:  )*[a-z_]+:( .*)?)$");

std::string Uncomment(const std::string& text, int* settings) {
  std::string out;
  *settings = 0;
  for (const std::string& line : Lines(text)) {
    std::smatch m;
    if (std::regex_match(line, m, kCommentedSetting)) {
      out += m[1].str();
      ++*settings;
    } else {
      out += line;
    }
    out += '\n';
  }
  return out;
}

// The dotted keys of block-style YAML with two-space indentation, the style
// of both ToYaml() and the packaged file ("socket.path", "auth.algorithms"),
// each with its line.
std::map<std::string, std::string> KeyLines(const std::string& yaml) {
  static const std::regex key_line("^( *)([a-z_]+):( .*)?$");
  std::map<std::string, std::string> keys;
  std::vector<std::string> stack;
  for (const std::string& line : Lines(yaml)) {
    std::smatch m;
    if (!std::regex_match(line, m, key_line)) continue;
    size_t depth = m[1].length() / 2;
    stack.resize(depth);
    stack.push_back(m[2].str());
    std::string dotted;
    for (const std::string& part : stack) dotted += (dotted.empty() ? "" : ".") + part;
    keys.emplace(dotted, line);
  }
  return keys;
}

std::set<std::string> DottedKeys(const std::string& yaml) {
  std::set<std::string> keys;
  for (const auto& [key, line] : KeyLines(yaml)) keys.insert(key);
  return keys;
}

std::vector<std::string> ChangedKeys(const Config& a, const Config& b) {
  std::vector<std::string> restart;
  std::vector<std::string> keys = DiffReloadable(a, b, &restart);
  keys.insert(keys.end(), restart.begin(), restart.end());
  return keys;
}

const std::string kPath = std::string(USERSD_SOURCE_DIR) + "/systemd/usersd.yaml";

TEST_CASE("packaged config: as shipped it is valid and gives the defaults", "[config]") {
  std::string text = ReadText(kPath);
  REQUIRE_FALSE(text.empty());
  Result<Config> r = ParseConfig(text, kPath);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(ChangedKeys(Config{}, *r).empty());
}

TEST_CASE(
    "packaged config: every key is there, marked [reload] as the key table says, and uncommented it still gives "
    "the defaults",
    "[config]") {
  int settings = 0;
  std::string uncommented = Uncomment(ReadText(kPath), &settings);
  INFO(uncommented);
  Result<Config> r = ParseConfig(uncommented, kPath + " (uncommented)");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  // Each value written in the file is the default.
  CHECK(ChangedKeys(Config{}, *r).empty());
  // Each key the daemon knows is in the file (ToYaml writes every key, in the
  // same two-space block style), and nothing else is.
  std::set<std::string> expected = DottedKeys(ToYaml(Config{}));
  std::set<std::string> found = DottedKeys(uncommented);
  REQUIRE(expected.size() > 30);
  CHECK(found == expected);
  CHECK(settings == static_cast<int>(expected.size()));
  // The file's header says the keys marked [reload] take effect on a
  // reload: exactly the key table's reloadable ones are marked.
  std::map<std::string, std::string> lines = KeyLines(uncommented);
  for (const KeySpec& key : Keys()) {
    INFO("key: " << key.path);
    REQUIRE(lines.count(key.path) == 1);
    const std::string& line = lines.at(key.path);
    INFO("line: " << line);
    CHECK((line.find("[reload]") != std::string::npos) == key.reloadable);
  }
}

TEST_CASE("packaged config: the commented-setting rule is strict", "[config]") {
  int settings = 0;
  CHECK(Uncomment("# prose: not a key\n#socket:\n#  path: /x\n#   auth: example\n", &settings) ==
        "# prose: not a key\nsocket:\n  path: /x\n#   auth: example\n");
  CHECK(settings == 2);
  CHECK(DottedKeys("a:\n  b: 1\n  c:\n    - x\nd: {}\n") == std::set<std::string>{"a", "a.b", "a.c", "d"});
}

}  // namespace
}  // namespace usersd::config
