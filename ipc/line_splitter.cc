#include "ipc/line_splitter.h"

#include <algorithm>

namespace usersd::ipc {

void LineSplitter::Append(std::string_view bytes) {
  if (failed_) return;
  buf_.append(bytes);
}

LineSplitter::Next LineSplitter::NextLine(std::string_view* line) {
  if (failed_) return Next::kOverlong;
  const size_t nl = buf_.find('\n', std::max(start_, scan_from_));
  if (nl == std::string::npos) {
    // Everything before start_ has been handed out; keep only the partial
    // line, and refuse it once it alone is over the limit.
    if (start_ > 0) {
      buf_.erase(0, start_);
      start_ = 0;
    }
    if (buf_.size() > max_line_bytes_) return Fail();
    scan_from_ = buf_.size();
    // After a long line, keep no more than the tail needs (plus room for a
    // read): a connection that once sent 1 MiB must not hold 1 MiB forever.
    constexpr size_t kKeep = 64 * 1024;
    if (buf_.capacity() > 2 * kKeep && buf_.capacity() > 4 * buf_.size()) buf_.shrink_to_fit();
    return Next::kNeedMore;
  }
  if (nl - start_ > max_line_bytes_) return Fail();
  *line = std::string_view(buf_).substr(start_, nl - start_);
  start_ = nl + 1;
  return Next::kLine;
}

LineSplitter::Next LineSplitter::Fail() {
  failed_ = true;
  buf_.clear();
  buf_.shrink_to_fit();
  start_ = 0;
  scan_from_ = 0;
  return Next::kOverlong;
}

}  // namespace usersd::ipc
