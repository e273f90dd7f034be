#include "common/safe_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace usersd {

namespace {

// The non-empty components of an absolute path; nullopt-like false when one
// is "." or "..".
bool Components(const std::string& path, std::vector<std::string>* out) {
  out->clear();
  size_t at = 0;
  while (at < path.size()) {
    size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    if (end > at) {
      std::string part = path.substr(at, end - at);
      if (part == "." || part == "..") return false;
      out->push_back(std::move(part));
    }
    at = end + 1;
  }
  return true;
}

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// mkdir -p with mode 0700 for what is missing (the root: symlinks followed).
Status MakeRoot(const std::string& root) {
  std::vector<std::string> parts;
  if (!Components(root, &parts)) return Status::InvalidArgument("backup directory " + root + " is not normalised");
  std::string at;
  for (const auto& p : parts) {
    at += "/" + p;
    if (::mkdir(at.c_str(), 0700) != 0 && errno != EEXIST) return Status::IOError(Errno("cannot create " + at));
  }
  return Status::Ok();
}

}  // namespace

bool IsPathBelow(const std::string& root, const std::string& path) {
  if (root.empty() || root[0] != '/' || path.empty() || path[0] != '/') return false;
  std::vector<std::string> r, p;
  if (!Components(root, &r) || !Components(path, &p)) return false;
  if (p.size() < r.size()) return false;
  for (size_t i = 0; i < r.size(); ++i)
    if (r[i] != p[i]) return false;
  return true;
}

Result<int> OpenDirBelow(const std::string& root, const std::string& path) {
  if (!IsPathBelow(root, path)) return Status::InvalidArgument(path + " is not below " + root);
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    USERSD_RETURN_IF_ERROR(MakeRoot(root));
    fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (fd < 0) return Status::IOError(Errno("cannot open " + root));
  std::vector<std::string> r, p;
  Components(root, &r);
  Components(path, &p);
  std::string at = root;
  for (size_t i = r.size(); i < p.size(); ++i) {
    at += "/" + p[i];
    int next = ::openat(fd, p[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT) {
      if (::mkdirat(fd, p[i].c_str(), 0700) != 0 && errno != EEXIST) {
        Status st = Status::IOError(Errno("cannot create " + at));
        ::close(fd);
        return st;
      }
      next = ::openat(fd, p[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      // ELOOP: a symlink; ENOTDIR: a file (or a symlink, on some kernels).
      Status st = errno == ELOOP || errno == ENOTDIR ? Status::InvalidArgument(at + " is a symlink or not a directory")
                                                     : Status::IOError(Errno("cannot open " + at));
      ::close(fd);
      return st;
    }
    ::close(fd);
    fd = next;
  }
  return fd;
}

}  // namespace usersd
