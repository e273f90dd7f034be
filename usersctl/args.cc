#include "usersctl/args.h"

#include <errno.h>

#include <algorithm>
#include <cstdlib>

#include "usersctl/client.h"

namespace usersd::usersctl {

Args ParseArgs(const std::vector<std::string>& in, const std::string& topic, std::vector<std::string> value_flags,
               std::vector<std::string> bool_flags, size_t max_positional) {
  Args a;
  auto is = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  for (size_t i = 0; i < in.size(); ++i) {
    std::string s = in[i];
    if (s.size() > 2 && s.rfind("--", 0) == 0) {
      std::string name = s, value;
      bool has_value = false;
      if (auto eq = s.find('='); eq != std::string::npos) {
        name = s.substr(0, eq);
        value = s.substr(eq + 1);
        has_value = true;
      }
      if (is(value_flags, name)) {
        if (!has_value) {
          if (i + 1 >= in.size()) UsageError(name + " needs a value", topic);
          value = in[++i];
        }
        a.values[name] = value;
      } else if (is(bool_flags, name) && !has_value) {
        a.flags[name] = true;
      } else {
        UsageError("unknown option " + name + " for '" + topic + "'", topic);
      }
    } else if (s == "--") {
      for (++i; i < in.size(); ++i) a.positional.push_back(in[i]);
    } else {
      a.positional.push_back(s);
    }
  }
  if (a.positional.size() > max_positional)
    UsageError("unexpected argument '" + a.positional[max_positional] + "' for '" + topic + "'", topic);
  return a;
}

int64_t ParseInt(const std::string& s, const std::string& what, const std::string& topic, int64_t min, int64_t max) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < min || v > max)
    UsageError(what + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max), topic);
  return v;
}

}  // namespace usersd::usersctl
