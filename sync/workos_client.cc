#include "sync/workos_client.h"

#include "common/log.h"
#include "sync/workos_pages.h"

namespace usersd::sync {

const char* UpstreamStateName(UpstreamState s) {
  switch (s) {
    case UpstreamState::kUnconfigured: return "unconfigured";
    case UpstreamState::kOnline: return "online";
    case UpstreamState::kOffline: return "offline";
    case UpstreamState::kUnauthorized: return "unauthorized";
  }
  return "unconfigured";
}

bool IsRetryable(const HttpResponse& r) {
  if (r.status == 0) return true;
  return r.status == 408 || r.status == 429 || r.status >= 500;
}

bool IsUnauthorized(const HttpResponse& r) {
  return r.status == 401 || r.status == 403;
}

std::string EncodePathSegment(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

WorkosClient::WorkosClient(HttpClient* http, const Clock& clock, WorkosOptions options)
    : http_(http), clock_(clock), options_(std::move(options)), since_ms_(clock.NowMs()) {}

UpstreamState WorkosClient::state() const {
  if (!Configured()) return UpstreamState::kUnconfigured;
  return answered_;
}

bool WorkosClient::Offline() const {
  if (answered_ == UpstreamState::kOnline) return false;
  // Let one live attempt through per probe interval.
  int64_t now = clock_.MonotonicMs();
  if (now - last_probe_ms_ >= options_.offline_probe_interval_ms) {
    last_probe_ms_ = now;
    return false;
  }
  return true;
}

void WorkosClient::SetOptions(WorkosOptions options) {
  if (options.api_key != options_.api_key) last_unauthorized_log_ms_ = 0;
  options_ = std::move(options);
}

void WorkosClient::Observe(const HttpResponse& r) {
  // Neither says anything about WorkOS: nothing was sent.
  if (r.cancelled || r.queue_full) return;
  answered_once_ = true;
  UpstreamState now_state = UpstreamState::kOnline;
  if (r.status == 0 || r.status == 429 || r.status >= 500) now_state = UpstreamState::kOffline;
  else if (IsUnauthorized(r)) now_state = UpstreamState::kUnauthorized;
  const UpstreamState before = answered_;
  const int64_t mono = clock_.MonotonicMs();
  if (now_state == UpstreamState::kUnauthorized) {
    unauthorized_detail_ = "HTTP " + std::to_string(r.status);
    if (!r.body.empty()) unauthorized_detail_ += ": " + r.body.substr(0, 200);
    // Once when it starts, then at most once a minute while it lasts: each
    // worker backs off on its own, but together they would still repeat it.
    if (before != UpstreamState::kUnauthorized || last_unauthorized_log_ms_ == 0 ||
        mono - last_unauthorized_log_ms_ >= options_.unauthorized_log_interval_ms) {
      last_unauthorized_log_ms_ = mono;
      LogWarn("WorkOS refuses the API key; sync waits and retries until the key is accepted",
              {{"status", std::to_string(r.status)},
               {"key_source", options_.api_key_source},
               {"fix", options_.api_key_advice}});
    }
  } else {
    unauthorized_detail_.clear();
    last_unauthorized_log_ms_ = 0;
  }
  if (now_state == before) return;
  answered_ = now_state;
  since_ms_ = clock_.NowMs();
  if (now_state == UpstreamState::kOffline) {
    last_probe_ms_ = mono;
    LogWarn("WorkOS is unreachable; continuing offline",
            {{"status", std::to_string(r.status)}, {"error", r.status == 0 ? r.error : std::string()}});
  } else if (now_state == UpstreamState::kOnline) {
    LogInfo(before == UpstreamState::kUnauthorized ? "WorkOS accepts the API key again" : "WorkOS is reachable again",
            {{"key_source", options_.api_key_source}});
  } else {
    last_probe_ms_ = mono;
  }
  if (on_state_change_) on_state_change_(before);
}

void WorkosClient::Call(const std::string& method, const std::string& path, std::string body, HttpCallback cb,
                        bool sheddable) {
  HttpRequest req;
  req.method = method;
  req.sheddable = sheddable;
  req.url = options_.base_url + path;
  req.timeout_ms = options_.timeout_ms;
  if (options_.api_key) req.headers.emplace_back("Authorization", "Bearer " + *options_.api_key);
  req.headers.emplace_back("Accept", "application/json");
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(body);
  http_->Send(std::move(req), [this, cb = std::move(cb)](HttpResponse&& r) {
    Observe(r);
    cb(std::move(r));
  });
}

void WorkosClient::ChargeUnpaced() {
  if (budget_) budget_->Charge(clock_.MonotonicMs());
}

void WorkosClient::GetUser(const std::string& workos_id, std::function<void(GetResult)> cb) {
  // One read per user at a time: a storm of resetAvatar calls, or of
  // requests by a user not provisioned yet, costs one GET (issue 21).
  auto [it, first] = reads_.try_emplace(workos_id);
  it->second.push_back(std::move(cb));
  if (!first) {
    reads_merged_++;
    return;
  }
  auto done = [this, workos_id](HttpResponse&& r) {
    GetResult out;
    if (r.queue_full) {
      out.outcome = Outcome::kBusy;
      out.error = r.error;
    } else if (r.status == 200) {
      Json j = Json::parse(r.body, nullptr, false);
      auto p = ParseWorkosUser(j);
      if (p) {
        out.outcome = Outcome::kOk;
        out.profile = std::move(*p);
      } else {
        out.outcome = Outcome::kError;
        out.error = "WorkOS returned an unreadable user";
      }
    } else if (r.status == 404) {
      out.outcome = Outcome::kNotFound;
    } else if (IsRetryable(r) || IsUnauthorized(r)) {
      // A refused key is not the user's fault: the request path serves as
      // if WorkOS were away, and the fill-in waits for a working key.
      out.outcome = Outcome::kUnreachable;
      out.error = r.status == 0 ? r.error : "HTTP " + std::to_string(r.status);
    } else {
      out.outcome = Outcome::kError;
      out.error = "HTTP " + std::to_string(r.status);
    }
    auto node = reads_.extract(workos_id);
    if (node.empty()) return;
    // A waiter may start another read of this user; it is a new one.
    for (auto& waiter : node.mapped()) waiter(out);
  };
  ChargeUnpaced();
  Call("GET", "/user_management/users/" + EncodePathSegment(workos_id), {}, std::move(done), /*sheddable=*/true);
}

void WorkosClient::PutUser(const std::string& workos_id, const Json& fields, HttpCallback cb) {
  Call("PUT", "/user_management/users/" + EncodePathSegment(workos_id),
       fields.dump(-1, ' ', false, Json::error_handler_t::replace), std::move(cb));
}

void WorkosClient::GetUserRaw(const std::string& workos_id, HttpCallback cb) {
  Call("GET", "/user_management/users/" + EncodePathSegment(workos_id), {}, std::move(cb));
}

void WorkosClient::DeleteUser(const std::string& workos_id, HttpCallback cb) {
  Call("DELETE", "/user_management/users/" + EncodePathSegment(workos_id), {}, std::move(cb));
}

void WorkosClient::ListEvents(const std::optional<std::string>& after, const std::optional<std::string>& range_start,
                              int limit, HttpCallback cb) {
  ChargeUnpaced();
  // events[] is the filter form WorkOS documents (brackets percent-encoded);
  // order=asc because WorkOS lists newest first unless asked otherwise.
  std::string path = "/events?events%5B%5D=user.created&events%5B%5D=user.updated&events%5B%5D=user.deleted"
                     "&order=asc&limit=" +
                     std::to_string(limit);
  if (after) path += "&after=" + EncodePathSegment(*after);
  else if (range_start) path += "&range_start=" + EncodePathSegment(*range_start);
  Call("GET", path, {}, std::move(cb));
}

void WorkosClient::ListUsers(const std::optional<std::string>& after, int limit, HttpCallback cb) {
  std::string path = "/user_management/users?order=asc&limit=" + std::to_string(limit);
  if (after) path += "&after=" + EncodePathSegment(*after);
  Call("GET", path, {}, std::move(cb));
}

void WorkosClient::Fetch(const std::string& url, HttpCallback cb) {
  ChargeUnpaced();
  HttpRequest req;
  req.method = "GET";
  req.url = url;
  req.timeout_ms = options_.timeout_ms;
  req.headers.emplace_back("Accept", "application/json");
  http_->Send(std::move(req), std::move(cb));
}

void WorkosClient::ExportMetrics(Metrics& m) const {
  const UpstreamState s = state();
  m.Describe("usersd_upstream_online", "gauge", "1 when WorkOS answers, 0 when offline.");
  m.Set("usersd_upstream_online", {}, s == UpstreamState::kOffline ? 0.0 : 1.0);
  m.Describe("usersd_upstream_state", "gauge",
             "1 for the upstream state usersd is in (online, offline, unauthorized, unconfigured), 0 for the others.");
  for (UpstreamState each :
       {UpstreamState::kOnline, UpstreamState::kOffline, UpstreamState::kUnauthorized, UpstreamState::kUnconfigured}) {
    m.Set("usersd_upstream_state", {{"state", UpstreamStateName(each)}}, each == s ? 1.0 : 0.0);
  }
  m.Describe("usersd_workos_reads_merged_total", "counter",
             "Request-path WorkOS reads of a user that joined one already in flight.");
  m.Set("usersd_workos_reads_merged_total", {}, static_cast<double>(reads_merged_));
}

}  // namespace usersd::sync
