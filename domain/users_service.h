// UsersService: the five operations of the Users API (SPEC section 1).
//
// Each operation resolves the caller from verified token claims (provisioning
// the user on first use), checks policy, and submits one WriteOp to the
// Writer: the mutation, its outbox job and its change-feed entry commit in one
// LMDB transaction, and the reply (with its transactionId) is produced only
// after that commit. Policy and validation that depend on stored state run
// inside the WriteOp, on the state the batch writes on.
//
// Loop thread only (the WriteOps it builds run on the writer thread and touch
// nothing but their transaction and captured values). Ownership: borrows
// every dependency; they must outlive the service.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "auth/jwt.h"
#include "common/clock.h"
#include "common/status.h"
#include "domain/types.h"
#include "domain/user_json.h"
#include "store/store.h"
#include "store/writer.h"

namespace usersd::domain {

using Json = nlohmann::json;

struct SyncPolicy;  // domain/user_mutations.h

struct ServiceOptions {
  bool org_admins_manage_members = false;
  bool jit_provisioning = true;
  // identity.namespace, sync.metadata.* (never null; fixed at startup).
  std::shared_ptr<const SyncPolicy> sync;
};

// WorkOS reads on the request path are rationed (SPEC 1, issue 21): a
// profile picture read for user.resetAvatar is reused for kPictureReuseMs
// (unless the record has seen another picture from WorkOS since: an event),
// and a token subject WorkOS answered 404 for is refused without asking again
// for kUnknownSubjectMs. Concurrent reads of one user are merged by the
// WorkosProfileSource. Both memories hold at most kMaxRemembered entries.
inline constexpr int64_t kPictureReuseMs = 5000;
inline constexpr int64_t kUnknownSubjectMs = 60000;
inline constexpr size_t kMaxRemembered = 4096;

class UsersService {
 public:
  UsersService(store::Store* store, store::Writer* writer, WorkosProfileSource* workos, const Clock& clock,
               ServiceOptions options);

  void Me(const auth::Claims& caller, OpCallback cb);
  void Update(const auth::Claims& caller, const Json& payload, OpCallback cb);
  void Delete(const auth::Claims& caller, const Json& payload, OpCallback cb);
  void FinalizeOnboarding(const auth::Claims& caller, OpCallback cb);
  void ResetAvatar(const auth::Claims& caller, OpCallback cb);

  void SetOptions(ServiceOptions options);
  // Called on the loop thread after a commit that queued an outbox job.
  void SetOutboxNotifier(std::function<void()> notify) { notify_outbox_ = std::move(notify); }
  uint64_t provisioned() const { return provisioned_; }

 private:
  // Finds the caller's live user, provisioning it when allowed. Fails with
  // kUnauthorized for deleted or unknown (JIT off) users.
  void ResolveCaller(const auth::Claims& caller, std::function<void(Result<store::UserRecord>, OpResult)> cb);
  void Provision(const auth::Claims& caller, std::optional<WorkosProfileSource::Profile> profile,
                 std::function<void(Result<store::UserRecord>, OpResult)> cb);
  // The caller's stored organization and role follow its verified token
  // (SPEC 1 policy): when they differ, one write records the token's, and
  // `cb` runs after it (with the stored user even if that write failed:
  // logged); otherwise `cb` runs at once.
  void FollowClaims(const auth::Claims& caller, store::UserRecord user,
                    std::function<void(Result<store::UserRecord>, OpResult)> cb);
  // The request-path WorkOS memories (see kPictureReuseMs).
  bool KnownUnknown(const std::string& workos_id);
  void RememberUnknown(const std::string& workos_id);
  std::optional<std::optional<std::string>> RecentPicture(const std::string& workos_id);
  void RememberPicture(const std::string& workos_id, const std::optional<std::string>& url);

  store::Store* store_;
  store::Writer* writer_;
  WorkosProfileSource* workos_;
  const Clock& clock_;
  ServiceOptions options_;
  std::function<void()> notify_outbox_;
  uint64_t provisioned_ = 0;
  struct Picture {
    std::optional<std::string> url;
    int64_t read_at_ms;  // monotonic
  };
  std::unordered_map<std::string, Picture> pictures_;          // by WorkOS id
  std::unordered_map<std::string, int64_t> unknown_subjects_;  // WorkOS id -> until (monotonic ms)
};

}  // namespace usersd::domain
