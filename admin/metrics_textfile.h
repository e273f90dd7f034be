// MetricsTextfile: writes the Prometheus exposition to a file for the
// node_exporter textfile collector (config metrics.textfile).
//
// Every metrics.textfile_interval_seconds it renders Metrics and replaces
// the file atomically (write "<path>.tmp.<pid>", then rename), so the
// collector never reads half a file. The settings are read from the
// Config on each tick, so a reload (SIGHUP, admin.config.reload) that sets,
// changes or clears metrics.textfile takes effect at the next tick without
// any hook. When the file is cleared or the writer closes, the file is
// removed, so node_exporter stops reporting stale values of a stopped
// daemon. Write failures are logged (once per distinct error) and retried
// at the next tick; they never stop the daemon.
//
// Loop thread only (Metrics collectors read loop-thread state). Owns one
// timer (common/uv_timer.h); Close() must run before destruction (it removes
// the file), and the loop once after it before uv_loop_close. Borrows
// `metrics` and `config`, which must outlive it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "common/status.h"
#include "common/uv_timer.h"
#include "config/config.h"

namespace usersd::admin {

class MetricsTextfile {
 public:
  MetricsTextfile(uv_loop_t* loop, Metrics* metrics, const config::Config* config);
  ~MetricsTextfile();
  MetricsTextfile(const MetricsTextfile&) = delete;
  MetricsTextfile& operator=(const MetricsTextfile&) = delete;

  // Writes now (when configured) and arms the timer.
  void Start();
  // Stops the timer, removes the file it wrote, and closes the handle.
  void Close();
  // Renders and writes once now; what a tick does.
  Status WriteNow();

  uint64_t writes() const { return writes_; }
  uint64_t failures() const { return failures_; }

  // Replaces `path` with `text` atomically (temporary file in the same
  // directory, then rename). The file gets mode 0644: node_exporter usually
  // runs as another user.
  static Status WriteAtomically(const std::string& path, std::string_view text);

 private:
  void Tick();
  void Arm();

  uv_loop_t* loop_;
  Metrics* metrics_;
  const config::Config* config_;
  UvTimer timer_;
  bool started_ = false;
  bool closing_ = false;
  std::string written_path_;  // the file we last wrote, removed on change/close
  std::string last_error_;
  uint64_t writes_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace usersd::admin
