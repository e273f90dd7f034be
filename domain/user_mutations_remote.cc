// domain/user_mutations.h, the part that applies what WorkOS shows (events,
// reconciliation, fetches, the answers to this host's publishes) and settles
// publishes: merges by version, re-keying, the outbox's completions, dead
// letters sent again, and the conversion of an earlier release's outbox.
#include "common/log.h"
#include "common/text.h"
#include "domain/user_mutations.h"
#include "domain/user_mutations_internal.h"
#include "domain/versions.h"
#include "store/meta_keys.h"

namespace usersd::domain {

using namespace internal;

namespace {

// The WorkOS-owned fields pending jobs still have to deliver. Shared
// fields are never held: their versions decide.
HeldFields HeldBy(const std::vector<OutboxJob>& jobs) {
  HeldFields held;
  for (const auto& j : jobs) {
    if (j.op != JobOp::kUpdate || !j.fields.is_object()) continue;
    for (auto it = j.fields.begin(); it != j.fields.end(); ++it)
      if (OwnedFieldIndex(it.key())) held.insert(it.key());
  }
  return held;
}

// Stores `after` over `before`: a change an application sees gets a
// transactionId and a change-feed entry (Commit, updatedAt set when
// `touch`); bookkeeping alone (versions, what WorkOS showed) is stored in
// place. Nothing when neither differs.
Status Save(WriteTxn& t, UserRecord& after, const UserRecord& before, bool touch, const MutationContext& c,
            bool* visible) {
  *visible = VisiblyDiffers(after, before);
  if (*visible) {
    if (touch) after.updated_at_ms = c.now_ms;
    return WriteChange(t, after, before, ChangeOp::kUpsert, c);
  }
  if (!BookkeepingDiffers(after, before)) return Status::Ok();
  after.txid = before.txid;
  after.updated_at_ms = before.updated_at_ms;
  return t.PutUser(after, before);
}

// `answer`: the profile is WorkOS's answer to this host's own PUT, so a held
// field it shows otherwise differs only because of a write made here since
// (sent next); nothing to read again.
Result<RemoteOutcome> ApplyMerge(WriteTxn& t, const Profile& p, const UserRecord& before, MergeMode mode,
                                 const MutationContext& c, bool answer = false, bool republish = true) {
  auto jobs = t.JobsOfUser(before.id);
  if (!jobs.ok()) return jobs.status();
  HeldFields held = HeldBy(*jobs);
  MergeResult r = MergeProfile(before, p, held, mode, c.sync->metadata);
  USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
  if (!held.empty() && mode == MergeMode::kFeed && !answer) {
    // WorkOS shows another value for a field this host still has to
    // deliver. The job may already be delivered (its row not yet deleted),
    // and another host's write may have come after it: the user is marked,
    // and read again once this host's jobs are through (QueueResyncIfMarked),
    // so the last write to WorkOS wins here too (SPEC 4b).
    MergeResult unheld = MergeProfile(before, p, {}, mode, c.sync->metadata);
    if (VisiblyDiffers(unheld.after, r.after) || unheld.wanted_email != r.wanted_email)
      USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(store::kMetaResyncPrefix) + before.id, "1"));
  }
  USERSD_RETURN_IF_ERROR(SettleEmail(t, r));
  UserRecord& after = r.after;
  // updatedAt says when this host last changed what an application sees
  // (not WorkOS's picture or external_id as such).
  bool visible = false;
  USERSD_RETURN_IF_ERROR(Save(t, after, before, ApplicationSeesChange(after, before), c, &visible));
  if (republish) USERSD_RETURN_IF_ERROR(PublishIfBehind(t, after, c));
  if (!visible) return RemoteOutcome::kUnchanged;
  if (auto target = RekeyTarget(after)) USERSD_RETURN_IF_ERROR(RekeyUser(t, after, *target, c));
  return RemoteOutcome::kUpdated;
}

