// JwksManager: where the Authenticator's keys come from.
//
// At start: the static file (auth.jwks_file) if configured, else the copy
// cached in the store, so a restart while offline still verifies. Then the
// URL (auth.jwks_url, default {workos.base_url}/sso/jwks/{client_id}) is
// fetched now, every auth.jwks_refresh_seconds, and on demand when a token
// names an unknown kid (the Authenticator rate-limits those), but never
// while the WorkOS client is unconfigured (auth.client_id or the API key
// unset: such a daemon contacts nothing). A fetched set is persisted in the
// store's meta table through the Writer.
//
// Loop thread only. Owns one timer (common/uv_timer.h), closed by Close()
// or destruction; the loop must run once after either before
// uv_loop_close.
#pragma once

#include <uv.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "common/metrics.h"
#include "common/uv_timer.h"
#include "common/status.h"
#include "store/writer.h"
#include "sync/workos_client.h"

namespace usersd::sync {

struct JwksOptions {
  std::optional<std::string> file;
  std::optional<std::string> url;  // nullopt: never fetch (file only)
  int64_t refresh_seconds = 3600;
};

class JwksManager {
 public:
  JwksManager(uv_loop_t* loop, WorkosClient* workos, store::Store* store, store::Writer* writer,
              auth::Authenticator* auth, const Clock& clock, JwksOptions options);
  ~JwksManager();

  // Loads the file or the cached copy; starts the refresh timer and the
  // first fetch. Fails only when a configured jwks_file cannot be used.
  Status Start();
  // Fetches now; `done` runs when the attempt ends (ok or not).
  void Refresh(std::function<void(Status)> done);
  void SetRefreshSeconds(int64_t s);
  void Close();

  size_t keys() const;
  // Milliseconds since the keys in use were fetched (or loaded); -1 if none.
  int64_t age_ms() const;
  // The usersd_jwks_* series (describes and sets them). Loop thread.
  void ExportMetrics(Metrics& m) const;

 private:
  void Arm();
  void Install(std::shared_ptr<const auth::Jwks> jwks, int64_t fetched_at_ms);

  uv_loop_t* loop_;
  WorkosClient* workos_;
  store::Store* store_;
  store::Writer* writer_;
  auth::Authenticator* auth_;
  const Clock& clock_;
  JwksOptions options_;
  UvTimer timer_;
  bool started_ = false;  // Start() armed the refresh (a URL is configured)
  bool closed_ = false;
  bool fetching_ = false;
  std::vector<std::function<void(Status)>> waiting_;
  int64_t loaded_at_ms_ = -1;
};

}  // namespace usersd::sync
