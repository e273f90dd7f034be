// Replays every seed in fuzz/corpus/<target>/ and every input that once
// crashed a fuzzer, fuzz/regressions/<target>/, through the same functions
// the libFuzzer executables call (fuzz/targets.h). So `make test` keeps each
// fixed finding fixed under the ordinary ASan+UBSan build, without clang.
//
// A broken property aborts the binary with "fuzz check failed: ..." on
// stderr; the INFO lines Catch2 prints before that are lost, so each input's
// path is written to stderr before it runs.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "fuzz/targets.h"
#include "ipc/protocol.h"

namespace usersd::fuzz {
namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = fs::path(USERSD_SOURCE_DIR) / "fuzz";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Regular files under `dir`, sorted so that runs are reproducible; empty when
// the directory does not exist.
std::vector<fs::path> Inputs(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

size_t Replay(const FuzzTarget& t, const fs::path& dir) {
  size_t n = 0;
  for (const fs::path& p : Inputs(dir)) {
    const std::string bytes = ReadFile(p);
    std::fprintf(stderr, "replay %s\n", p.lexically_relative(kFuzzDir).c_str());
    CHECK(t.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
    ++n;
  }
  return n;
}

TEST_CASE("fuzz: every corpus and regression directory belongs to a target", "[fuzz]") {
  std::set<std::string> names;
  for (const FuzzTarget& t : AllTargets()) names.emplace(t.name);
  for (const char* sub : {"corpus", "regressions"}) {
    const fs::path root = kFuzzDir / sub;
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      INFO(e.path().string());
      CHECK(e.is_directory());
      CHECK(names.count(e.path().filename().string()) == 1);
    }
  }
}

TEST_CASE("fuzz: every target has a seed corpus and survives it", "[fuzz]") {
  for (const FuzzTarget& t : AllTargets()) {
    INFO(std::string(t.name));
    CHECK(Replay(t, kFuzzDir / "corpus" / std::string(t.name)) > 0);
  }
}

TEST_CASE("fuzz: inputs that once crashed a fuzzer no longer do", "[fuzz]") {
  for (const FuzzTarget& t : AllTargets()) Replay(t, kFuzzDir / "regressions" / std::string(t.name));
}

// Finding of ipc_protocol (fuzz/regressions/ipc_protocol/float_id_*): the id
// string of a float id converted the double to int64 even when it was out of
// range, which is undefined behaviour. GCC's UBSan does not check float casts
// unless asked, so the expected strings are spelled out here too.
TEST_CASE("fuzz finding: a float request id outside int64 keeps its JSON form in Ack/Exit ids", "[fuzz][ipc]") {
  auto id_string = [](const std::string& line) {
    ipc::Frame f = ipc::ParseLine(line);
    REQUIRE(f.kind == ipc::FrameKind::kRequest);
    return f.request.IdString();
  };
  CHECK(id_string(R"({"_tag":"Request","id":1e300,"tag":"user.me"})") == "1e+300");
  CHECK(id_string(R"({"_tag":"Request","id":-1e19,"tag":"user.me"})") == "-1e+19");
  CHECK(id_string(R"({"_tag":"Request","id":9223372036854775808.0,"tag":"user.me"})") == "9.223372036854776e+18");
  CHECK(id_string(R"({"_tag":"Request","id":-9223372036854775808.0,"tag":"user.me"})") == "-9223372036854775808");
  CHECK(id_string(R"({"_tag":"Request","id":7.0,"tag":"user.me"})") == "7");
  CHECK(id_string(R"({"_tag":"Request","id":7.5,"tag":"user.me"})") == "7.5");
  ipc::Frame ack = ipc::ParseLine(R"({"jsonrpc":"2.0","method":"@effect/rpc/Ack","params":{"requestId":1e300}})");
  REQUIRE(ack.kind == ipc::FrameKind::kAck);
  CHECK(ack.request_id == "1e+300");
}

TEST_CASE("fuzz: the targets take empty and tiny inputs", "[fuzz]") {
  const uint8_t bytes[] = {'\n', '{', '}', 0, 0xff, '"', '[', 0, 0, 0, 0};
  for (const FuzzTarget& t : AllTargets())
    for (size_t n = 0; n <= sizeof bytes; ++n) CHECK(t.run(bytes, n) == 0);
}

}  // namespace
}  // namespace usersd::fuzz
