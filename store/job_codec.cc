// Outbox jobs and dead letters in their stored form (store/record_codec.h).
#include "store/codec_internal.h"
#include "store/record_codec.h"

namespace usersd::store {

using namespace codec;

Json JobToJson(const OutboxJob& job) {
  Json j{{"v", kRecordVersion},
         {"id", job.id},
         {"user", job.user_id},
         {"workos", job.workos_id},
         {"op", static_cast<int>(job.op)},
         {"fields", job.fields},
         {"tx", job.txid},
         {"created", job.created_at_ms},
         {"attempts", job.attempts},
         {"next", job.next_attempt_at_ms},
         {"err", job.last_error}};
  if (!job.version.zero()) {
    std::vector<uint8_t> b;
    PutVersionBytes(b, job.version);
    j["ver"] = Json::binary(std::move(b));
  }
  return j;
}

OutboxJob JobFromJson(const Json& j) {
  if (I32(j, "v") != kRecordVersion) throw std::runtime_error("unknown outbox job version");
  OutboxJob job;
  job.id = U64(j, "id");
  job.user_id = StrField(j, "user");
  job.workos_id = StrField(j, "workos");
  int op = I32(j, "op");
  if (op < 0 || op > 2) throw std::runtime_error("bad job op");
  job.op = static_cast<JobOp>(op);
  job.fields = j.at("fields");
  job.txid = U64(j, "tx");
  job.created_at_ms = I64(j, "created");
  job.attempts = U32(j, "attempts");
  job.next_attempt_at_ms = I64(j, "next");
  job.last_error = StrField(j, "err");
  if (auto it = j.find("ver"); it != j.end()) {
    const auto& b = it->get_binary();
    if (b.size() != kVersionBytes) throw std::runtime_error("bad job version");
    job.version = VersionFromBytes(b.data());
  }
  return job;
}

namespace {

// Appends EncodeJob's bytes: what nlohmann writes for JobToJson's DOM form
// (keys in std::map order), without building the DOM. A job is read and
// written on every user.update (the user's pending job merges the write).
void AppendJobMsgpack(std::string& out, const OutboxJob& j) {
  MsgpackOut w(out);
  w.Map(11 + !j.version.zero());
  w.Str("attempts"), w.Uint(j.attempts);
  w.Str("created"), w.Int(j.created_at_ms);
  w.Str("err"), w.Str(j.last_error);
  w.Str("fields"), w.Raw(Json::to_msgpack(j.fields));
  w.Str("id"), w.Uint(j.id);
  w.Str("next"), w.Int(j.next_attempt_at_ms);
  w.Str("op"), w.Int(static_cast<int>(j.op));
  w.Str("tx"), w.Uint(j.txid);
  w.Str("user"), w.Str(j.user_id);
  w.Str("v"), w.Int(kRecordVersion);
  if (!j.version.zero()) {
    std::vector<uint8_t> b;
    PutVersionBytes(b, j.version);
    w.Str("ver"), w.Bin(b);
  }
  w.Str("workos"), w.Str(j.workos_id);
}

// Reads the common shape of a job (the keys EncodeJob writes, with the
// encodings it uses) without a DOM of the record. False on anything else,
// and DecodeJob then takes the DOM path, which has the reference behaviour
// and messages.
bool FastDecodeJob(std::string_view bytes, OutboxJob* j) {
  MsgpackIn in(bytes);
  size_t n;
  if (!in.Map(&n)) return false;
  enum : uint32_t {
    kAttempts = 1,
    kCreated = 2,
    kErr = 4,
    kFields = 8,
    kId = 16,
    kNext = 32,
    kOp = 64,
    kTx = 128,
    kUser = 256,
    kV = 512,
    kWorkos = 1024,
    kAll = 2047
  };
  uint32_t seen = 0;
  std::string_view key, s;
  for (size_t i = 0; i < n; ++i) {
    if (!in.Str(&key)) return false;
    uint64_t u;
    int64_t v;
    if (key == "attempts") {
      if (!in.Uint(&u) || u > std::numeric_limits<uint32_t>::max()) return false;
      j->attempts = static_cast<uint32_t>(u), seen |= kAttempts;
    } else if (key == "created") {
      if (!in.Int64(&j->created_at_ms)) return false;
      seen |= kCreated;
    } else if (key == "err") {
      if (!in.Str(&s)) return false;
      j->last_error.assign(s), seen |= kErr;
    } else if (key == "fields") {
      if (!in.Value(&j->fields, 2)) return false;
      seen |= kFields;
    } else if (key == "id") {
      if (!in.Uint(&j->id)) return false;
      seen |= kId;
    } else if (key == "next") {
      if (!in.Int64(&j->next_attempt_at_ms)) return false;
      seen |= kNext;
    } else if (key == "op") {
      if (!in.Int64(&v) || v < 0 || v > 2) return false;
      j->op = static_cast<JobOp>(v), seen |= kOp;
    } else if (key == "tx") {
      if (!in.Uint(&j->txid)) return false;
      seen |= kTx;
    } else if (key == "user") {
      if (!in.Str(&s)) return false;
      j->user_id.assign(s), seen |= kUser;
    } else if (key == "v") {
      if (!in.Int64(&v) || v != kRecordVersion) return false;
      seen |= kV;
    } else if (key == "workos") {
      if (!in.Str(&s)) return false;
      j->workos_id.assign(s), seen |= kWorkos;
    } else if (key == "ver") {
      const uint8_t* data;
      size_t len;
      if (!in.Bin(&data, &len) || len != kVersionBytes) return false;
      j->version = VersionFromBytes(data);
    } else {
      return false;  // unknown keys: the DOM path decides
    }
  }
  return in.AtEnd() && seen == kAll;
}

}  // namespace

// --------------------------------------------------- jobs, dead letters

std::string EncodeJob(const OutboxJob& j) {
  std::string out;
  out.reserve(160);
  AppendJobMsgpack(out, j);
  return out;
}

Result<OutboxJob> DecodeJob(std::string_view bytes) {
  {
    OutboxJob job;
    if (FastDecodeJob(bytes, &job)) return job;
  }
  auto j = FromMsgpack(bytes);
  if (!j.ok()) return j.status();
  try {
    return JobFromJson(*j);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad outbox job: ") + e.what());
  }
}

std::string EncodeDeadLetter(const DeadLetter& d) {
  return ToMsgpack(Json{{"job", JobToJson(d.job)}, {"status", d.status}, {"body", d.body}, {"at", d.failed_at_ms}});
}

Result<DeadLetter> DecodeDeadLetter(std::string_view bytes) {
  auto j = FromMsgpack(bytes);
  if (!j.ok()) return j.status();
  try {
    DeadLetter d;
    d.job = JobFromJson(j->at("job"));
    d.status = I32(*j, "status");
    d.body = StrField(*j, "body");
    d.failed_at_ms = I64(*j, "at");
    return d;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad dead letter: ") + e.what());
  }
}

}  // namespace usersd::store