// A stale state of a live or deleted user: only its document, by version.
Result<RemoteOutcome> ApplyStaleDocument(WriteTxn& t, const Profile& p, const UserRecord& before,
                                         const MutationContext& c) {
  MergeResult r = MergeStaleDocument(before, p, c.sync->metadata);
  USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
  bool visible = false;
  USERSD_RETURN_IF_ERROR(Save(t, r.after, before, /*touch=*/true, c, &visible));
  USERSD_RETURN_IF_ERROR(PublishIfBehind(t, r.after, c));
  return visible ? RemoteOutcome::kUpdated : RemoteOutcome::kStale;
}

}  // namespace


Result<bool> QueueResyncIfMarked(WriteTxn& t, const std::string& user_id, const MutationContext& c) {
  std::string key = std::string(store::kMetaResyncPrefix) + user_id;
  auto mark = t.GetMeta(key);
  if (!mark.ok()) return mark.status();
  if (!mark->has_value()) return false;
  auto jobs = t.JobsOfUser(user_id);
  if (!jobs.ok()) return jobs.status();
  if (!HeldBy(*jobs).empty()) return false;  // not through yet: the last delivery queues it
  USERSD_RETURN_IF_ERROR(t.DeleteMeta(key));
  auto u = t.GetUser(user_id);
  if (!u.ok()) return u.status();
  if (!u->has_value() || !(*u)->live()) return false;
  USERSD_RETURN_IF_ERROR(Enqueue(t, **u, JobOp::kFetch, Json{{"resync", true}}, c, nullptr));
  return true;
}

Result<HeldFields> PendingFields(store::ReadTxn& t, std::string_view user_id) {
  auto jobs = t.JobsOfUser(user_id);
  if (!jobs.ok()) return jobs.status();
  return HeldBy(*jobs);
}

// --------------------------------------------------- WorkOS's view

namespace {

// `republish` false: the profile is the answer to a publish whose document
// did not take; sending it again would only make another dead letter.
Result<RemoteOutcome> ApplyRemote(WriteTxn& t, const Profile& p, const MutationContext& c, bool answer,
                                  bool republish = true) {
  auto existing = t.FindByWorkosId(p.workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    auto id = FreeIdFor(t, p.workos_id, p.external_id, c);
    if (!id.ok()) return id.status();
    MergeResult r = NewFromProfile(*id, p, c.now_ms, c.sync->metadata);
    USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
    USERSD_RETURN_IF_ERROR(SettleEmail(t, r));
    USERSD_RETURN_IF_ERROR(WriteChange(t, r.after, std::nullopt, ChangeOp::kUpsert, c));
    return RemoteOutcome::kCreated;
  }
  const UserRecord& before = **existing;
  if (!before.live()) return RemoteOutcome::kUnchanged;  // deleted here; the DELETE is on its way or done
  if (IsStale(before, p)) return ApplyStaleDocument(t, p, before, c);
  return ApplyMerge(t, p, before, MergeMode::kFeed, c, answer, republish);
}

}  // namespace

Result<RemoteOutcome> ApplyRemoteUser(WriteTxn& t, const Profile& p, const MutationContext& c) {
  return ApplyRemote(t, p, c, /*answer=*/false);
}

