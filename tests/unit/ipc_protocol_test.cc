// Both @effect/rpc serializations: parsing each frame kind and encoding each
// outcome exactly as SPEC section 2 pins them.
#include <catch2/catch.hpp>

#include "ipc/protocol.h"

using usersd::ipc::EncodeChunk;
using usersd::ipc::FastParseEffectRequest;
using usersd::ipc::FastParseJson;
using usersd::ipc::Frame;
using usersd::ipc::ParseLineWithDom;
using usersd::ipc::EncodeExit;
using usersd::ipc::EncodePong;
using usersd::ipc::EncodeProtocolError;
using usersd::ipc::EncodeStreamEnd;
using usersd::ipc::FrameKind;
using usersd::ipc::Json;
using usersd::ipc::Outcome;
using usersd::ipc::ParseLine;
using usersd::ipc::Wire;

namespace {
Json Line(const std::string& s) {
  REQUIRE(!s.empty());
  REQUIRE(s.back() == '\n');
  REQUIRE(s.find('\n') == s.size() - 1);
  return Json::parse(s);
}
}  // namespace

TEST_CASE("protocol: NDJSON request with headers, extra members and a payload", "[ipc][protocol]") {
  auto f = ParseLine(
      R"({"_tag":"Request","id":"7","tag":"user.update","payload":{"id":"x"},"headers":[["Authorization","Bearer t"]],"traceId":"a","spanId":"b","sampled":true})");
  REQUIRE(f.kind == FrameKind::kRequest);
  CHECK(f.request.wire == Wire::kEffect);
  CHECK(f.request.id == "7");
  CHECK(f.request.tag == "user.update");
  CHECK(f.request.payload == Json{{"id", "x"}});
  REQUIRE(f.request.Header("authorization"));
  CHECK(*f.request.Header("authorization") == "Bearer t");
}

TEST_CASE("protocol: NDJSON request without payload has a null payload", "[ipc][protocol]") {
  auto f = ParseLine(R"({"_tag":"Request","id":"1","tag":"user.me","headers":[]})");
  REQUIRE(f.kind == FrameKind::kRequest);
  CHECK(f.request.payload.is_null());
}

TEST_CASE("protocol: NDJSON control frames", "[ipc][protocol]") {
  CHECK(ParseLine(R"({"_tag":"Ping"})").kind == FrameKind::kPing);
  CHECK(ParseLine(R"({"_tag":"Eof"})").kind == FrameKind::kEof);
  auto ack = ParseLine(R"({"_tag":"Ack","requestId":"9"})");
  CHECK(ack.kind == FrameKind::kAck);
  CHECK(ack.request_id == "9");
  auto intr = ParseLine(R"({"_tag":"Interrupt","requestId":"9"})");
  CHECK(intr.kind == FrameKind::kInterrupt);
  CHECK(ParseLine(R"({"_tag":"Ack"})").kind == FrameKind::kError);
}

TEST_CASE("protocol: JSON-RPC request with object headers and a numeric id", "[ipc][protocol]") {
  auto f = ParseLine(R"({"jsonrpc":"2.0","id":7,"method":"user.me","params":{},"headers":{"Authorization":"Bearer t"}})");
  REQUIRE(f.kind == FrameKind::kRequest);
  CHECK(f.request.wire == Wire::kJsonRpc);
  CHECK(f.request.id == 7);
  CHECK(f.request.IdString() == "7");
  CHECK(*f.request.Header("authorization") == "Bearer t");
}

TEST_CASE("protocol: JSON-RPC control methods", "[ipc][protocol]") {
  CHECK(ParseLine(R"({"jsonrpc":"2.0","method":"@effect/rpc/Ping"})").kind == FrameKind::kPing);
  auto ack = ParseLine(R"({"jsonrpc":"2.0","method":"@effect/rpc/Ack","params":{"requestId":3}})");
  CHECK(ack.kind == FrameKind::kAck);
  CHECK(ack.request_id == "3");
}

TEST_CASE("protocol: parse errors and invalid requests", "[ipc][protocol]") {
  auto notjson = ParseLine("hello");
  CHECK(notjson.kind == FrameKind::kError);
  CHECK(notjson.error_code == usersd::ipc::kParseError);
  CHECK_FALSE(notjson.error_has_request);
  CHECK(ParseLine("[1,2]").error_code == usersd::ipc::kInvalidRequest);
  CHECK(ParseLine(R"({"x":1})").error_code == usersd::ipc::kInvalidRequest);
  // An id we can read makes the error that request's ValidationError.
  auto notag = ParseLine(R"({"_tag":"Request","id":"4"})");
  CHECK(notag.kind == FrameKind::kError);
  CHECK(notag.error_has_request);
  CHECK(notag.request.id == "4");
  std::string deep(100, '[');
  CHECK(ParseLine(deep + std::string(100, ']')).error_code == usersd::ipc::kInvalidRequest);
}

