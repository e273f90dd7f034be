// Progress lines for the long usersctl commands (users import, users
// export, backup, users resync --all --wait): one line on stderr, redrawn
// in place with "\r", only when stderr is a terminal and --json is off, so
// scripts and pipes see exactly the output they saw before.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace usersd::usersctl {

enum class Unit { kCount, kBytes };

// The text of one progress line, e.g.
//   "import: 250000 of 1000000 users (25%), 41203/s, 6s elapsed, ETA 18s"
//   "backup: 1.2 GiB, 85.0 MiB/s, 14s elapsed"
// `noun` follows counts ("users"); bytes have their own unit. `done_line`
// ends with "done in ..." instead of the elapsed time and ETA. The rate is
// the average since the start, left out in the first 0.2 s and while
// nothing is done.
std::string FormatProgress(const std::string& label, uint64_t done, std::optional<uint64_t> total,
                           double elapsed_sec, Unit unit, const std::string& noun, bool done_line);

// Whether stderr is a terminal (progress lines are wanted there).
bool StderrIsTerminal();

// Ends an open progress line with "\n", so that a message that follows
// (Die's) starts on a line of its own. Does nothing when none is open.
void EndProgressLine();

// One progress display. Disabled, every method does nothing. Single
// threaded; at most one is drawing at a time (the last one to draw owns the
// line). The destructor ends a line left open.
class Progress {
 public:
  Progress(bool enabled, std::string label, Unit unit, std::string noun = "");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool enabled() const { return enabled_; }
  void set_total(std::optional<uint64_t> total) { total_ = total; }

  // Redraws with `done`, at most every 100 ms (the first call always draws).
  void Update(uint64_t done);
  // Draws the final line ("done in ...") and ends it with "\n".
  void Finish(uint64_t done);
  // Redraws with a free text (throttled like Update unless `force`).
  void Text(const std::string& text, bool force = false);
  // Seconds since construction.
  double Elapsed() const;

 private:
  void Draw(const std::string& text);

  bool enabled_;
  std::string label_;
  Unit unit_;
  std::string noun_;
  std::optional<uint64_t> total_;
  int64_t start_ms_;
  int64_t last_draw_ms_ = -1;
};

}  // namespace usersd::usersctl
