#include "sync/backfill.h"

#include "common/log.h"
#include "store/meta_keys.h"

namespace usersd::sync {

namespace {
constexpr std::string_view kDone = "done";
}  // namespace

ExternalIdBackfill::ExternalIdBackfill(store::Store* store, store::Writer* writer, const Clock& clock,
                                       BackfillOptions opt)
    : store_(store), writer_(writer), clock_(clock), opt_(std::move(opt)) {
  if (!opt_.sync) opt_.sync = std::make_shared<const domain::SyncPolicy>();
  if (opt_.batch == 0) opt_.batch = 1;
}

ExternalIdBackfill::~ExternalIdBackfill() {
  *alive_ = false;
}

void ExternalIdBackfill::Start() {
  stopped_ = false;
  queued_ = 0;
  std::string after;
  {
    auto txn = store_->BeginRead();
    if (!txn.ok()) {
      LogWarn("external_id backfill could not read its position; it resumes at the next start",
              {{"error", txn.status().ToString()}});
      return;
    }
    auto v = txn->GetMeta(store::kMetaExternalIdBackfill);
    if (!v.ok()) {
      LogWarn("external_id backfill could not read its position; it resumes at the next start",
              {{"error", v.status().ToString()}});
      return;
    }
    if (v->has_value()) {
      if (**v == kDone) {
        done_ = true;
        return;
      }
      after = **v;
    }
  }
  Step(std::move(after));
}

void ExternalIdBackfill::Stop() {
  stopped_ = true;
}

void ExternalIdBackfill::Step(std::string after) {
  auto next = std::make_shared<std::string>();
  auto queued = std::make_shared<size_t>(0);
  const int64_t now_ms = clock_.NowMs();
  const size_t limit = opt_.batch;
  running_ = true;
  writer_->Submit(
      // Re-runnable (the writer may replay it): every result is overwritten.
      // The op holds the policy: it may run after this object is gone.
      [after = std::move(after), next, queued, now_ms, limit, sync = opt_.sync](store::WriteTxn& t) -> Status {
        *queued = 0;
        const domain::MutationContext ctx{now_ms, sync.get()};
        auto r = domain::BackfillExternalIds(t, after, limit, ctx, queued.get());
        if (!r.ok()) return r.status();
        *next = *r;
        return t.PutMeta(store::kMetaExternalIdBackfill, r->empty() ? std::string(kDone) : *r);
      },
      [this, alive = alive_, next, queued](Status st) {
        if (!*alive) return;
        running_ = false;
        if (!st.ok()) {
          LogWarn("external_id backfill stopped; it resumes at the next start", {{"error", st.ToString()}});
          return;
        }
        queued_ += *queued;
        if (*queued > 0 && opt_.on_queued) opt_.on_queued();
        if (next->empty()) {
          done_ = true;
          if (queued_ > 0) LogInfo("external_id backfill queued its jobs", {{"jobs", std::to_string(queued_)}});
          return;
        }
        if (!stopped_) Step(*next);
      });
}

}  // namespace usersd::sync
