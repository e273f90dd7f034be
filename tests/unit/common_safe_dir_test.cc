// common/safe_dir.h: directories below a trusted root, without following
// symlinks below it (admin.backup's confinement, issue 21 item 6).
#include "common/safe_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/unit/temp_dir.h"

namespace usersd {
namespace {

namespace fs = std::filesystem;
using usersd::testing::TempDir;

TEST_CASE("safe dir: IsPathBelow compares components, not prefixes", "[common]") {
  CHECK(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd/backups"));
  CHECK(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd/backups/"));
  CHECK(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd/backups/2026//nightly"));
  CHECK(IsPathBelow("/", "/anything"));
  CHECK_FALSE(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd/backups2"));
  CHECK_FALSE(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd"));
  CHECK_FALSE(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd/backups/../../../etc"));
  CHECK_FALSE(IsPathBelow("/var/lib/usersd/backups", "/var/lib/usersd/backups/./x"));
  CHECK_FALSE(IsPathBelow("/var/lib/usersd/backups", "backups/x"));
  CHECK_FALSE(IsPathBelow("backups", "backups/x"));
}

TEST_CASE("safe dir: OpenDirBelow creates what is missing, 0700, root included", "[common]") {
  TempDir dir;
  std::string root = dir.sub("state/backups");
  mode_t old = ::umask(0);
  auto fd = OpenDirBelow(root, root + "/2026/nightly");
  ::umask(old);
  INFO(fd.status().ToString());
  REQUIRE(fd.ok());
  ::close(*fd);
  for (const std::string& p : {root, root + "/2026", root + "/2026/nightly"}) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    INFO(p);
    CHECK((st.st_mode & 0777) == 0700);
  }
  auto again = OpenDirBelow(root, root + "/2026/nightly");
  REQUIRE(again.ok());
  ::close(*again);
}

TEST_CASE("safe dir: a symlink below the root is refused, not followed; the root itself may be one", "[common]") {
  TempDir dir;
  fs::create_directories(dir.sub("real-root"));
  fs::create_directories(dir.sub("elsewhere"));
  fs::create_directory_symlink(dir.sub("real-root"), dir.sub("root"));
  std::string root = dir.sub("root");
  fs::create_directory_symlink(dir.sub("elsewhere"), dir.sub("real-root/escape"));
  auto through = OpenDirBelow(root, root + "/escape/deeper");
  REQUIRE_FALSE(through.ok());
  CHECK(through.status().code() == Code::kInvalidArgument);
  CHECK_THAT(through.status().message(), Catch::Contains("escape"));
  CHECK_FALSE(fs::exists(dir.sub("elsewhere/deeper")));
  auto ok = OpenDirBelow(root, root + "/fine");
  REQUIRE(ok.ok());
  ::close(*ok);
  CHECK(fs::is_directory(dir.sub("real-root/fine")));
  auto outside = OpenDirBelow(root, dir.sub("elsewhere"));
  CHECK(outside.status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace usersd
