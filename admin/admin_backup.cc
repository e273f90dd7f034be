// admin.backup (AdminApi, SPEC 6): a consistent copy of the store, written
// only under admin_socket.backup_dir.
#include <sys/stat.h>
#include <unistd.h>

#include "admin/handlers.h"
#include "common/safe_dir.h"

namespace usersd::admin {

// -------------------------------------------------------------- backup

void Handlers::HandleBackup(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto it = p->find("path");
  if (it == p->end() || it->is_null()) return Reply(r, q.tag, Invalid("path: required"));
  if (!it->is_string() || it->get<std::string>().empty()) return Reply(r, q.tag, Invalid("path: must be a string"));
  std::string path = it->get<std::string>();
  // The daemon's working directory is not the operator's: a relative path
  // would land somewhere surprising (/ under systemd), so it is refused.
  if (path[0] != '/')
    return Reply(r, q.tag, Invalid("path: must be absolute (the daemon resolves it, not the caller)"));
  if (path.size() > 4000 || path.find('\0') != std::string::npos)
    return Reply(r, q.tag, Invalid("path: too long or contains NUL"));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == deps.store->path()) return Reply(r, q.tag, Invalid("path: is the live store's directory"));
  // Backups go below admin_socket.backup_dir only (issue 21): the daemon
  // writes with its own rights, which are not the caller's.
  const std::string root = deps.config->admin_socket.backup_dir;
  if (!IsPathBelow(root, path))
    return Reply(r, q.tag, Invalid("path: must be below admin_socket.backup_dir (" + root + "), without . or .."));
  if (backup_running) return Reply(r, q.tag, Internal("backup refused", "another backup is in progress"));
  backup_running = true;

  // Store::Backup reads the whole store and writes the copy: minutes on a
  // big store, so it runs on libuv's thread pool, off the loop.
  struct Work {
    uv_work_t req{};
    Handlers* api;
    ipc::Responder r;
    std::string tag;
    std::string path;
    std::string root;
    Status st;
    uint64_t bytes = 0;
    uint64_t txid = 0;
  };
  auto* w = new Work{{}, this, r, q.tag, path, root, Status::Ok()};
  w->req.data = w;
  LogInfo("backup started", {{"path", path}, {"uid", std::to_string(r.peer().uid)}});
  int rc = uv_queue_work(
      deps.loop, &w->req,
      [](uv_work_t* req) {
        auto* w = static_cast<Work*>(req->data);
        auto dir = OpenDirBelow(w->root, w->path);
        if (!dir.ok()) {
          w->st = dir.status();
          return;
        }
        auto info = w->api->deps.store->Backup(*dir, w->path);
        ::close(*dir);
        if (!info.ok()) {
          w->st = info.status();
          return;
        }
        w->bytes = info->bytes;
        w->txid = info->txid;
      },
      [](uv_work_t* req, int status) {
        std::unique_ptr<Work> w(static_cast<Work*>(req->data));
        w->api->backup_running = false;
        if (status == UV_ECANCELED) w->st = Status::Unavailable("cancelled");
        if (!w->st.ok()) {
          LogError("backup failed", {{"path", w->path}, {"error", w->st.message()}});
          return w->api->Reply(w->r, w->tag, FromStatus(w->st, "backup"));
        }
        LogInfo("backup written",
                {{"path", w->path}, {"bytes", std::to_string(w->bytes)}, {"transactionId", std::to_string(w->txid)}});
        w->api->Reply(w->r, w->tag,
                      ipc::Outcome::Success(Json{{"path", w->path}, {"bytes", w->bytes}, {"transactionId", w->txid}}));
      });
  if (rc != 0) {
    backup_running = false;
    delete w;
    Reply(r, q.tag, Internal("backup failed", std::string("uv_queue_work: ") + uv_strerror(rc)));
  }
}

}  // namespace usersd::admin
