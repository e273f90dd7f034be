// Tests of MetricsTextfile (admin/metrics_textfile.h): the node_exporter
// textfile is replaced atomically, follows config changes, and is removed
// when the writer closes. Each test has its own temp dir and uv loop, which
// must close cleanly.
#include "admin/metrics_textfile.h"

#include <sys/stat.h>
#include <uv.h>

#include <catch2/catch.hpp>

#include "tests/unit/temp_dir.h"
#include <filesystem>
#include <fstream>
#include <sstream>

namespace usersd::admin {
namespace {

namespace fs = std::filesystem;

using usersd::testing::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

size_t Entries(const std::string& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) n++;
  return n;
}

TEST_CASE("metrics textfile: WriteAtomically replaces the file and leaves no temporary behind", "[admin]") {
  TempDir dir;
  std::string path = dir / "usersd.prom";
  REQUIRE(MetricsTextfile::WriteAtomically(path, "a 1\n").ok());
  CHECK(Slurp(path) == "a 1\n");
  REQUIRE(MetricsTextfile::WriteAtomically(path, "b 2\n").ok());
  CHECK(Slurp(path) == "b 2\n");
  CHECK(Entries(dir.path()) == 1);
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("metrics textfile: WriteAtomically fails cleanly when the directory is missing", "[admin]") {
  TempDir dir;
  Status st = MetricsTextfile::WriteAtomically(dir / "missing/usersd.prom", "x 1\n");
  CHECK(st.code() == Code::kIOError);
  CHECK(st.message().find("missing") != std::string::npos);
}

struct LoopRig {
  LoopRig() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~LoopRig() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  uv_loop_t loop{};
};

TEST_CASE("metrics textfile: writes at start, follows a changed path, removes the file on close", "[admin]") {
  TempDir dir;
  LoopRig rig;
  Metrics metrics;
  metrics.Set("usersd_test_gauge", {}, 7);
  config::Config cfg;
  cfg.metrics.textfile = dir / "one.prom";
  cfg.metrics.textfile_interval_seconds = 3600;
  {
    MetricsTextfile w(&rig.loop, &metrics, &cfg);
    w.Start();
    CHECK(w.writes() == 1);
    CHECK(Slurp(dir / "one.prom").find("usersd_test_gauge 7") != std::string::npos);

    // A reload that moves the file: the old one must not go stale.
    cfg.metrics.textfile = dir / "two.prom";
    metrics.Set("usersd_test_gauge", {}, 8);
    REQUIRE(w.WriteNow().ok());
    CHECK_FALSE(fs::exists(dir / "one.prom"));
    CHECK(Slurp(dir / "two.prom").find("usersd_test_gauge 8") != std::string::npos);

    // A reload that clears it: the file goes away, nothing is written.
    cfg.metrics.textfile.reset();
    REQUIRE(w.WriteNow().ok());
    CHECK_FALSE(fs::exists(dir / "two.prom"));
    CHECK(w.writes() == 2);

    cfg.metrics.textfile = dir / "three.prom";
    REQUIRE(w.WriteNow().ok());
    CHECK(fs::exists(dir / "three.prom"));
    w.Close();
    CHECK_FALSE(fs::exists(dir / "three.prom"));
    uv_run(&rig.loop, UV_RUN_DEFAULT);  // the timer's close callback
  }
}

TEST_CASE("metrics textfile: the timer rewrites the file every interval", "[admin]") {
  TempDir dir;
  LoopRig rig;
  Metrics metrics;
  config::Config cfg;
  cfg.metrics.textfile = dir / "tick.prom";
  cfg.metrics.textfile_interval_seconds = 1;
  MetricsTextfile w(&rig.loop, &metrics, &cfg);
  w.Start();
  // One write at start and one per tick; stop after the second tick.
  uv_timer_t stop{};
  uv_timer_init(&rig.loop, &stop);
  stop.data = &w;
  uv_timer_start(&stop, [](uv_timer_t* t) {
    auto* w = static_cast<MetricsTextfile*>(t->data);
    if (w->writes() >= 3) {
      w->Close();
      uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
    }
  }, 50, 50);
  uv_run(&rig.loop, UV_RUN_DEFAULT);
  CHECK(w.writes() >= 3);
  CHECK(w.failures() == 0);
}

TEST_CASE("metrics textfile: a failing write is counted and retried, never fatal", "[admin]") {
  TempDir dir;
  LoopRig rig;
  Metrics metrics;
  config::Config cfg;
  cfg.metrics.textfile = dir / "no/such/dir.prom";
  MetricsTextfile w(&rig.loop, &metrics, &cfg);
  w.Start();
  CHECK(w.failures() == 1);
  CHECK(w.WriteNow().code() == Code::kIOError);
  CHECK(w.failures() == 2);
  fs::create_directories(dir / "no/such");
  CHECK(w.WriteNow().ok());
  w.Close();
  uv_run(&rig.loop, UV_RUN_DEFAULT);
}

}  // namespace
}  // namespace usersd::admin
