// TEMPORARY placeholder so the daemon links while the admin API is being
// written (issue 4). Replaced wholesale by the real implementation.
#include "admin/admin_api.h"

#include <unistd.h>

namespace usersd::admin {
struct AdminApi::Impl {
  AdminDeps deps;
};
AdminApi::AdminApi(AdminDeps deps) : impl_(std::make_unique<Impl>(Impl{std::move(deps)})) {}
AdminApi::~AdminApi() = default;
void AdminApi::Dispatch(const ipc::Request& request, ipc::Responder responder) {
  responder.Reply(ipc::Outcome::Die("unknown method \"" + request.tag + "\"", ipc::kMethodNotFound));
}
std::function<bool(const ipc::PeerCred&)> AdminAuthorizer(std::vector<uint32_t> uids, std::vector<uint32_t> gids) {
  uid_t self = getuid();
  return [self, uids, gids](const ipc::PeerCred& p) {
    if (p.uid == 0 || p.uid == self) return true;
    for (auto u : uids)
      if (u == p.uid) return true;
    for (auto g : gids)
      if (g == p.gid) return true;
    return false;
  };
}
}  // namespace usersd::admin
