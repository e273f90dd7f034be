// OpenDirBelow: a directory below a trusted root, opened without following
// symlinks below the root (admin.backup's confinement, issue 21).
//
// Thread-safe (no shared state); blocking file-system calls, so callers on
// the loop thread run it on the thread pool.
#pragma once

#include <string>

#include "common/status.h"

namespace usersd {

// Whether absolute `path` is `root` or lies below it, by its text: both
// absolute, no "." or ".." component in `path`, duplicate and trailing
// slashes ignored. No file-system access.
bool IsPathBelow(const std::string& root, const std::string& path);

// Opens directory `path` (IsPathBelow(root, path) must hold, else
// InvalidArgument) and returns an O_DIRECTORY | O_CLOEXEC descriptor the
// caller closes. `root` is opened as configured, created with its missing
// parents (mode 0700) when absent; it may be a symlink, since the operator
// chose it. Each component below it is opened relative to its parent with
// O_NOFOLLOW and created with mode 0700 when missing, so a symlink placed
// anywhere below the root, before or during the call, is refused
// (InvalidArgument naming it) instead of followed. Other errors are IOError.
Result<int> OpenDirBelow(const std::string& root, const std::string& path);

}  // namespace usersd
