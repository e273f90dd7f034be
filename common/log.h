// Logging to stderr in a journald-friendly form.
//
// Text format prefixes each line with the syslog priority ("<6>"), which
// journald turns into the entry's level; JSON format writes one object per
// line ({"ts", "level", "msg", fields...}, level spelled as log.level spells
// it: error, warn, info, debug), with the same "<N>" prefix only when stderr
// is the journal's stream (JOURNAL_STREAM), so that journald keeps the
// priority and a JSON reader elsewhere sees plain JSON. Callers pass
// structured fields; never pass a token or an API key.
// Thread-safe: one process-wide sink guarded by a mutex.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace usersd {

enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };
enum class LogFormat { kText, kJson };

// Parses "error", "warn"/"warning", "info", "debug".
bool ParseLogLevel(std::string_view name, LogLevel* out);

// True when JOURNAL_STREAM ("DEVICE:INODE", as systemd sets it) names the
// file open on `fd`.
bool StderrIsJournal(const char* journal_stream, int fd);
// Overrides the check of JOURNAL_STREAM against stderr that the first JSON
// line makes (tests).
void SetStderrIsJournal(bool is_journal);

void SetLogLevel(LogLevel level);
void SetLogFormat(LogFormat format);
bool LogEnabled(LogLevel level);

using LogField = std::pair<std::string_view, std::string>;
void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

inline void LogError(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kError, m, f); }
inline void LogWarn(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kWarning, m, f); }
inline void LogInfo(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogDebug(std::string_view m, std::initializer_list<LogField> f = {}) {
  if (LogEnabled(LogLevel::kDebug)) Log(LogLevel::kDebug, m, f);
}

}  // namespace usersd
