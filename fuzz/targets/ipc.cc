// Fuzz targets for the socket protocol: the line framing (ipc/line_splitter.h)
// and both @effect/rpc serializations (ipc/protocol.h). Every byte here comes
// from any local process that can open the socket.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/targets.h"
#include "ipc/line_splitter.h"
#include "ipc/protocol.h"

namespace usersd::fuzz {
namespace {

using ipc::Frame;
using ipc::FrameKind;
using ipc::Json;
using ipc::LineSplitter;
using ipc::Outcome;
using ipc::Request;
using ipc::Wire;

// Every encoder promises one line: a JSON object followed by exactly one
// '\n', whatever the strings inside hold. Returns the parsed object.
Json CheckOneJsonLine(const std::string& line) {
  USERSD_FUZZ_CHECK(!line.empty() && line.back() == '\n');
  USERSD_FUZZ_CHECK(line.find('\n') == line.size() - 1);
  Json j = Json::parse(line.begin(), line.end() - 1, /*cb=*/nullptr, /*allow_exceptions=*/false);
  USERSD_FUZZ_CHECK(j.is_object());
  return j;
}

// The member at `pointer` (all object keys), or a discarded value when it is
// missing, so that a comparison with it fails instead of reading out of range.
Json Member(const Json& j, const char* pointer) {
  const Json::json_pointer p(pointer);
  return j.contains(p) ? j.at(p) : Json(Json::value_t::discarded);
}

// The request as a client would have sent it, in its own serialization.
std::string EncodeRequestLine(const Request& req) {
  Json headers = Json::array();
  for (const auto& [name, value] : req.headers) headers.push_back(Json::array({name, value}));
  Json j;
  if (req.wire == Wire::kEffect) {
    j = {{"_tag", "Request"}, {"id", req.id}, {"tag", req.tag}, {"payload", req.payload}, {"headers", headers}};
  } else {
    j = {{"jsonrpc", "2.0"}, {"id", req.id}, {"method", req.tag}, {"params", req.payload}, {"headers", headers}};
  }
  // Parsed values hold valid UTF-8 only, so the strict dump cannot throw.
  return j.dump();
}

void CheckRequest(const Frame& frame) {
  const Request& req = frame.request;
  USERSD_FUZZ_CHECK(req.wire == frame.wire);
  if (req.wire == Wire::kEffect)
    USERSD_FUZZ_CHECK(req.id.is_string() || req.id.is_number());
  else
    USERSD_FUZZ_CHECK(req.id.is_null() || req.id.is_string() || req.id.is_number());
  for (const auto& [name, value] : req.headers) {
    for (char c : name) USERSD_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    USERSD_FUZZ_CHECK(req.Header(name).has_value());
  }
  const std::string id_string = req.IdString();
  // The id string of a numeric id names the same number ("7" for 7.0,
  // "1e+300" for 1e300), so Ack/Interrupt find the request again.
  if (req.id.is_number()) USERSD_FUZZ_CHECK(Json::parse(id_string, nullptr, /*allow_exceptions=*/false) == req.id);

  // Each outcome kind encodes to one line that echoes the id.
  const Outcome outcomes[] = {
      Outcome::Success(req.payload),
      Outcome::Fail(Json{{"_tag", "NotFoundError"}, {"message", req.tag}}, 404, req.tag),
      Outcome::Die(req.tag),
  };
  for (const Outcome& o : outcomes) {
    const Json exit = CheckOneJsonLine(ipc::EncodeExit(req, o));
    if (req.wire == Wire::kEffect) {
      USERSD_FUZZ_CHECK(Member(exit, "/_tag") == "Exit");
      USERSD_FUZZ_CHECK(Member(exit, "/requestId") == Json(id_string));
      if (o.kind == Outcome::Kind::kSuccess) USERSD_FUZZ_CHECK(Member(exit, "/exit/value") == req.payload);
    } else {
      USERSD_FUZZ_CHECK(Member(exit, "/jsonrpc") == "2.0");
      USERSD_FUZZ_CHECK(Member(exit, "/id") == req.id);
      if (o.kind == Outcome::Kind::kSuccess) USERSD_FUZZ_CHECK(Member(exit, "/result") == req.payload);
    }
  }
  CheckOneJsonLine(ipc::EncodeChunk(req, Json::array({req.payload})));
  CheckOneJsonLine(ipc::EncodeStreamEnd(req));

  // parse -> serialise -> parse gives the same request.
  const std::string again_line = EncodeRequestLine(req);
  const Frame again = ipc::ParseLine(again_line);
  USERSD_FUZZ_CHECK(again.kind == FrameKind::kRequest);
  USERSD_FUZZ_CHECK(again.wire == req.wire && again.request.wire == req.wire);
  USERSD_FUZZ_CHECK(again.request.id == req.id);
  USERSD_FUZZ_CHECK(again.request.tag == req.tag);
  USERSD_FUZZ_CHECK(again.request.payload == req.payload);
  USERSD_FUZZ_CHECK(again.request.headers == req.headers);
  USERSD_FUZZ_CHECK(again.request.IdString() == id_string);
}

// splitmix64: a tiny deterministic generator, so that the chunking is a
// function of the input and a crash replays exactly.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : s_(seed) {}
  uint64_t operator()() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t s_;
};

}  // namespace

