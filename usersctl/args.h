// usersctl's argument parsing for one subcommand.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace usersd::usersctl {

// The arguments of one subcommand: flags with values, boolean flags and
// positionals, checked against what the subcommand accepts.
struct Args {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> flags;
  std::vector<std::string> positional;
};

// Parses `in` ("--flag value", "--flag=value", "--bool", positionals, "--"
// ending the flags). Anything the subcommand does not accept, or more than
// `max_positional` positionals, is a usage error naming `topic` (exits 2).
Args ParseArgs(const std::vector<std::string>& in, const std::string& topic, std::vector<std::string> value_flags,
               std::vector<std::string> bool_flags, size_t max_positional);

// `s` as an integer in [min, max], or a usage error about `what` (exits 2).
int64_t ParseInt(const std::string& s, const std::string& what, const std::string& topic, int64_t min, int64_t max);

}  // namespace usersd::usersctl
