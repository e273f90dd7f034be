#include "sync/jwks_manager.h"

#include <fstream>
#include <sstream>

#include "common/log.h"
#include "store/meta_keys.h"

namespace usersd::sync {

JwksManager::JwksManager(uv_loop_t* loop, WorkosClient* workos, store::Store* store, store::Writer* writer,
                         auth::Authenticator* auth, const Clock& clock, JwksOptions options)
    : loop_(loop), workos_(workos), store_(store), writer_(writer), auth_(auth), clock_(clock),
      options_(std::move(options)) {}

JwksManager::~JwksManager() = default;

void JwksManager::Install(std::shared_ptr<const auth::Jwks> jwks, int64_t fetched_at_ms) {
  for (const auto& s : jwks->skipped()) LogWarn("JWKS entry skipped", {{"reason", s}});
  auth_->SetJwks(std::move(jwks));
  loaded_at_ms_ = fetched_at_ms;
}

Status JwksManager::Start() {
  if (options_.file) {
    std::ifstream in(*options_.file);
    if (!in) return Status::IOError("auth.jwks_file: cannot read " + *options_.file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto jwks = auth::Jwks::Parse(ss.str());
    if (!jwks.ok()) return Status::InvalidArgument("auth.jwks_file: " + jwks.status().message());
    Install(std::move(*jwks), clock_.NowMs());
    LogInfo("loaded JWKS from file", {{"keys", std::to_string(keys())}});
  } else {
    auto txn = store_->BeginRead();
    if (txn.ok()) {
      auto text = txn->GetMeta(store::kMetaJwks);
      auto at = txn->GetMeta(store::kMetaJwksFetchedAt);
      if (text.ok() && text->has_value()) {
        auto jwks = auth::Jwks::Parse(**text);
        if (jwks.ok()) {
          int64_t fetched = at.ok() && at->has_value() ? std::strtoll((*at)->c_str(), nullptr, 10) : clock_.NowMs();
          Install(std::move(*jwks), fetched);
          LogInfo("loaded cached JWKS from the store", {{"keys", std::to_string(keys())}});
        }
      }
    }
  }
  if (options_.url) {
    started_ = true;
    Refresh([](Status) {});
    Arm();
  }
  return Status::Ok();
}

void JwksManager::Arm() {
  if (!started_ || closed_) return;
  uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(1, options_.refresh_seconds)) * 1000;
  timer_.Start(loop_, ms, 0, [this] {
    Refresh([](Status) {});
    Arm();
  });
}

void JwksManager::SetRefreshSeconds(int64_t s) {
  options_.refresh_seconds = s;
  Arm();
}

void JwksManager::Refresh(std::function<void(Status)> done) {
  if (!options_.url || closed_) {
    done(Status::Unavailable("no JWKS URL configured"));
    return;
  }
  // An unconfigured daemon contacts nothing (SPEC 4); the App refreshes once
  // a reload completes the configuration.
  if (!workos_->Configured()) {
    done(Status::Unavailable("WorkOS is not configured"));
    return;
  }
  waiting_.push_back(std::move(done));
  if (fetching_) return;  // joins the fetch under way
  fetching_ = true;
  workos_->Fetch(*options_.url, [this](HttpResponse&& r) {
    fetching_ = false;
    Status st;
    if (r.cancelled) {
      st = Status::Unavailable("shutting down");
    } else if (r.status != 200) {
      st = Status::Unavailable(r.status == 0 ? "JWKS fetch failed: " + r.error
                                             : "JWKS fetch returned HTTP " + std::to_string(r.status));
    } else {
      auto jwks = auth::Jwks::Parse(r.body);
      if (!jwks.ok()) {
        st = Status::InvalidArgument("JWKS document refused: " + jwks.status().message());
      } else if ((*jwks)->size() == 0) {
        st = Status::InvalidArgument("JWKS document has no usable keys");
      } else {
        std::string text = (*jwks)->text();
        int64_t now = clock_.NowMs();
        bool changed = !auth_->jwks() || auth_->jwks()->text() != text;
        Install(std::move(*jwks), now);
        if (changed) LogInfo("JWKS updated", {{"keys", std::to_string(keys())}});
        writer_->Submit(
            [text, now](store::WriteTxn& t) -> Status {
              USERSD_RETURN_IF_ERROR(t.PutMeta(store::kMetaJwks, text));
              return t.PutMeta(store::kMetaJwksFetchedAt, std::to_string(now));
            },
            [](Status s) {
              if (!s.ok()) LogWarn("could not cache JWKS in the store", {{"error", s.ToString()}});
            });
      }
    }
    if (!st.ok() && !r.cancelled) LogWarn("JWKS refresh failed", {{"error", st.message()}});
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& w : waiting) w(st);
  });
}

void JwksManager::Close() {
  closed_ = true;
  timer_.Close();
}

size_t JwksManager::keys() const { return auth_->jwks() ? auth_->jwks()->size() : 0; }

int64_t JwksManager::age_ms() const { return loaded_at_ms_ < 0 ? -1 : clock_.NowMs() - loaded_at_ms_; }

void JwksManager::ExportMetrics(Metrics& m) const {
  m.Describe("usersd_jwks_keys", "gauge", "Signing keys in use.");
  m.Describe("usersd_jwks_age_seconds", "gauge", "Seconds since the keys in use were fetched or loaded (-1: none).");
  m.Set("usersd_jwks_keys", {}, static_cast<double>(keys()));
  int64_t age = age_ms();
  m.Set("usersd_jwks_age_seconds", {}, age < 0 ? -1.0 : age / 1000.0);
}

}  // namespace usersd::sync
