// Tests of AdminAuthorizer (admin/admin_api.h): who may use the admin socket.
#include <catch2/catch.hpp>

#include "admin/admin_api.h"

namespace usersd::admin {
namespace {

ipc::PeerCred Peer(uid_t uid, gid_t gid) {
  return ipc::PeerCred{1234, uid, gid, {}, true};
}

TEST_CASE("admin authorizer: admits root and the daemon's own uid, refuses others by default", "[admin]") {
  auto allow = AdminAuthorizer({}, {}, 990);
  CHECK(allow(Peer(0, 0)));
  CHECK(allow(Peer(0, 12345)));
  CHECK(allow(Peer(990, 990)));
  CHECK_FALSE(allow(Peer(65534, 65534)));
  CHECK_FALSE(allow(Peer(1000, 1000)));
}

TEST_CASE("admin authorizer: admits a configured gid held as a supplementary group", "[admin]") {
  auto allow = AdminAuthorizer({}, {4242}, 990);
  ipc::PeerCred p = Peer(7777, 7777);
  CHECK_FALSE(allow(p));
  p.groups = {27, 100};
  CHECK_FALSE(allow(p));
  p.groups = {27, 4242, 100};
  CHECK(allow(p));
}

TEST_CASE("admin authorizer: admits configured uids and primary gids", "[admin]") {
  auto allow = AdminAuthorizer({1000, 1001}, {4242}, 990);
  CHECK(allow(Peer(1000, 1000)));
  CHECK(allow(Peer(1001, 5)));
  CHECK(allow(Peer(7777, 4242)));  // by gid
  CHECK_FALSE(allow(Peer(7777, 7777)));
  CHECK_FALSE(allow(Peer(4242, 1)));  // a uid equal to an allowed gid is not a match
}

TEST_CASE("admin authorizer: a peer whose credentials could not be read is refused, never taken for root", "[admin]") {
  // What the server holds when getsockopt(SO_PEERCRED) failed: it used to
  // read as uid 0, gid 0 and so as root (issue 21, item 9).
  ipc::PeerCred unknown;
  CHECK_FALSE(unknown.known);
  CHECK_FALSE(AdminAuthorizer({}, {}, 990)(unknown));
  CHECK_FALSE(AdminAuthorizer({}, {}, 990)(ipc::PeerCred{1234, 0, 0, {}, false}));
}

TEST_CASE("admin authorizer: the two-argument form takes the process's uid as its own", "[admin]") {
  auto allow = AdminAuthorizer({}, {});
  CHECK(allow(Peer(getuid(), 99999)));
  CHECK(allow(Peer(0, 0)));
}

}  // namespace
}  // namespace usersd::admin
