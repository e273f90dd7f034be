// LineSplitter: the newline framing of the socket protocol, without I/O.
//
// Bytes go in with Append() as they arrive from the socket, in any chunking;
// complete lines come out of NextLine() in order, without their '\n' (a
// trailing '\r' is left for the parser to tolerate). A line longer than
// max_line_bytes is refused as soon as it is known to be too long: either a
// complete line over the limit, or an unterminated one whose buffered bytes
// already exceed it, so that a client can never make us hold more than
// max_line_bytes plus one read's worth of bytes.
//
// After NextLine() has returned kOverlong the splitter stays failed: it drops
// what it held, ignores further bytes and keeps returning kOverlong, because
// the rest of the stream is the tail of a line we refused and cannot be
// framed any more.
//
// Thread-compatible value type; ipc/server.cc keeps one per connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace usersd::ipc {

class LineSplitter {
 public:
  enum class Next {
    kLine,      // *line holds the next complete line
    kNeedMore,  // no complete line is buffered; Append more bytes
    kOverlong,  // a line exceeds max_line_bytes; the splitter is now failed
  };

  explicit LineSplitter(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  // Takes effect for the line being assembled too, so a lowered limit applies
  // to connections that are already open.
  void set_max_line_bytes(size_t n) { max_line_bytes_ = n; }
  size_t max_line_bytes() const { return max_line_bytes_; }

  // Buffers `bytes`; ignored once failed.
  void Append(std::string_view bytes);

  // Yields the next complete line. The view points into the splitter and is
  // valid until the next call to Append() or NextLine().
  Next NextLine(std::string_view* line);

  // Bytes held: consumed lines not yet compacted plus the unterminated tail.
  // After NextLine() returned kNeedMore this is at most max_line_bytes.
  size_t buffered() const { return buf_.size(); }
  // Memory the buffer holds (its capacity): what a server-wide cap counts.
  // A buffer that grew for a long line is given back once the line is done
  // (NextLine shrinks it when it holds much more than it needs).
  size_t held() const { return buf_.capacity(); }
  bool failed() const { return failed_; }
  // Drops everything held and fails the splitter, as an overlong line does
  // (the server uses it for a connection it closes to free memory).
  void Discard() { Fail(); }

 private:
  Next Fail();

  size_t max_line_bytes_;
  std::string buf_;
  size_t start_ = 0;      // buf_[0, start_) was already returned as lines
  size_t scan_from_ = 0;  // buf_[start_, scan_from_) holds no '\n' (saves rescanning a long partial line)
  bool failed_ = false;
};

}  // namespace usersd::ipc