Result<RemoteOutcome> ApplyRemoteDelete(WriteTxn& t, std::string_view workos_id, const MutationContext& c,
                                        const Profile* last) {
  auto existing = t.FindByWorkosId(workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) return RemoteOutcome::kUnchanged;
  const UserRecord& before = **existing;
  UserRecord after = before;
  if (last) {
    // Pending jobs of a user WorkOS deleted can no longer be delivered, so
    // nothing is held; the document merges by version even when stale.
    bool stale = IsStale(before, *last);
    // A value written here that WorkOS never got (the user was gone) cannot
    // reach it any more: every host shows the last state WorkOS had.
    MergeResult r = stale ? MergeStaleDocument(before, *last, c.sync->metadata)
                          : MergeProfile(before, *last, {}, MergeMode::kLast, c.sync->metadata);
    USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
    // A deleted user holds no email in the index: it is taken as shown.
    if (r.wanted_email) r.after.email = *r.wanted_email;
    after = std::move(r.after);
  }
  bool was_live = before.live();
  if (was_live) after.deleted_at_ms = c.now_ms;
  if (!was_live && !VisiblyDiffers(after, before)) {
    if (BookkeepingDiffers(after, before)) {
      after.txid = before.txid;
      USERSD_RETURN_IF_ERROR(t.PutUser(after, before));
    }
    return RemoteOutcome::kUnchanged;
  }
  after.updated_at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(WriteChange(t, after, before, ChangeOp::kDelete, c));
  return was_live ? RemoteOutcome::kDeleted : RemoteOutcome::kUpdated;
}

Result<RemoteOutcome> ApplyFetchedProfile(WriteTxn& t, const Profile& p, bool resync, const MutationContext& c) {
  if (resync) return ApplyRemoteUser(t, p, c);
  auto cur = t.FindByWorkosId(p.workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || !(*cur)->live()) return RemoteOutcome::kUnchanged;
  const UserRecord before = **cur;
  auto r = ApplyMerge(t, p, before, MergeMode::kFill, c);
  if (!r.ok()) return r;
  if (!p.external_id) {
    auto now = t.FindByWorkosId(p.workos_id);
    if (!now.ok()) return now.status();
    if (now->has_value()) USERSD_RETURN_IF_ERROR(EnqueuePublishId(t, **now, c, nullptr));
  }
  return r;
}

