#include "domain/users_api.h"

#include <chrono>
#include <string_view>

#include "common/log.h"

namespace usersd::domain {

namespace {

using Method = UsersApi::Method;
static_assert(UsersApi::kNumMethods == 5, "a new method needs a tag in Lookup and MethodName");
static_assert(OpResult::kNumKinds == 5, "a new OpResult::Kind needs a label in OutcomeLabel (and kInternal last)");

Method Lookup(std::string_view tag) {
  if (tag == "user.me") return Method::kMe;
  if (tag == "user.update") return Method::kUpdate;
  if (tag == "user.delete") return Method::kDelete;
  if (tag == "user.finalizeOnboarding") return Method::kFinalize;
  if (tag == "user.resetAvatar") return Method::kResetAvatar;
  return Method::kUnknown;
}

const char* OutcomeLabel(OpResult::Kind k) {
  switch (k) {
    case OpResult::Kind::kOk: return "ok";
    case OpResult::Kind::kUnauthorized: return "unauthorized";
    case OpResult::Kind::kNotFound: return "not_found";
    case OpResult::Kind::kInvalid: return "invalid";
    case OpResult::Kind::kInternal: return "internal";
  }
  return "internal";
}

}  // namespace

ipc::Outcome ToOutcome(const OpResult& r) {
  switch (r.kind) {
    case OpResult::Kind::kOk:
      return r.raw.empty() ? ipc::Outcome::Success(r.value) : ipc::Outcome::SuccessRaw(r.raw);
    case OpResult::Kind::kUnauthorized: return ipc::Outcome::Unauthorized(r.message, r.detail);
    case OpResult::Kind::kNotFound: return ipc::Outcome::UserNotFound(r.user_id);
    case OpResult::Kind::kInvalid: return ipc::Outcome::Die(r.message, ipc::kInvalidParams);
    case OpResult::Kind::kInternal: return ipc::Outcome::InternalServerError(r.message, r.detail);
  }
  return ipc::Outcome::Die("unreachable", -32603, "InternalError");
}

const char* MethodName(Method m) {
  switch (m) {
    case Method::kMe: return "user.me";
    case Method::kUpdate: return "user.update";
    case Method::kDelete: return "user.delete";
    case Method::kFinalize: return "user.finalizeOnboarding";
    case Method::kResetAvatar: return "user.resetAvatar";
    case Method::kUnknown: break;
  }
  return "unknown";
}

UsersApi::UsersApi(auth::Authenticator* auth, UsersService* service, Metrics* metrics, const Clock& clock)
    : auth_(auth), service_(service), metrics_(metrics), clock_(clock) {
  metrics_->Describe("usersd_requests_total", "counter", "Application socket requests by method and outcome.");
  metrics_->Describe("usersd_request_duration_seconds", "histogram", "Application request latency.");
  metrics_->Describe("usersd_token_failures_total", "counter", "Refused tokens by reason.");
}

std::unique_ptr<ipc::ConnectionState> UsersApi::NewConnectionState() { return std::make_unique<ConnState>(); }

void UsersApi::Dispatch(const ipc::Request& request, ipc::Responder responder) {
  Method m = Lookup(request.tag);
  if (m == Method::kUnknown) {
    metrics_->Inc("usersd_requests_total", {{"method", "unknown"}, {"outcome", "unknown_method"}});
    responder.Reply(ipc::Outcome::Die("unknown method \"" + request.tag + "\"", ipc::kMethodNotFound));
    return;
  }
  // The connection's token memo (created on its first request). This is
  // the server's one dispatcher, so the state is the ConnState made below.
  auth::TokenMemo* memo = nullptr;
  if (ipc::ConnectionState* state = responder.connection_state()) memo = &static_cast<ConnState*>(state)->memo;
  int64_t start = clock_.MonotonicMs();
  auto t0 = std::chrono::steady_clock::now();
  // Loop thread only (the Dispatcher contract), so the lazily resolved
  // series need no lock; each one appears in /metrics once first used.
  auto finish = [this, responder = std::move(responder), m, t0, start](OpResult r) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t mi = static_cast<size_t>(m), ki = static_cast<size_t>(r.kind);
    const char* tag = MethodName(m);
    if (!requests_[mi][ki])
      requests_[mi][ki] = metrics_->CounterRef("usersd_requests_total", {{"method", tag}, {"outcome", OutcomeLabel(r.kind)}});
    requests_[mi][ki]->fetch_add(1, std::memory_order_relaxed);
    if (!durations_[mi]) durations_[mi] = metrics_->HistogramRef("usersd_request_duration_seconds", {{"method", tag}});
    durations_[mi]->Observe(secs);
    if (LogEnabled(LogLevel::kDebug)) {
      LogDebug("request", {{"method", tag},
                           {"outcome", OutcomeLabel(r.kind)},
                           {"duration_ms", std::to_string(clock_.MonotonicMs() - start)},
                           {"detail", r.kind == OpResult::Kind::kOk ? std::string() : r.message + " " + r.detail}});
    }
    // The success value moves into the reply instead of being copied.
    if (r.kind == OpResult::Kind::kOk)
      responder.Reply(r.raw.empty() ? ipc::Outcome::Success(std::move(r.value)) : ipc::Outcome::SuccessRaw(std::move(r.raw)));
    else responder.Reply(ToOutcome(r));
  };
  if (!unconfigured_message_.empty()) {
    OpResult r = OpResult::Internal(unconfigured_detail_);
    r.message = unconfigured_message_;
    finish(std::move(r));
    return;
  }
  // Only the methods that read a payload copy it.
  Json payload = (m == Method::kUpdate || m == Method::kDelete) ? request.payload : Json();
  auth_->Authenticate(request.Header("authorization"),
                      [this, m, payload = std::move(payload), finish = std::move(finish)](auth::AuthResult ar) mutable {
    if (auto* f = std::get_if<auth::VerifyFailure>(&ar)) {
      metrics_->Inc("usersd_token_failures_total", {{"reason", auth::TokenErrorName(f->error)}});
      // A refused issuer is usually a configuration mistake: logged, at
      // most once a minute for the same detail.
      if (f->error == auth::TokenError::kBadIssuer) {
        int64_t now = clock_.MonotonicMs();
        if (f->detail != last_bad_issuer_ || now - last_bad_issuer_log_ms_ >= 60000) {
          last_bad_issuer_ = f->detail;
          last_bad_issuer_log_ms_ = now;
          LogWarn("token refused: issuer not in auth.issuers", {{"detail", f->detail}});
        }
      }
      finish(OpResult::Unauthorized(f->detail));
      return;
    }
    // Shared with the token cache: no copy of the claims.
    std::shared_ptr<const auth::Claims> held = std::get<std::shared_ptr<const auth::Claims>>(std::move(ar));
    const auth::Claims& claims = *held;
    switch (m) {
      case Method::kMe: service_->Me(claims, std::move(finish)); break;
      case Method::kUpdate: service_->Update(claims, payload, std::move(finish)); break;
      case Method::kDelete: service_->Delete(claims, payload, std::move(finish)); break;
      case Method::kFinalize: service_->FinalizeOnboarding(claims, std::move(finish)); break;
      case Method::kResetAvatar: service_->ResetAvatar(claims, std::move(finish)); break;
      case Method::kUnknown: break;
    }
  }, memo);
}

}  // namespace usersd::domain