TEST_CASE("protocol: NDJSON exits for success, typed failure and defect", "[ipc][protocol]") {
  auto req = ParseLine(R"({"_tag":"Request","id":"7","tag":"user.me"})").request;
  CHECK(Line(EncodeExit(req, Outcome::Success(Json{{"a", 1}}))) ==
        Json::parse(R"({"_tag":"Exit","requestId":"7","exit":{"_tag":"Success","value":{"a":1}}})"));
  Json err{{"_tag", "UserNotFoundError"}, {"userId", "u"}};
  CHECK(Line(EncodeExit(req, Outcome::Fail(err, 404, "nf"))) ==
        Json::parse(
            R"({"_tag":"Exit","requestId":"7","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UserNotFoundError","userId":"u"}}}})"));
  CHECK(Line(EncodeExit(req, Outcome::Die("firstName: bad"))) ==
        Json::parse(
            R"({"_tag":"Exit","requestId":"7","exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":{"name":"ValidationError","message":"firstName: bad"}}}})"));
}

TEST_CASE("protocol: SPEC 2's three errors have SPEC 2's shapes and codes", "[ipc][protocol]") {
  auto u = Outcome::Unauthorized("Unauthorized", "token expired");
  CHECK(u.kind == Outcome::Kind::kFail);
  CHECK(u.code == 401);
  CHECK(u.value == Json::parse(R"({"_tag":"UnauthorizedError","message":"Unauthorized","detail":"token expired"})"));
  auto n = Outcome::UserNotFound("u-1");
  CHECK(n.code == 404);
  CHECK(n.value == Json::parse(R"({"_tag":"UserNotFoundError","userId":"u-1"})"));
  auto i = Outcome::InternalServerError("store full", "MDB_MAP_FULL");
  CHECK(i.code == 500);
  CHECK(i.value == Json::parse(R"({"_tag":"InternalServerError","message":"store full","detail":"MDB_MAP_FULL"})"));
  CHECK(i.message == "store full: MDB_MAP_FULL");
  // detail is optional: an empty one is left out, not sent as "".
  auto bare = Outcome::InternalServerError("offline");
  CHECK(bare.value == Json::parse(R"({"_tag":"InternalServerError","message":"offline"})"));
  CHECK(bare.message == "offline");
}

TEST_CASE("protocol: JSON-RPC exits keep the id's type and carry the typed-error codes", "[ipc][protocol]") {
  auto num = ParseLine(R"({"jsonrpc":"2.0","id":7,"method":"user.me"})").request;
  auto str = ParseLine(R"({"jsonrpc":"2.0","id":"7","method":"user.me"})").request;
  CHECK(Line(EncodeExit(num, Outcome::Success(1)))["id"] == 7);
  CHECK(Line(EncodeExit(str, Outcome::Success(1)))["id"] == "7");
  Json e = Line(EncodeExit(num, Outcome::Fail(Json{{"_tag", "UnauthorizedError"}}, 401, "Unauthorized")));
  CHECK(e["error"]["_tag"] == "Cause");
  CHECK(e["error"]["code"] == 401);
  CHECK(e["error"]["data"] == Json::parse(R"({"_tag":"Fail","error":{"_tag":"UnauthorizedError"}})"));
  Json d = Line(EncodeExit(num, Outcome::Die("unknown method", usersd::ipc::kMethodNotFound)));
  CHECK(d["error"]["code"] == -32601);
  CHECK(d["error"]["data"]["_tag"] == "Die");
  CHECK(d["error"]["data"]["defect"]["name"] == "ValidationError");
}

TEST_CASE("protocol: streams, pongs and protocol errors", "[ipc][protocol]") {
  auto req = ParseLine(R"({"_tag":"Request","id":"9","tag":"admin.changes"})").request;
  CHECK(Line(EncodeChunk(req, Json::array({1, 2}))) ==
        Json::parse(R"({"_tag":"Chunk","requestId":"9","values":[1,2]})"));
  CHECK(Line(EncodeStreamEnd(req)) == Json::parse(R"({"_tag":"Exit","requestId":"9","exit":{"_tag":"Success"}})"));
  auto rpc = ParseLine(R"({"jsonrpc":"2.0","id":9,"method":"admin.changes"})").request;
  CHECK(Line(EncodeChunk(rpc, Json::array({1}))) == Json::parse(R"({"jsonrpc":"2.0","chunk":true,"id":9,"result":[1]})"));
  CHECK(Line(EncodePong(Wire::kEffect)) == Json{{"_tag", "Pong"}});
  CHECK(Line(EncodePong(Wire::kJsonRpc)) == Json::parse(R"({"jsonrpc":"2.0","method":"@effect/rpc/Pong"})"));
  Json pe = Line(EncodeProtocolError(-32700, "Parse error"));
  CHECK(pe["id"].is_null());
  CHECK(pe["error"]["code"] == -32700);
}

