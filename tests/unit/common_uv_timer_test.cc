// common/uv_timer.h: an owned libuv timer, freed in its close callback, safe
// to destroy from its own callback (issue 23 item 1).
#include "common/uv_timer.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <stdexcept>

namespace usersd {
namespace {

// A loop that each test ends by closing: uv_loop_close fails (UV_EBUSY) while
// any handle is open or its close callback has not run.
struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() { uv_loop_close(&loop); }
  int Close() {
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop);
  }
};

TEST_CASE("uv timer: fires once after the timeout, and closes with the loop clean", "[common]") {
  Loop l;
  int fired = 0;
  {
    UvTimer t;
    CHECK_FALSE(t.open());
    t.Start(&l.loop, 1, 0, [&] { ++fired; });
    CHECK(t.open());
    CHECK(t.active());
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(fired == 1);
    CHECK_FALSE(t.active());
    CHECK(t.open());
  }
  CHECK(l.Close() == 0);
  CHECK(fired == 1);
}

TEST_CASE("uv timer: repeats until stopped from its callback", "[common]") {
  Loop l;
  int fired = 0;
  UvTimer t;
  t.Start(&l.loop, 1, 1, [&] {
    if (++fired == 3) t.Stop();
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);  // returns once the stopped timer keeps nothing alive
  CHECK(fired == 3);
  CHECK_FALSE(t.active());
  t.Close();
  CHECK(l.Close() == 0);
  CHECK(fired == 3);
}

TEST_CASE("uv timer: Stop and Close before it is due keep the callback from running", "[common]") {
  Loop l;
  int fired = 0;
  UvTimer stopped, closed;
  stopped.Start(&l.loop, 0, 0, [&] { ++fired; });
  closed.Start(&l.loop, 0, 0, [&] { ++fired; });
  stopped.Stop();
  closed.Close();
  CHECK_FALSE(closed.open());
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(fired == 0);
  // Stopped but open: armed again, it fires.
  stopped.Start(&l.loop, 0, 0, [&] { ++fired; });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(fired == 1);
  stopped.Close();
  CHECK(l.Close() == 0);
}

TEST_CASE("uv timer: a timer stopped by another one's callback in the same pass does not run", "[common]") {
  Loop l;
  int fired = 0;
  UvTimer first, second;
  first.Start(&l.loop, 1, 0, [&] { second.Close(); });
  second.Start(&l.loop, 1, 0, [&] { ++fired; });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(fired == 0);
  first.Close();
  CHECK(l.Close() == 0);
}

TEST_CASE("uv timer: Close frees the callback and what it captured in the close callback", "[common]") {
  Loop l;
  auto token = std::make_shared<int>(0);
  UvTimer t;
  t.Start(&l.loop, 1000, 0, [token] {});
  CHECK(token.use_count() == 2);
  t.Close();
  CHECK(token.use_count() == 2);  // freed by the close callback, not before
  CHECK(l.Close() == 0);
  CHECK(token.use_count() == 1);
}

TEST_CASE("uv timer: the owner may be destroyed before the loop runs the close callback", "[common]") {
  Loop l;
  auto token = std::make_shared<int>(0);
  {
    UvTimer t;
    t.Start(&l.loop, 1000, 1000, [token] {});
  }
  CHECK(token.use_count() == 2);
  CHECK(l.Close() == 0);
  CHECK(token.use_count() == 1);
}

TEST_CASE("uv timer: destroying the owner inside its own callback is safe", "[common]") {
  Loop l;
  auto token = std::make_shared<int>(0);
  int fired = 0;
  auto owner = std::make_unique<UvTimer>();
  owner->Start(&l.loop, 1, 1, [&, token] {
    ++fired;
    owner.reset();
    CHECK(*token == 0);  // the captures outlive the call that destroyed the owner
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(fired == 1);
  CHECK(owner == nullptr);
  CHECK(l.Close() == 0);
  CHECK(token.use_count() == 1);
}

TEST_CASE("uv timer: re-arming from the callback replaces it and frees the old one", "[common]") {
  Loop l;
  auto first_token = std::make_shared<int>(0);
  int first = 0, second = 0;
  UvTimer t;
  t.Start(&l.loop, 1, 0, [&, first_token] {
    ++first;
    t.Start(&l.loop, 1, 0, [&] { ++second; });
    CHECK(*first_token == 0);  // still alive while it runs
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(first == 1);
  CHECK(second == 1);
  CHECK(first_token.use_count() == 1);
  // A repeating callback that does not re-arm is kept for the next run.
  int repeats = 0;
  t.Start(&l.loop, 1, 1, [&] {
    if (++repeats == 2) t.Close();
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(repeats == 2);
  CHECK(l.Close() == 0);
}

TEST_CASE("uv timer: an exception thrown by the callback stops at the timer", "[common]") {
  Loop l;
  int fired = 0;
  UvTimer t;
  t.Start(&l.loop, 1, 1, [&] {
    if (++fired == 2) t.Stop();
    throw std::runtime_error("boom");
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(fired == 2);
  t.Close();
  CHECK(l.Close() == 0);
}

TEST_CASE("uv timer: moving hands over the handle; the moved-from timer owns none", "[common]") {
  Loop l;
  int fired = 0;
  UvTimer a;
  a.Start(&l.loop, 1, 0, [&] { ++fired; });
  UvTimer b(std::move(a));
  CHECK_FALSE(a.open());  // NOLINT(bugprone-use-after-move): the contract says so
  CHECK(b.open());
  UvTimer c;
  c.Start(&l.loop, 1, 0, [&] { fired += 100; });
  c = std::move(b);  // closes c's own timer, which never fires
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(fired == 1);
  c.Close();
  CHECK(l.Close() == 0);
}

}  // namespace
}  // namespace usersd