Status LearnExternalId(WriteTxn& t, std::string_view workos_id, const std::optional<std::string>& external_id,
                       const MutationContext& c) {
  auto cur = t.FindByWorkosId(workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return Status::Ok();
  const UserRecord& before = **cur;
  UserRecord after = before;
  after.external_id = external_id.value_or(std::string());
  // Bookkeeping, not a change an application sees: updatedAt stays.
  if (after.external_id != before.external_id)
    USERSD_RETURN_IF_ERROR(WriteChange(t, after, before, ChangeOp::kUpsert, c));
  if (auto target = RekeyTarget(after)) return RekeyUser(t, after, *target, c);
  return Status::Ok();
}

namespace {

// Takes what `sent` delivered out of the pending job `job` (its fields equal
// to what was sent; "doc" when no shared version of `u` is above the sent
// ones; external_id). Returns whether anything is left.
bool TakeDelivered(OutboxJob& job, const PublishSent& sent, const std::optional<UserRecord>& u) {
  if (!job.fields.is_object()) return false;
  for (auto it = sent.owned.begin(); it != sent.owned.end(); ++it) {
    auto have = job.fields.find(it.key());
    if (have != job.fields.end() && *have == it.value()) job.fields.erase(have);
  }
  if (sent.doc) {
    bool newer = false;
    if (u)
      for (size_t i = 0; i < kSharedFields.size(); ++i) newer = newer || sent.doc_versions[i] < u->shared_versions[i];
    if (!newer) {
      job.fields.erase(std::string(kJobDocument));
      for (auto name : kSharedFields) job.fields.erase(std::string(name));
    }
  }
  if (sent.external_id) {
    auto have = job.fields.find("external_id");
    if (have != job.fields.end() && have->is_string() && have->get<std::string>() == *sent.external_id) {
      job.fields.erase("external_id");
      job.fields.erase("external_id_import");
    }
  }
  return !job.fields.empty();
}

// The delivered part of the user's jobs `ids` (a publish's batch, oldest
// first) leaves the outbox: all but the last are gone (their fields were
// merged into what was sent and later writes merge only into the last),
// the last keeps what was written since it was sent.
Result<bool> SettleJobs(WriteTxn& t, const std::vector<uint64_t>& ids, const PublishSent& sent,
                        const std::optional<UserRecord>& u, const MutationContext& c) {
  for (size_t i = 0; i + 1 < ids.size(); ++i) USERSD_RETURN_IF_ERROR(t.DeleteJob(ids[i]));
  if (ids.empty()) return false;
  auto job = t.GetJob(ids.back());
  if (!job.ok()) return job.status();
  if (!job->has_value()) return false;
  OutboxJob left = std::move(**job);
  if (left.op != JobOp::kUpdate || !TakeDelivered(left, sent, u)) {
    USERSD_RETURN_IF_ERROR(t.DeleteJob(left.id));
    return false;
  }
  left.attempts = 0;
  left.next_attempt_at_ms = c.now_ms;
  left.last_error.clear();
  USERSD_RETURN_IF_ERROR(t.UpdateJob(left));
  return true;
}

// A dead letter for the parts of a publish that WorkOS refused or did not
// take: the values that were requested (SPEC 4), under the job's version
// so a retry can tell whether a newer local write came since.
Status BuryParts(WriteTxn& t, const OutboxJob& job, const PublishSent& sent, const std::vector<std::string>& owned,
                 bool doc, bool external_id, int status, const std::string& body, const MutationContext& c) {
  OutboxJob dead = job;
  dead.fields = Json::object();
  for (const auto& k : owned)
    if (auto it = sent.owned.find(k); it != sent.owned.end()) dead.fields[k] = *it;
  if (doc) dead.fields[std::string(kJobDocument)] = true;
  if (external_id && sent.external_id) dead.fields["external_id"] = *sent.external_id;
  if (dead.fields.empty()) return Status::Ok();
  return t.MoveToDeadLetter(dead, status, body, c.now_ms);
}

std::vector<std::string> OwnedNames(const PublishSent& sent) {
  std::vector<std::string> out;
  for (auto it = sent.owned.begin(); it != sent.owned.end(); ++it) out.push_back(it.key());
  return out;
}

// WorkOS now holds the document that was sent (a 2xx without an answer to
// read, or parts given up as dead letters): the record stops asking for it.
Status MarkDocumentDelivered(WriteTxn& t, const std::string& user_id, const store::SharedVersions& sent) {
  auto cur = t.GetUser(user_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return Status::Ok();
  UserRecord after = **cur;
  for (size_t i = 0; i < kSharedFields.size(); ++i)
    after.workos_versions[i] = std::max(after.workos_versions[i], sent[i]);
  if (after.workos_versions == (*cur)->workos_versions) return Status::Ok();
  return t.PutUser(after, *cur);
}

}  // namespace

Result<PublishOutcome> CompletePublish(WriteTxn& t, const std::vector<uint64_t>& job_ids, const PublishSent& sent,
                                       const std::optional<Profile>& answer, int status, const MutationContext& c) {
  PublishOutcome out;
  if (job_ids.empty()) return out;
  auto first = t.GetJob(job_ids.back());
  if (!first.ok()) return first.status();
  if (!first->has_value()) return out;  // gone meanwhile (a dead letter retried, a re-key merged it)
  const OutboxJob job = **first;

  NotTaken not_taken;
  if (answer) not_taken = FieldsNotTaken(sent, *answer, c.sync->metadata);
  auto u = t.GetUser(job.user_id);
  if (!u.ok()) return u.status();
  auto kept = SettleJobs(t, job_ids, sent, *u, c);
  if (!kept.ok()) return kept.status();
  out.job_kept = *kept;
  if (!not_taken.empty()) {
    // WorkOS said yes but shows another value: the change did not take. A
    // dead letter naming the field and keeping the value asked for, instead
    // of a silent revert when the next event arrives (SPEC 4).
    out.not_taken = not_taken.body;
    USERSD_RETURN_IF_ERROR(
        BuryParts(t, job, sent, not_taken.owned, not_taken.doc, not_taken.external_id, status, not_taken.body, c));
  }
  if (answer && !answer->workos_id.empty()) {
    // The answer is WorkOS's state after the change: applied like an event,
    // so this host has what WorkOS has (also fields another host changed),
    // and events older than it are stale. A field not taken is no longer
    // held, so it returns to WorkOS's value here (and an email it claimed
    // goes to whoever waits for it).
    auto r = ApplyRemote(t, *answer, c, /*answer=*/true, /*republish=*/!not_taken.doc);
    if (!r.ok()) return r.status();
  }
  if (sent.doc && (!answer || !answer->has_metadata || not_taken.doc))
    USERSD_RETURN_IF_ERROR(MarkDocumentDelivered(t, job.user_id, sent.doc_versions));
  auto q = QueueResyncIfMarked(t, job.user_id, c);
  if (!q.ok()) return q.status();
  out.queued_resync = *q;
  return out;
}

Result<PublishOutcome> RefusePublish(WriteTxn& t, const std::vector<uint64_t>& job_ids, const PublishSent& sent,
                                     int status, const std::string& body, const MutationContext& c) {
  PublishOutcome out;
  if (job_ids.empty()) return out;
  auto first = t.GetJob(job_ids.back());
  if (!first.ok()) return first.status();
  if (!first->has_value()) return out;
  const OutboxJob job = **first;
  auto u = t.GetUser(job.user_id);
  if (!u.ok()) return u.status();
  std::vector<std::string> owned = OwnedNames(sent);
  USERSD_RETURN_IF_ERROR(BuryParts(t, job, sent, owned, sent.doc, sent.external_id.has_value(), status, body, c));
  auto kept = SettleJobs(t, job_ids, sent, *u, c);
  if (!kept.ok()) return kept.status();
  out.job_kept = *kept;
  // A document WorkOS refused (too many metadata keys with the
  // application's) is not sent again until a newer write, or a retry.
  if (sent.doc) USERSD_RETURN_IF_ERROR(MarkDocumentDelivered(t, job.user_id, sent.doc_versions));
  // Values WorkOS refused return to WorkOS's (an email claimed here is
  // released, SPEC 1): read the user again once this host's jobs are through.
  if (!owned.empty() && u->has_value() && (*u)->live()) {
    USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(store::kMetaResyncPrefix) + job.user_id, "1"));
    auto q = QueueResyncIfMarked(t, job.user_id, c);
    if (!q.ok()) return q.status();
    out.queued_resync = *q;
  }
  return out;
}

