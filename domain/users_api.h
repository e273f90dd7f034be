// UsersApi: the application socket's Dispatcher.
//
// Maps each request tag to a UsersService operation after authenticating the
// caller's bearer token, and each OpResult to the wire (SPEC sections 1-2):
// typed errors become Fail causes (UnauthorizedError 401, UserNotFoundError
// 404, InternalServerError 500), invalid payloads and unknown methods become
// ValidationError defects. Logs each request at debug (method, duration,
// outcome; never the token) and counts it in Metrics.
//
// Loop thread only. Borrows its dependencies.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "auth/authenticator.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "domain/users_service.h"
#include "ipc/server.h"

namespace usersd::domain {

class UsersApi : public ipc::Dispatcher {
 public:
  // The methods served; kUnknown (last) stands for every other tag and has
  // no per-method series.
  enum class Method { kMe, kUpdate, kDelete, kFinalize, kResetAvatar, kUnknown };
  static constexpr size_t kNumMethods = static_cast<size_t>(Method::kUnknown);

  // Describes usersd_requests_total, usersd_request_duration_seconds and
  // usersd_token_failures_total in `metrics`.
  UsersApi(auth::Authenticator* auth, UsersService* service, Metrics* metrics, const Clock& clock);
  void Dispatch(const ipc::Request& request, ipc::Responder responder) override;
  // While `message` is not empty, every request for one of the five methods
  // is answered with InternalServerError {message, detail} before its token
  // is looked at (an unconfigured daemon, SPEC 4: `detail` names the file
  // and keys to set). Unknown methods keep their ValidationError.
  void SetUnconfigured(std::string message, std::string detail) {
    unconfigured_message_ = std::move(message);
    unconfigured_detail_ = std::move(detail);
  }
  std::unique_ptr<ipc::ConnectionState> NewConnectionState() override;

 private:
  // Per connection: its token memo (auth::Authenticator::Authenticate).
  struct ConnState : ipc::ConnectionState {
    auth::TokenMemo memo;
  };
  auth::Authenticator* auth_;
  UsersService* service_;
  Metrics* metrics_;
  const Clock& clock_;
  // Series resolved once, so a request updates metrics without a lock:
  // requests by [method][outcome kind], durations by [method].
  std::atomic<uint64_t>* requests_[kNumMethods][OpResult::kNumKinds] = {};
  Metrics::Hist* durations_[kNumMethods] = {};
  std::string unconfigured_message_, unconfigured_detail_;
  // The last refused-issuer log line (loop thread).
  std::string last_bad_issuer_;
  int64_t last_bad_issuer_log_ms_ = 0;
};

// OpResult to the wire outcome.
ipc::Outcome ToOutcome(const OpResult& r);

}  // namespace usersd::domain
