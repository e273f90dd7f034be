#include "domain/users_api.h"

#include <chrono>
#include <string_view>

#include "common/log.h"

namespace usersd::domain {

namespace {

enum class Method { kMe, kUpdate, kDelete, kFinalize, kResetAvatar, kUnknown };

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
      return ipc::Outcome::Success(r.value);
    case OpResult::Kind::kUnauthorized:
      return ipc::Outcome::Fail(Json{{"_tag", "UnauthorizedError"}, {"message", r.message}, {"detail", r.detail}}, 401,
                                r.message + ": " + r.detail);
    case OpResult::Kind::kNotFound:
      return ipc::Outcome::Fail(Json{{"_tag", "UserNotFoundError"}, {"userId", r.user_id}}, 404,
                                "User not found: " + r.user_id);
    case OpResult::Kind::kInvalid:
      return ipc::Outcome::Die(r.message, ipc::kInvalidParams);
    case OpResult::Kind::kInternal: {
      Json e{{"_tag", "InternalServerError"}, {"message", r.message}};
      if (!r.detail.empty()) e["detail"] = r.detail;
      return ipc::Outcome::Fail(e, 500, r.message + (r.detail.empty() ? "" : ": " + r.detail));
    }
  }
  return ipc::Outcome::Die("unreachable", -32603, "InternalError");
}

UsersApi::UsersApi(auth::Authenticator* auth, UsersService* service, Metrics* metrics, const Clock& clock)
    : auth_(auth), service_(service), metrics_(metrics), clock_(clock) {}

void UsersApi::Dispatch(const ipc::Request& request, ipc::Responder responder) {
  Method m = Lookup(request.tag);
  if (m == Method::kUnknown) {
    metrics_->Inc("usersd_requests_total", {{"method", "unknown"}, {"outcome", "unknown_method"}});
    responder.Reply(ipc::Outcome::Die("unknown method \"" + request.tag + "\"", ipc::kMethodNotFound));
    return;
  }
  int64_t start = clock_.MonotonicMs();
  auto t0 = std::chrono::steady_clock::now();
  std::string tag = request.tag;
  auto finish = [this, responder, tag, t0, start](const OpResult& r) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics_->Inc("usersd_requests_total", {{"method", tag}, {"outcome", OutcomeLabel(r.kind)}});
    metrics_->Observe("usersd_request_duration_seconds", {{"method", tag}}, secs);
    if (LogEnabled(LogLevel::kDebug)) {
      LogDebug("request", {{"method", tag},
                           {"outcome", OutcomeLabel(r.kind)},
                           {"duration_ms", std::to_string(clock_.MonotonicMs() - start)},
                           {"detail", r.kind == OpResult::Kind::kOk ? std::string() : r.message + " " + r.detail}});
    }
    responder.Reply(ToOutcome(r));
  };
  Json payload = request.payload;
  auth_->Authenticate(request.Header("authorization"), [this, m, payload, finish](auth::AuthResult ar) {
    if (auto* f = std::get_if<auth::VerifyFailure>(&ar)) {
      metrics_->Inc("usersd_token_failures_total", {{"reason", auth::TokenErrorName(f->error)}});
      finish(OpResult::Unauthorized(f->detail));
      return;
    }
    const auth::Claims& claims = std::get<auth::Claims>(ar);
    switch (m) {
      case Method::kMe: service_->Me(claims, finish); break;
      case Method::kUpdate: service_->Update(claims, payload, finish); break;
      case Method::kDelete: service_->Delete(claims, payload, finish); break;
      case Method::kFinalize: service_->FinalizeOnboarding(claims, finish); break;
      case Method::kResetAvatar: service_->ResetAvatar(claims, finish); break;
      case Method::kUnknown: break;
    }
  });
}

}  // namespace usersd::domain
