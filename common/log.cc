#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/timefmt.h"

namespace usersd {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
// Held while a line is written, so that lines from different threads do not
// interleave on stderr.
Mutex g_mu;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warn";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "info";
}

bool NeedsQuoting(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  return false;
}

// -1: not decided yet; 0/1: whether stderr is the journal's stream.
std::atomic<int> g_stderr_is_journal{-1};

}  // namespace

bool StderrIsJournal(const char* journal_stream, int fd) {
  // JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected; it is
  // inherited by children whose stderr may be elsewhere, so it counts only
  // when it names the file on `fd` (sd-daemon(3), systemd.exec(5)).
  if (journal_stream == nullptr || *journal_stream == '\0') return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(journal_stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void SetStderrIsJournal(bool is_journal) {
  g_stderr_is_journal = is_journal ? 1 : 0;
}

bool ParseLogLevel(std::string_view name, LogLevel* out) {
  if (name == "error") *out = LogLevel::kError;
  else if (name == "warn" || name == "warning") *out = LogLevel::kWarning;
  else if (name == "info") *out = LogLevel::kInfo;
  else if (name == "debug") *out = LogLevel::kDebug;
  else return false;
  return true;
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
void SetLogFormat(LogFormat format) { g_format = static_cast<int>(format); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed); }

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  std::string line;
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    int journal = g_stderr_is_journal.load(std::memory_order_relaxed);
    if (journal < 0) {
      journal = StderrIsJournal(std::getenv("JOURNAL_STREAM"), STDERR_FILENO) ? 1 : 0;
      g_stderr_is_journal = journal;
    }
    // journald reads the priority only from a leading "<N>"; without it a
    // JSON line lands at priority 6 whatever its level. Elsewhere (a file,
    // a log shipper) the line stays plain JSON.
    if (journal) line = "<" + std::to_string(static_cast<int>(level)) + ">";
    nlohmann::json j;
    j["ts"] = FormatIso8601Ms(SystemClock().NowMs());
    j["level"] = LevelName(level);
    j["msg"] = std::string(message);
    for (const auto& [k, v] : fields) j[std::string(k)] = v;
    line += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = "<" + std::to_string(static_cast<int>(level)) + ">" + std::string(message);
    for (const auto& [k, v] : fields) {
      line += ' ';
      line += k;
      line += '=';
      if (NeedsQuoting(v)) line += nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      else line += v;
    }
  }
  line += '\n';
  MutexLock lock(g_mu);
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

}  // namespace usersd
