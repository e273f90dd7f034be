// admin.changes (AdminApi, SPEC 6): the change feed streamed to an admin
// client in acknowledged chunks, polling for new changes once caught up.
#include "admin/handlers.h"
#include "admin/admin_users.h"

namespace usersd::admin {

// ------------------------------------------------------- change stream

// One admin.changes stream. Owned by Handlers::streams from Start() until it
// ends (Interrupt, connection closed, read error); its stream handler and
// poll timer reach it through weak/raw pointers that end with it.
//
// Flow: read up to kChangesPerChunk changes after `after_`, send them as
// one Chunk and wait for the client's Ack; when caught up, poll LastTxid
// every kStreamPollMs and read again once it moved.
struct Handlers::ChangeStream : std::enable_shared_from_this<ChangeStream> {
  ChangeStream(Handlers* api, ipc::Responder r, uint64_t after)
      : api_(api), r_(std::move(r)), after_(after), polled_txid_(after) {}

  void Start() {
    std::weak_ptr<ChangeStream> weak = weak_from_this();
    r_.OnStreamEvent([weak](ipc::StreamEvent e) {
      // `self` keeps the stream alive until OnEvent has returned, even when
      // it ends the stream (deferred delete, never `delete this`).
      if (auto self = weak.lock()) self->OnEvent(e);
    });
    Pump();
  }

  void OnEvent(ipc::StreamEvent e) {
    if (done_) return;
    switch (e) {
      case ipc::StreamEvent::kAck:
        awaiting_ack_ = false;
        Pump();
        break;
      case ipc::StreamEvent::kInterrupt:
        r_.EndStream();
        Finish();
        break;
      case ipc::StreamEvent::kClosed: Finish(); break;
    }
  }

  void Pump() {
    if (done_ || awaiting_ack_) return;
    if (!r_.connected()) return Finish();
    std::vector<store::Change> changes;
    {
      auto txn = api_->deps.store->BeginRead();
      if (!txn.ok()) return Fail(txn.status());
      auto c = txn->ChangesSince(after_ + 1, kChangesPerChunk);
      if (!c.ok()) return Fail(c.status());
      changes = std::move(*c);
      if (changes.empty()) polled_txid_ = std::max(polled_txid_, txn->LastTxid());
    }
    if (changes.empty()) return StartPolling();
    StopPolling();
    Json values = Json::array();
    for (const auto& c : changes) {
      values.push_back(Json{{"transactionId", c.txid},
                            {"op", c.op == ChangeOp::kDelete ? "delete" : "upsert"},
                            {"user", ToAdminUserJson(c.user)}});
    }
    after_ = changes.back().txid;
    polled_txid_ = std::max(polled_txid_, after_);
    awaiting_ack_ = true;
    sent_ += changes.size();
    r_.Chunk(values);
  }

  void OnTick() {
    if (done_ || awaiting_ack_) return;
    uint64_t last = 0;
    {
      auto txn = api_->deps.store->BeginRead();
      if (!txn.ok()) return Fail(txn.status());
      last = txn->LastTxid();
    }
    // A transactionId may be used without a change entry (nothing to
    // send), so only a new id since the last empty read triggers a read.
    if (last > polled_txid_) Pump();
  }

  void StartPolling() {
    if (timer_.open()) return;
    timer_.Start(api_->deps.loop, kStreamPollMs, kStreamPollMs, [this] {
      auto keep = shared_from_this();
      OnTick();
    });
  }

  void StopPolling() { timer_.Close(); }

  void Fail(const Status& st) {
    LogError("admin.changes: reading the change feed failed", {{"error", st.message()}});
    api_->Reply(r_, "admin.changes", Internal("reading the change feed failed", st.message()));
    Finish();
  }

  // Ends the stream: the timer closes and Handlers lets go of it. The caller
  // holds a reference (see Start), so this object outlives the call.
  void Finish() {
    if (done_) return;
    done_ = true;
    StopPolling();
    LogDebug("admin.changes stream ended", {{"sent", std::to_string(sent_)}});
    api_->streams.erase(this);
  }

  Handlers* api_;
  ipc::Responder r_;
  uint64_t after_;        // the last transactionId sent (or the client's since)
  uint64_t polled_txid_;  // LastTxid at the last read that found nothing
  bool awaiting_ack_ = false;
  bool done_ = false;
  uint64_t sent_ = 0;
  UvTimer timer_;
};

// ------------------------------------------------------------- changes

void Handlers::HandleChanges(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto since = U64Param(*p, "sinceTransactionId");
  if (!since.ok()) return Reply(r, q.tag, Invalid(since.status().message()));
  deps.metrics->Inc("usersd_admin_requests_total", {{"method", q.tag}, {"outcome", "stream"}});
  auto s = std::make_shared<ChangeStream>(this, r, since->value_or(0));
  streams.emplace(s.get(), s);
  s->Start();
}

void Handlers::StopStreams() {
  for (auto& [p, s] : streams) s->StopPolling();
}

}  // namespace usersd::admin
