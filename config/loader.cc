// ParseConfig: yaml-cpp builds a node tree; the loader walks it against the
// key table (keys.cc), so that every unknown key, duplicate key and bad value
// becomes a message naming the dotted key and its 1-based line, and then runs
// the rules between keys. yaml-cpp exceptions never leave this file.
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <string_view>
#include <utility>

#include "config/schema.h"

namespace usersd::config {
namespace {

using internal::Errors;
using internal::Field;
using internal::LineOf;

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

// The key table as the file nests it: "sync.metadata.prefix" is the key
// "prefix" in the section "metadata" of the section "sync". Children keep
// the table's order.
struct SchemaNode {
  std::string name;
  const KeySpec* key = nullptr;  // set for a key, null for a section
  std::vector<SchemaNode> children;
};

SchemaNode BuildTree() {
  SchemaNode root;
  for (const KeySpec& key : Keys()) {
    SchemaNode* at = &root;
    std::string_view rest = key.path;
    for (size_t dot; (dot = rest.find('.')) != std::string_view::npos; rest.remove_prefix(dot + 1)) {
      const std::string section(rest.substr(0, dot));
      auto it = std::find_if(at->children.begin(), at->children.end(),
                             [&](const SchemaNode& n) { return n.name == section; });
      if (it == at->children.end()) it = at->children.insert(at->children.end(), SchemaNode{section, nullptr, {}});
      at = &*it;
    }
    at->children.push_back(SchemaNode{std::string(rest), &key, {}});
  }
  return root;
}

const SchemaNode& Tree() {
  static const SchemaNode tree = BuildTree();
  return tree;
}

// Walks one parsed document. Collects every error rather than stopping at the
// first, so `usersd --check-config` shows all of them at once.
class Loader {
 public:
  explicit Loader(Config* cfg) : cfg_(cfg) {}

  const Errors& errors() const { return errors_; }

  void Root(const YAML::Node& root) {
    Section(Field{"", root, LineOf(root)}, Tree());
    for (const internal::Rule& rule : internal::Rules()) rule.check(internal::RuleContext(*cfg_, lines_, &errors_));
  }

 private:
  // Iterates the mapping `f.node`, dispatching each key to its key or
  // section. A null section ("socket:" with every child commented out)
  // keeps the defaults.
  void Section(const Field& f, const SchemaNode& schema);

  Config* cfg_;
  Errors errors_;
  std::map<std::string, int> lines_;  // dotted key -> 1-based line, for keys present
};

void Loader::Section(const Field& f, const SchemaNode& schema) {
  if (f.node.IsNull()) return;
  if (!f.node.IsMap()) {
    errors_.At(f, f.path.empty() ? "must be a mapping of sections (socket:, auth:, ...)" : "must be a mapping of keys");
    return;
  }
  const std::vector<SchemaNode>& entries = schema.children;
  std::map<std::string, int> seen;
  for (auto it = f.node.begin(); it != f.node.end(); ++it) {
    // Copies, not references: the iterator's operator-> returns a temporary
    // pair, so a reference to its members dangles at the end of the statement.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    const std::string prefix = f.path.empty() ? "" : f.path + ".";
    if (!key.IsScalar()) {
      errors_.Report((f.path.empty() ? std::string("top level") : f.path) + " (line " + std::to_string(LineOf(key)) +
                     "): keys must be plain strings");
      continue;
    }
    const std::string name = key.Scalar();
    const std::string path = prefix + name;
    const int key_line = LineOf(key);
    auto [pos, inserted] = seen.emplace(name, key_line);
    if (!inserted) {
      errors_.Report("duplicate key \"" + path + "\" (line " + std::to_string(key_line) + "; first at line " +
                     std::to_string(pos->second) + ")");
      continue;
    }
    auto entry = std::find_if(entries.begin(), entries.end(), [&](const SchemaNode& e) { return name == e.name; });
    if (entry == entries.end()) {
      std::string message = "unknown key \"" + path + "\" (line " + std::to_string(key_line) + ")";
      const SchemaNode* best = nullptr;
      size_t best_distance = 0;
      for (const SchemaNode& e : entries) {
        size_t d = EditDistance(name, e.name);
        if (best == nullptr || d < best_distance) {
          best = &e;
          best_distance = d;
        }
      }
      if (best != nullptr && best_distance <= std::max<size_t>(2, name.size() / 4)) {
        message += "; did you mean \"" + prefix + best->name + "\"?";
      }
      errors_.Report(std::move(message));
      continue;
    }
    Field child{path, value, LineOf(key, value)};
    lines_[path] = child.line;
    if (entry->key != nullptr) {
      entry->key->codec->read(errors_, child, cfg_);
    } else {
      Section(child, *entry);
    }
  }
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

}  // namespace

namespace internal {

void RuleContext::Error(const std::string& path, const std::string& what) const {
  auto it = lines_.find(path);
  if (it != lines_.end()) {
    errors_->At(Field{path, YAML::Node(), it->second}, what);
  } else {
    errors_->Report(path + ": " + what);
  }
}

}  // namespace internal

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
    const Errors& errors = loader.errors();
    if (errors.count() > 0) {
      std::string message = source_name + ": ";
      for (size_t i = 0; i < errors.messages().size(); ++i) message += (i ? "; " : "") + errors.messages()[i];
      if (errors.count() > errors.messages().size()) {
        message += "; and " + std::to_string(errors.count() - errors.messages().size()) + " more errors";
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

}  // namespace usersd::config
