#include "admin/metrics_textfile.h"

#include <fcntl.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace usersd::admin {

MetricsTextfile::MetricsTextfile(uv_loop_t* loop, Metrics* metrics, const config::Config* config)
    : loop_(loop), metrics_(metrics), config_(config) {}

MetricsTextfile::~MetricsTextfile() {
  assert((!started_ || closing_) && "MetricsTextfile destroyed before Close()");
}

Status MetricsTextfile::WriteAtomically(const std::string& path, std::string_view text) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::IOError("cannot create " + tmp + ": " + std::strerror(errno));
  // The umask may have narrowed the mode; readers are usually another user.
  fchmod(fd, 0644);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return Status::IOError("cannot write " + tmp + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Status::IOError("cannot write " + tmp + ": " + std::strerror(err));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Status::IOError("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

void MetricsTextfile::Start() {
  if (started_) return;
  started_ = true;
  Tick();
}

Status MetricsTextfile::WriteNow() {
  const auto& path = config_->metrics.textfile;
  if (!written_path_.empty() && (!path || *path != written_path_)) {
    // The setting changed or was cleared: the old file would go stale.
    unlink(written_path_.c_str());
    written_path_.clear();
  }
  if (!path) return Status::Ok();
  Status st = WriteAtomically(*path, metrics_->Render());
  if (st.ok()) {
    writes_++;
    written_path_ = *path;
    if (!last_error_.empty()) LogInfo("metrics textfile written again", {{"path", *path}});
    last_error_.clear();
  } else {
    failures_++;
    if (st.message() != last_error_) LogWarn("cannot write the metrics textfile", {{"error", st.message()}});
    last_error_ = st.message();
  }
  return st;
}

void MetricsTextfile::Tick() {
  if (closing_) return;
  (void)WriteNow();
  Arm();
}

void MetricsTextfile::Arm() {
  int64_t secs = config_->metrics.textfile_interval_seconds;
  if (secs < 1) secs = 1;
  timer_.Start(loop_, static_cast<uint64_t>(secs) * 1000, 0, [this] { Tick(); });
}

void MetricsTextfile::Close() {
  if (closing_) return;
  closing_ = true;
  if (!written_path_.empty()) unlink(written_path_.c_str());
  written_path_.clear();
  timer_.Close();
}

}  // namespace usersd::admin