int FuzzProtocolLine(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  // The fast parser agrees with nlohmann whenever it accepts a line.
  {
    Json fast;
    if (ipc::FastParseJson(line, &fast)) {
      Json ref = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      USERSD_FUZZ_CHECK(!ref.is_discarded());
      USERSD_FUZZ_CHECK(fast == ref);
    }
  }
  // The fast Request path agrees with the DOM path whenever it accepts.
  {
    Frame fast;
    if (ipc::FastParseEffectRequest(line, &fast)) {
      const Frame slow = ipc::ParseLineWithDom(line);
      USERSD_FUZZ_CHECK(slow.kind == FrameKind::kRequest && fast.kind == FrameKind::kRequest);
      USERSD_FUZZ_CHECK(slow.wire == fast.wire && slow.request.wire == fast.request.wire);
      USERSD_FUZZ_CHECK(slow.request.id == fast.request.id);
      USERSD_FUZZ_CHECK(slow.request.tag == fast.request.tag);
      USERSD_FUZZ_CHECK(slow.request.payload == fast.request.payload);
      USERSD_FUZZ_CHECK(slow.request.headers == fast.request.headers);
    }
  }
  const Frame f = ipc::ParseLine(line);
  switch (f.kind) {
    case FrameKind::kRequest:
      CheckRequest(f);
      break;
    case FrameKind::kPing:
      CheckOneJsonLine(ipc::EncodePong(f.wire));
      break;
    case FrameKind::kAck:
    case FrameKind::kInterrupt:
    case FrameKind::kEof:
    case FrameKind::kIgnored:
      break;
    case FrameKind::kError: {
      USERSD_FUZZ_CHECK(!f.error_message.empty());
      USERSD_FUZZ_CHECK(f.error_code == ipc::kParseError || f.error_code == ipc::kInvalidRequest ||
                        f.error_code == ipc::kMethodNotFound || f.error_code == ipc::kInvalidParams);
      if (f.error_has_request) {
        USERSD_FUZZ_CHECK(f.request.wire == f.wire);
        const Json exit = CheckOneJsonLine(ipc::EncodeExit(f.request, Outcome::Die(f.error_message, f.error_code)));
        if (f.wire == Wire::kJsonRpc) USERSD_FUZZ_CHECK(Member(exit, "/id") == f.request.id);
      } else {
        CheckOneJsonLine(ipc::EncodeProtocolError(f.error_code, f.error_message));
      }
      break;
    }
  }

  // The raw bytes as a string inside replies: invalid UTF-8 must be replaced,
  // never break the line or throw.
  const std::string raw(line);
  CheckOneJsonLine(ipc::EncodeProtocolError(ipc::kParseError, raw));
  for (Wire wire : {Wire::kEffect, Wire::kJsonRpc}) {
    Request req;
    req.wire = wire;
    req.id = raw;
    CheckOneJsonLine(ipc::EncodeExit(req, Outcome::Die(raw)));
    CheckOneJsonLine(ipc::EncodeExit(req, Outcome::Success(Json{{raw, raw}})));
    CheckOneJsonLine(ipc::EncodeChunk(req, Json::array({raw})));
  }
  return 0;
}

