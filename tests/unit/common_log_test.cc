// common/log.h: the line formats journald and log readers see (issue 22:
// JSON lines had lost their journal priority, and said "warning" where
// log.level says "warn").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/log.h"
#include "tests/unit/temp_dir.h"

using namespace usersd;

namespace {

// Runs `fn` with stderr sent to a file and returns what it wrote.
template <class Fn>
std::string CaptureStderr(const testing::TempDir& dir, Fn fn) {
  const std::string path = dir / "stderr";
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  close(fd);
  fn();
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RestoreLog {
  ~RestoreLog() {
    SetLogFormat(LogFormat::kText);
    SetLogLevel(LogLevel::kInfo);
    SetStderrIsJournal(false);
  }
};

}  // namespace

TEST_CASE("log: JSON lines carry the journal priority prefix only when stderr is the journal", "[common][log]") {
  testing::TempDir dir;
  RestoreLog restore;
  SetLogFormat(LogFormat::kJson);
  SetLogLevel(LogLevel::kDebug);

  SetStderrIsJournal(true);
  std::string journal = CaptureStderr(dir, [] {
    LogWarn("disk is slow", {{"ms", "120"}});
    LogError("broken");
    LogInfo("ready");
    LogDebug("detail");
  });
  std::istringstream lines(journal);
  std::string line;
  std::vector<std::pair<std::string, std::string>> seen;  // prefix, level
  while (std::getline(lines, line)) {
    REQUIRE(line.size() > 3);
    REQUIRE(line[0] == '<');
    auto close = line.find('>');
    REQUIRE(close != std::string::npos);
    auto j = nlohmann::json::parse(line.substr(close + 1));
    seen.emplace_back(line.substr(0, close + 1), j.at("level").get<std::string>());
  }
  CHECK(seen == std::vector<std::pair<std::string, std::string>>{
                    {"<4>", "warn"}, {"<3>", "error"}, {"<6>", "info"}, {"<7>", "debug"}});

  SetStderrIsJournal(false);
  std::string plain = CaptureStderr(dir, [] { LogWarn("disk is slow", {{"ms", "120"}}); });
  REQUIRE(!plain.empty());
  CHECK(plain.front() == '{');
  auto j = nlohmann::json::parse(plain);
  CHECK(j.at("level") == "warn");
  CHECK(j.at("msg") == "disk is slow");
  CHECK(j.at("ms") == "120");
}

TEST_CASE("log: text lines always start with the priority", "[common][log]") {
  testing::TempDir dir;
  RestoreLog restore;
  SetLogFormat(LogFormat::kText);
  SetStderrIsJournal(false);
  std::string text = CaptureStderr(dir, [] { LogWarn("disk is slow", {{"ms", "120"}}); });
  CHECK(text == "<4>disk is slow ms=120\n");
}

TEST_CASE("log: JOURNAL_STREAM counts only when it names the file on the descriptor", "[common][log]") {
  testing::TempDir dir;
  const std::string path = dir / "f";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  struct stat st;
  REQUIRE(fstat(fd, &st) == 0);
  const std::string same = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  CHECK(StderrIsJournal(same.c_str(), fd));
  CHECK_FALSE(StderrIsJournal(other.c_str(), fd));
  CHECK_FALSE(StderrIsJournal(nullptr, fd));
  CHECK_FALSE(StderrIsJournal("", fd));
  CHECK_FALSE(StderrIsJournal("garbage", fd));
  close(fd);
}
