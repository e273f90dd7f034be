// ToYaml: the configuration written back as YAML, key by key from the table
// (keys.cc) in its order, each value by its kind's writer; ParseConfig reads
// the text back to the same values. workos.api_key's kind writes null.
#include <string_view>

#include "config/schema.h"

namespace usersd::config {

std::string ToYaml(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  // The sections now open, outermost first ("sync", "metadata").
  std::vector<std::string_view> open;
  for (const KeySpec& key : Keys()) {
    std::vector<std::string_view> parts;
    std::string_view rest = key.path;
    for (size_t dot; (dot = rest.find('.')) != std::string_view::npos; rest.remove_prefix(dot + 1)) {
      parts.push_back(rest.substr(0, dot));
    }
    size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) ++common;
    for (; open.size() > common; open.pop_back()) out << YAML::EndMap;
    for (; open.size() < parts.size(); open.push_back(parts[open.size()])) {
      out << YAML::Key << std::string(parts[open.size()]) << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << std::string(rest) << YAML::Value;
    key.codec->write(out, c);
  }
  for (; !open.empty(); open.pop_back()) out << YAML::EndMap;
  out << YAML::EndMap;
  std::string text(out.c_str(), out.size());
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace usersd::config
