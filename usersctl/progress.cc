#include "usersctl/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "usersctl/client.h"
#include "usersctl/output.h"

namespace usersd::usersctl {

namespace {

constexpr int64_t kRedrawMs = 100;
constexpr double kMinRateSec = 0.2;

// The line on stderr that is drawn but not yet ended, and its width (a
// shorter redraw pads with spaces over the rest).
bool g_line_open = false;
size_t g_line_width = 0;

std::string Amount(double v, Unit unit) {
  if (unit == Unit::kBytes) return Bytes(v);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// A rate: whole counts per second, or one decimal under 10/s.
std::string Rate(double v, Unit unit) {
  if (unit == Unit::kBytes || v >= 10) return Amount(v, unit) + "/s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f/s", v);
  return buf;
}

}  // namespace

std::string FormatProgress(const std::string& label, uint64_t done, std::optional<uint64_t> total,
                           double elapsed_sec, Unit unit, const std::string& noun, bool done_line) {
  std::string s = label + ": " + Amount(static_cast<double>(done), unit);
  if (total) s += " of " + Amount(static_cast<double>(*total), unit);
  if (unit == Unit::kCount && !noun.empty()) s += " " + noun;
  if (total && *total > 0) {
    // More than the total happens when users are added during an export.
    uint64_t pct = std::min<uint64_t>(100, done * 100 / *total);
    s += " (" + std::to_string(pct) + "%)";
  }
  // Nothing done yet (a slow first answer) has no rate worth showing.
  double rate = elapsed_sec >= kMinRateSec ? static_cast<double>(done) / elapsed_sec : 0;
  if (rate > 0) s += ", " + Rate(rate, unit);
  int64_t secs = static_cast<int64_t>(elapsed_sec);
  if (done_line) {
    if (elapsed_sec < 10) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1fs", elapsed_sec);
      s += std::string(", done in ") + buf;
    } else {
      s += ", done in " + Duration(secs);
    }
    return s;
  }
  s += ", " + Duration(secs) + " elapsed";
  if (total && rate > 0 && done < *total) {
    double left = static_cast<double>(*total - done) / rate;
    s += ", ETA " + Duration(static_cast<int64_t>(left + 0.5));
  }
  return s;
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

void EndProgressLine() {
  if (!g_line_open) return;
  std::fputc('\n', stderr);
  std::fflush(stderr);
  g_line_open = false;
  g_line_width = 0;
}

Progress::Progress(bool enabled, std::string label, Unit unit, std::string noun)
    : enabled_(enabled), label_(std::move(label)), unit_(unit), noun_(std::move(noun)), start_ms_(NowMs()) {}

Progress::~Progress() {
  if (enabled_) EndProgressLine();
}

double Progress::Elapsed() const { return static_cast<double>(NowMs() - start_ms_) / 1000.0; }

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  int64_t now = NowMs();
  if (last_draw_ms_ >= 0 && now - last_draw_ms_ < kRedrawMs) return;
  last_draw_ms_ = now;
  Draw(FormatProgress(label_, done, total_, Elapsed(), unit_, noun_, false));
}

void Progress::Finish(uint64_t done) {
  if (!enabled_) return;
  Draw(FormatProgress(label_, done, total_, Elapsed(), unit_, noun_, true));
  EndProgressLine();
}

void Progress::Text(const std::string& text, bool force) {
  if (!enabled_) return;
  int64_t now = NowMs();
  if (!force && last_draw_ms_ >= 0 && now - last_draw_ms_ < kRedrawMs) return;
  last_draw_ms_ = now;
  Draw(text);
}

void Progress::Draw(const std::string& text) {
  size_t w = Width(text);
  std::string line = "\r" + text;
  if (g_line_open && g_line_width > w) line += std::string(g_line_width - w, ' ');
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  g_line_open = true;
  g_line_width = w;
}

}  // namespace usersd::usersctl