TEST_CASE("protocol: invalid UTF-8 in a reply is replaced, never breaks the line", "[ipc][protocol]") {
  auto req = ParseLine(R"({"_tag":"Request","id":"1","tag":"x"})").request;
  std::string bad = "a\xff\xfe" "b";
  Json j = Line(EncodeExit(req, Outcome::Success(Json(bad))));
  CHECK(j["exit"]["value"].get<std::string>().find("a") == 0);
}

TEST_CASE("FastParseJson accepts only what nlohmann parses, with the same value", "[ipc][protocol]") {
  // Strings of every length up to a few SSE blocks with one special byte
  // (quote, backslash escape, control, non-ASCII) at every position.
  const std::string specials[] = {"\\\"", "\\\\", "\\n", "\\/", "\\u0041", "\\x", "\t", "\x01", "\xc3\xa9", "\x7f", "\"", "\\"};
  int accepted = 0;
  for (size_t len = 0; len < 40; ++len) {
    for (size_t pos = 0; pos <= len; ++pos) {
      for (const auto& sp : specials) {
        std::string body(len, 'a');
        body.insert(pos, sp);
        for (const std::string& text : {"\"" + body + "\"", "{\"k\":\"" + body + "\",\"n\":[1,-2]}"}) {
          Json fast;
          const bool ok = FastParseJson(text, &fast);
          Json ref = Json::parse(text, nullptr, false);
          INFO(text);
          if (ok) {
            ++accepted;
            REQUIRE_FALSE(ref.is_discarded());
            REQUIRE(fast == ref);
          }
        }
      }
    }
  }
  CHECK(accepted > 1000);  // the plain escapes take the fast path
}

TEST_CASE("The fast Request path gives the DOM path's frame or steps aside", "[ipc][protocol]") {
  const std::string tok = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
  const std::vector<std::string> lines = {
      R"({"_tag":"Request","id":"1","tag":"user.me","payload":{},"headers":[["authorization",")" + tok + R"("]]})",
      R"( { "tag" : "user.update" , "_tag" : "Request" , "id" : 7 , "payload" : {"timezone":"Europe/Paris","n":[1,-2,true,null]} } )",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":[["X-Trace","a"],["Authorization","b"]],"traceId":"t","spanId":"s","sampled":true})",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":null})",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":[]})",
      R"({"_tag":"Request","id":"1","tag":"a","tag":"b","id":"2","payload":1,"payload":{"x":2}})",
      R"({"_tag":"Ping","_tag":"Request","id":"1","tag":"user.me"})",
      R"({"_tag":"Request","_tag":"Ping","id":"1","tag":"user.me"})",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":[["a","b"]],"headers":[["c","d"]]})",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":[["a",1]]})",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":{"authorization":"x"}})",
      R"({"_tag":"Request","id":"1","tag":"user.me","headers":[["a","b","c"]]})",
      R"({"_tag":"Request","id":null,"tag":"user.me"})",
      R"({"_tag":"Request","id":"1","tag":7})",
      R"({"_tag":"Request","tag":"user.me"})",
      R"({"_tag":"Request","id":"1"})",
      R"({"_tag":"Request","id":1.5,"tag":"user.me"})",
      R"({"_tag":"Request","id":"1","tag":"user.me"} x)",
      R"({"_tag":"Request","id":"1","tag":"user.me",})",
      R"({"_tag":"Request","id":"1","tag":"user.me"})" "\r",
      R"({"_tag":"Request","id":"\u00e9","tag":"user.me"})",
      R"({"_tag":"Request","id":"1","tag":"user.me","jsonrpc":"2.0","method":"x"})",
      R"({"jsonrpc":"2.0","id":1,"method":"user.me","params":{}})",
      R"({})",
      R"([])",
  };
  int fast_taken = 0;
  for (const auto& line : lines) {
    INFO(line);
    Frame fast;
    const bool took = FastParseEffectRequest(line, &fast);
    const Frame slow = ParseLineWithDom(line);
    const Frame actual = usersd::ipc::ParseLine(line);
    CHECK(actual.kind == slow.kind);
    CHECK(actual.error_message == slow.error_message);
    if (!took) continue;
    ++fast_taken;
    REQUIRE(slow.kind == FrameKind::kRequest);
    CHECK(fast.wire == slow.wire);
    CHECK(fast.request.wire == slow.request.wire);
    CHECK(fast.request.id == slow.request.id);
    CHECK(fast.request.tag == slow.request.tag);
    CHECK(fast.request.payload == slow.request.payload);
    CHECK(fast.request.headers == slow.request.headers);
  }
  CHECK(fast_taken >= 8);
}
