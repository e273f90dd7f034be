// Tests for ipc/line_splitter.h: the newline framing the socket server uses.
// The fuzz target fuzz/targets/ipc.cc (FuzzLineFraming) checks the same
// properties against a reference splitter for arbitrary bytes and chunkings;
// these are the readable cases.

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/line_splitter.h"

namespace usersd::ipc {
namespace {

using Next = LineSplitter::Next;

// Appends `bytes` and pulls every complete line. Returns the lines; sets
// *overlong when the splitter refused a line.
std::vector<std::string> Feed(LineSplitter& s, std::string_view bytes, bool* overlong = nullptr) {
  s.Append(bytes);
  std::vector<std::string> lines;
  std::string_view line;
  for (;;) {
    Next n = s.NextLine(&line);
    if (n == Next::kLine) {
      lines.emplace_back(line);
      continue;
    }
    if (overlong) *overlong = n == Next::kOverlong;
    return lines;
  }
}

TEST_CASE("line splitter: yields complete lines in order and keeps the partial tail", "[ipc]") {
  LineSplitter s(64);
  bool overlong = true;
  CHECK(Feed(s, "a\nbb\nccc", &overlong) == std::vector<std::string>{"a", "bb"});
  CHECK_FALSE(overlong);
  CHECK(s.buffered() == 3);
  CHECK(Feed(s, "c\n") == std::vector<std::string>{"cccc"});
  CHECK(s.buffered() == 0);
}

TEST_CASE("line splitter: keeps empty lines and a trailing CR for the parser to judge", "[ipc]") {
  LineSplitter s(64);
  CHECK(Feed(s, "\n\r\nx\r\n") == std::vector<std::string>{"", "\r", "x\r"});
}

TEST_CASE("line splitter: a line delivered one byte at a time comes out whole", "[ipc]") {
  LineSplitter s(64);
  const std::string msg = R"({"_tag":"Ping"})";
  for (char c : msg) CHECK(Feed(s, std::string_view(&c, 1)).empty());
  CHECK(Feed(s, "\n") == std::vector<std::string>{msg});
}

TEST_CASE("line splitter: a line of exactly max_line_bytes is accepted", "[ipc]") {
  LineSplitter s(8);
  bool overlong = true;
  CHECK(Feed(s, std::string(8, 'x'), &overlong).empty());
  CHECK_FALSE(overlong);
  CHECK(Feed(s, "\n", &overlong) == std::vector<std::string>{std::string(8, 'x')});
  CHECK_FALSE(overlong);
}

TEST_CASE("line splitter: refuses a partial line as soon as it exceeds the limit", "[ipc]") {
  LineSplitter s(8);
  bool overlong = false;
  CHECK(Feed(s, std::string(9, 'x'), &overlong).empty());
  CHECK(overlong);
  CHECK(s.failed());
  CHECK(s.buffered() == 0);
}

TEST_CASE("line splitter: lines before an over-long complete line are still yielded", "[ipc]") {
  LineSplitter s(4);
  bool overlong = false;
  CHECK(Feed(s, "ok\ntoo long\nlater\n", &overlong) == std::vector<std::string>{"ok"});
  CHECK(overlong);
}

TEST_CASE("line splitter: stays failed after refusing a line", "[ipc]") {
  LineSplitter s(4);
  bool overlong = false;
  Feed(s, "toolong", &overlong);
  REQUIRE(overlong);
  // The rest of the refused line must not be taken for a new line.
  CHECK(Feed(s, "ng\nfine\n", &overlong).empty());
  CHECK(overlong);
  CHECK(s.buffered() == 0);
}

TEST_CASE("line splitter: memory stays within the limit while a long line trickles in", "[ipc]") {
  LineSplitter s(1000);
  for (int i = 0; i < 1000; ++i) {
    bool overlong = true;
    Feed(s, "y", &overlong);
    REQUIRE_FALSE(overlong);
    REQUIRE(s.buffered() <= 1000);
  }
  bool overlong = false;
  Feed(s, "y", &overlong);
  CHECK(overlong);
}

TEST_CASE("line splitter: consumed lines are compacted away once the buffer is drained", "[ipc]") {
  LineSplitter s(16);
  for (int i = 0; i < 100; ++i) {
    CHECK(Feed(s, "0123456789\n01") == std::vector<std::string>{i == 0 ? "0123456789" : "010123456789"});
    CHECK(s.buffered() == 2);
  }
}

TEST_CASE("line splitter: a lowered limit applies to the line being assembled", "[ipc]") {
  LineSplitter s(64);
  bool overlong = true;
  Feed(s, "0123456789", &overlong);
  REQUIRE_FALSE(overlong);
  s.set_max_line_bytes(8);
  std::string_view line;
  CHECK(s.NextLine(&line) == Next::kOverlong);
}

}  // namespace
}  // namespace usersd::ipc