Result<bool> RequeueDeadLetter(WriteTxn& t, const store::DeadLetter& dl, const MutationContext& c) {
  OutboxJob job = dl.job;
  job.id = 0;
  job.attempts = 0;
  job.next_attempt_at_ms = c.now_ms;
  job.created_at_ms = c.now_ms;
  job.last_error.clear();
  if (job.op != JobOp::kUpdate) {
    auto id = t.EnqueueJob(std::move(job));
    if (!id.ok()) return id.status();
    return true;
  }
  auto u = t.GetUser(job.user_id);
  if (!u.ok()) return u.status();
  if (!u->has_value()) return false;
  const UserRecord& user = **u;
  Json fields = Json::object();
  if (job.fields.is_object()) {
    for (auto it = job.fields.begin(); it != job.fields.end(); ++it) {
      const std::string& k = it.key();
      if (auto i = OwnedFieldIndex(k)) {
        // The value that was requested, unless this host wrote the field
        // again since (a newer local write wins; it is sent or on its way).
        if (dl.job.version < user.owned_versions[*i]) continue;
        fields[k] = *it;
      } else if (IsSharedField(k) || k == kJobDocument) {
        // The document as it is now: its versions say what wins.
        fields[std::string(kJobDocument)] = true;
      } else {
        fields[k] = *it;
      }
    }
  }
  if (fields.empty()) return false;
  USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, user, std::move(fields), c, nullptr, dl.job.version));
  return true;
}