// Input layout: bytes 0-1 choose max_line_bytes (1 to 4096), bytes 2-9 seed
// the chunk sizes and how many lines are pulled between appends, the rest is
// the stream. Checks that, for any chunking:
//   - the lines come out as splitting the whole stream at '\n' gives them,
//     up to the first line longer than the limit;
//   - a line over the limit (complete, or the unterminated tail) is reported
//     as kOverlong, and only then; afterwards the splitter stays failed;
//   - after kNeedMore at most max_line_bytes are buffered.
int FuzzLineFraming(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 10;
  if (size < kHeader) return 0;
  const size_t limit = 1 + ((static_cast<size_t>(data[0]) | static_cast<size_t>(data[1]) << 8) & 0x0fff);
  uint64_t seed = 0;
  for (size_t i = 2; i < kHeader; ++i) seed = seed << 8 | data[i];
  const std::string_view stream(reinterpret_cast<const char*>(data) + kHeader, size - kHeader);

  // Reference: split the whole stream at once.
  std::vector<std::string_view> expected;
  bool expect_overlong = false;
  size_t pos = 0;
  for (;;) {
    const size_t nl = stream.find('\n', pos);
    const std::string_view piece = stream.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (piece.size() > limit) {
      expect_overlong = true;
      break;
    }
    if (nl == std::string_view::npos) break;  // the unterminated tail stays buffered
    expected.push_back(piece);
    pos = nl + 1;
  }

  SplitMix rng(seed);
  LineSplitter splitter(limit);
  std::vector<std::string> got;
  bool overlong = false;
  // Pulls up to `max_lines` lines; returns false when the splitter wants
  // more bytes or failed.
  auto pull = [&](size_t max_lines) {
    std::string_view line;
    for (size_t i = 0; i < max_lines; ++i) {
      switch (splitter.NextLine(&line)) {
        case LineSplitter::Next::kLine:
          USERSD_FUZZ_CHECK(line.size() <= limit && line.find('\n') == std::string_view::npos);
          got.emplace_back(line);
          break;
        case LineSplitter::Next::kNeedMore:
          USERSD_FUZZ_CHECK(!overlong && splitter.buffered() <= limit);
          return false;
        case LineSplitter::Next::kOverlong:
          overlong = true;
          USERSD_FUZZ_CHECK(splitter.failed() && splitter.buffered() == 0);
          return false;
      }
    }
    return true;
  };

  size_t fed = 0;
  while (fed < stream.size()) {
    // Log-uniform chunk sizes from 1 byte to 4 KiB, and now and then an
    // empty append.
    size_t chunk = rng() % 16 == 0 ? 0 : 1 + rng() % (size_t{1} << (rng() % 13));
    chunk = std::min(chunk, stream.size() - fed);
    splitter.Append(stream.substr(fed, chunk));
    fed += chunk;
    // Usually drain like the server does; sometimes leave lines pending
    // across the next append, which the class also allows.
    const size_t max_lines = rng() % 4 == 0 ? rng() % 3 : SIZE_MAX;
    pull(max_lines);
  }
  while (pull(SIZE_MAX)) {
  }

  USERSD_FUZZ_CHECK(overlong == expect_overlong);
  USERSD_FUZZ_CHECK(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) USERSD_FUZZ_CHECK(got[i] == expected[i]);
  if (overlong) {
    std::string_view line;
    splitter.Append("more\n");
    USERSD_FUZZ_CHECK(splitter.NextLine(&line) == LineSplitter::Next::kOverlong);
  } else {
    USERSD_FUZZ_CHECK(splitter.buffered() == stream.size() - pos);
  }
  return 0;
}

}  // namespace usersd::fuzz
