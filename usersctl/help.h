// usersctl's help texts: the main usage and one topic per command and
// subcommand ("users", "users list", ...).
#pragma once

#include <string>

namespace usersd::usersctl {

extern const char* const kMainHelp;

// The help of `topic` ("users list"), or nullptr when there is none.
const char* HelpFor(const std::string& topic);

}  // namespace usersd::usersctl
