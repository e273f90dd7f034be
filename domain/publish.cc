#include "domain/publish.h"

#include "common/log.h"
#include "common/text.h"

namespace usersd::domain {

namespace {

std::string DumpText(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool SameExternalId(const std::string& a, const std::string& b) {
  return ToLowerAscii(a) == ToLowerAscii(b);
}

}  // namespace

PublishSent PendingState(const Json& fields, const store::UserRecord& u) {
  PublishSent sent;
  if (!fields.is_object()) return sent;
  for (auto name : kOwnedFields)
    if (auto it = fields.find(std::string(name)); it != fields.end()) sent.owned[std::string(name)] = *it;
  sent.doc = fields.contains(std::string(kJobDocument));
  for (auto name : kSharedFields) sent.doc = sent.doc || fields.contains(std::string(name));
  sent.doc_versions = u.shared_versions;
  if (auto it = fields.find("external_id"); it != fields.end() && it->is_string()) sent.external_id = *it;
  return sent;
}

PublishPlan PlanPublish(const Json& fields, const store::UserRecord& u, const Profile* shown, const SyncPolicy& sync) {
  PublishPlan plan;
  if (!fields.is_object()) return plan;
  const MetadataPolicy& md = sync.metadata;

  bool doc = false;
  if (md.enabled) {
    doc = fields.contains(std::string(kJobDocument));
    for (auto name : kSharedFields) doc = doc || fields.contains(std::string(name));
  }
  std::optional<std::string> want_xid;
  bool imported = false;
  if (auto it = fields.find("external_id"); it != fields.end() && it->is_string()) {
    want_xid = it->get<std::string>();
    imported = fields.value("external_id_import", false);
  }

  if (!shown) {
    bool xid_unknown = want_xid && (imported || !u.external_id ||
                                    (!u.external_id->empty() && !SameExternalId(*u.external_id, *want_xid)));
    bool app_keys = doc && md.read_first == MetadataPolicy::ReadFirst::kAppKeys && u.app_metadata;
    if (xid_unknown || app_keys) {
      plan.read_first = true;
      return plan;
    }
  }

  for (auto name : kOwnedFields) {
    std::string key(name);
    if (auto it = fields.find(key); it != fields.end()) {
      plan.body[key] = *it;
      plan.sent.owned[key] = *it;
    }
  }

  if (doc) {
    SharedDoc d = DocumentOf(u);
    if (shown) {
      // Published over what WorkOS holds now: the merge of both, so a value
      // another host put there since this host last read is kept.
      auto theirs = DecodeDocument(shown->metadata, md);
      if (!theirs.ok()) {
        LogWarn("outbox: WorkOS holds an unreadable shared-fields document; writing this host's",
                {{"workos_id", shown->workos_id}, {"error", theirs.status().message()}});
      } else if (theirs->has_value()) {
        store::UserRecord merged = u;
        MergeDocument(merged, **theirs);
        d = DocumentOf(merged);
      }
    }
    auto metadata = MetadataForPut(EncodeDocument(d), shown ? &shown->metadata : nullptr, md);
    if (!metadata.ok()) {
      plan.refusal = DumpText(
          Json{{"error", "the shared fields cannot be written to WorkOS metadata: " + metadata.status().message()}});
      plan.sent.doc = true;
      plan.sent.doc_versions = d.versions;
      return plan;
    }
    plan.body["metadata"] = std::move(*metadata);
    plan.sent.doc = true;
    plan.sent.doc_versions = d.versions;
  }

  if (want_xid) {
    const std::optional<std::string>& have = shown ? shown->external_id : u.external_id;
    if (!have || have->empty()) {
      plan.body["external_id"] = *want_xid;
      plan.sent.external_id = *want_xid;
    } else if (SameExternalId(*have, *want_xid)) {
      if (shown) plan.learned_external_id = have;
    } else if (imported) {
      plan.refusal = DumpText(Json{
          {"error", "WorkOS already holds another external_id for this user; the imported id stays on this host only"},
          {"external_id", *have},
          {"imported_id", *want_xid}});
      plan.keep_imported_id = true;
      plan.sent.external_id = *want_xid;
    } else {
      // Another host published its id first (a UUID: this host re-keys), or
      // the application owns external_id (never changed).
      plan.learned_external_id = have;
    }
  }
  return plan;
}

NotTaken FieldsNotTaken(const PublishSent& sent, const Profile& answer, const MetadataPolicy& metadata) {
  NotTaken out;
  Json mismatches = Json::array();
  for (auto it = sent.owned.begin(); it != sent.owned.end(); ++it) {
    const std::string& k = it.key();
    const std::string& got = k == "email" ? answer.email : k == "first_name" ? answer.first_name : answer.last_name;
    bool shown = k == "email"        ? answer.shown.email
                 : k == "first_name" ? answer.shown.first_name
                                     : answer.shown.last_name;
    if (!it->is_string() || !shown) continue;
    const std::string& want = it->get_ref<const std::string&>();
    bool same = k == "email" ? EmailKey(got) == EmailKey(want) : got == want;
    if (same) continue;
    out.owned.push_back(k);
    mismatches.push_back(Json{{"field", k}, {"sent", want}, {"answered", got}});
  }
  if (sent.doc && answer.has_metadata && metadata.enabled) {
    auto doc = DecodeDocument(answer.metadata, metadata);
    std::vector<std::string> behind;
    for (size_t i = 0; i < kSharedFields.size(); ++i) {
      bool shows = doc.ok() && doc->has_value() && (*doc)->values[i].has_value();
      if (!shows || (*doc)->versions[i] < sent.doc_versions[i]) behind.emplace_back(kSharedFields[i]);
    }
    if (!behind.empty()) {
      out.doc = true;
      for (const auto& f : behind)
        mismatches.push_back(
            Json{{"field", f}, {"sent", "in the metadata document"}, {"answered", "an older value or none"}});
    }
  }
  if (sent.external_id && answer.shown.external_id) {
    const std::string got = answer.external_id.value_or(std::string());
    if (!SameExternalId(got, *sent.external_id)) {
      out.external_id = true;
      mismatches.push_back(Json{{"field", "external_id"}, {"sent", *sent.external_id}, {"answered", got}});
    }
  }
  if (out.empty()) return out;
  std::string names;
  for (const auto& m : mismatches) names += (names.empty() ? "" : ", ") + m["field"].get<std::string>();
  out.body = DumpText(Json{{"error", "WorkOS answered the update with other values; the change did not take: " + names},
                           {"fields", mismatches}});
  return out;
}

}  // namespace usersd::domain