Result<size_t> ConvertLegacyJobs(WriteTxn& t, const MutationContext& c) {
  size_t converted = 0;
  uint64_t after = 0;
  for (;;) {
    auto chunk = t.ListJobsAfter(after, 512);
    if (!chunk.ok()) return chunk.status();
    for (auto& job : *chunk) {
      after = job.id;
      if (job.op != JobOp::kUpdate || !job.fields.is_object()) continue;
      std::vector<std::string_view> legacy;
      for (auto name : kSharedFields)
        if (job.fields.contains(std::string(name))) legacy.push_back(name);
      if (legacy.empty()) continue;
      // An undelivered write of an earlier release: its fields get a version
      // now, so no document read before it is delivered can replace them.
      auto u = t.GetUser(job.user_id);
      if (!u.ok()) return u.status();
      if (u->has_value()) {
        UserRecord user = **u;
        std::vector<std::string_view> unversioned;
        for (auto name : legacy)
          if (user.shared_versions[*SharedFieldIndex(name)].zero()) unversioned.push_back(name);
        if (!unversioned.empty()) {
          auto v = StampWrite(t, user, unversioned, {}, c);
          if (!v.ok()) return v.status();
          USERSD_RETURN_IF_ERROR(t.PutUser(user, *u));
        }
      }
      for (auto name : legacy) job.fields.erase(std::string(name));
      job.fields[std::string(kJobDocument)] = true;
      USERSD_RETURN_IF_ERROR(t.UpdateJob(job));
      ++converted;
    }
    if (chunk->size() < 512) break;
  }
  return converted;
}

Status KeepImportedId(WriteTxn& t, std::string_view workos_id, const MutationContext& c) {
  auto cur = t.FindByWorkosId(workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || (*cur)->id_from_import) return Status::Ok();
  UserRecord after = **cur;
  after.id_from_import = true;
  return WriteChange(t, after, *cur, ChangeOp::kUpsert, c);
}

Status RekeyUser(WriteTxn& t, const UserRecord& before, const std::string& new_id, const MutationContext& c) {
  auto taken = t.GetUser(new_id);
  if (!taken.ok()) return taken.status();
  if (taken->has_value()) {
    LogWarn("not re-keying: the id WorkOS carries belongs to another local user",
            {{"user", before.id}, {"external_id", new_id}, {"other", (*taken)->workos_id}});
    return Status::Ok();
  }
  LogInfo("re-keying a user to the id WorkOS carries",
          {{"from", before.id}, {"to", new_id}, {"workos_id", before.workos_id}});
  auto jobs = t.JobsOfUser(before.id);
  if (!jobs.ok()) return jobs.status();
  // The old id leaves the feed as a delete...
  auto txid = t.NextTxid();
  if (!txid.ok()) return txid.status();
  store::Change gone;
  gone.txid = *txid;
  gone.op = ChangeOp::kDelete;
  gone.user = before;
  gone.user.txid = *txid;
  if (!gone.user.deleted_at_ms) gone.user.deleted_at_ms = c.now_ms;
  gone.at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(t.RemoveUser(before.id));
  USERSD_RETURN_IF_ERROR(t.AppendChange(gone));
  // ...and comes back under the new one, with its jobs.
  UserRecord after = before;
  after.id = new_id;
  after.updated_at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(store::WriteUserChange(t, after, std::nullopt, ChangeOp::kUpsert, c.now_ms));
  for (auto& j : *jobs) {
    j.user_id = new_id;
    if (j.fields.is_object() && j.fields.contains("external_id") && !j.fields.contains("external_id_import"))
      j.fields["external_id"] = new_id;
    USERSD_RETURN_IF_ERROR(t.UpdateJob(j));
  }
  return Status::Ok();
}

}  // namespace usersd::domain
