// Logging to stderr in a journald-friendly form.
//
// Text format prefixes each line with the syslog priority ("<6>"), which
// journald turns into the entry's level; JSON format writes one object per
// line. Callers pass structured fields; never pass a token or an API key.
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
