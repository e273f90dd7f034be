#include "store/record_codec.h"

#include "store/codec_internal.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace usersd::store {

using namespace codec;

namespace {

constexpr size_t kRecordVersionSlots = 2 * kSharedFieldCount + kOwnedFieldCount;

// The slots of `u`'s versions, in stored order (const or not, as `u` is).
template <class U>
auto VersionSlots(U& u) {
  using Ptr = decltype(&u.shared_versions[0]);
  std::array<Ptr, kRecordVersionSlots> s{};
  size_t i = 0;
  for (auto& v : u.shared_versions) s[i++] = &v;
  for (auto& v : u.workos_versions) s[i++] = &v;
  for (auto& v : u.owned_versions) s[i++] = &v;
  return s;
}

std::vector<uint8_t> UserVersionBytes(const UserRecord& u) {
  auto slots = VersionSlots(u);
  size_t n = slots.size();
  while (n > 0 && slots[n - 1]->zero()) --n;
  std::vector<uint8_t> out;
  out.reserve(n * kVersionBytes);
  for (size_t i = 0; i < n; ++i) PutVersionBytes(out, *slots[i]);
  return out;
}

// False (a corrupt record) when the length is not a whole number of
// versions or holds more than a record has.
bool SetUserVersions(UserRecord& u, const uint8_t* p, size_t n) {
  if (n % kVersionBytes != 0 || n / kVersionBytes > kRecordVersionSlots) return false;
  auto slots = VersionSlots(u);
  for (size_t i = 0; i < n / kVersionBytes; ++i) *slots[i] = VersionFromBytes(p + i * kVersionBytes);
  return true;
}

// The fields of a user record, by stored key.
enum class Field : uint8_t {
  kNone,
  kV,
  kId,
  kWorkos,
  kEmail,
  kFirst,
  kLast,
  kType,
  kOnb,
  kCreated,
  kRole,
  kPending,
  kTx,
  kAvatar,
  kSettings,
  kTz,
  kUpdated,
  kDeleted,
  kOrg,
  kPic,
  kWupd,
  kXid,
  kImp,
  kSv,
  kAmd,
  kUnknown,
};

Field FieldOf(std::string_view k) {
  switch (k.size()) {
    case 1: if (k == "v") return Field::kV; break;
    case 2:
      if (k == "id") return Field::kId;
      if (k == "sv") return Field::kSv;
      if (k == "tx") return Field::kTx;
      if (k == "tz") return Field::kTz;
      break;
    case 3:
      if (k == "onb") return Field::kOnb;
      if (k == "org") return Field::kOrg;
      if (k == "pic") return Field::kPic;
      if (k == "xid") return Field::kXid;
      if (k == "imp") return Field::kImp;
      if (k == "amd") return Field::kAmd;
      break;
    case 4:
      if (k == "last") return Field::kLast;
      if (k == "type") return Field::kType;
      if (k == "role") return Field::kRole;
      if (k == "wupd") return Field::kWupd;
      break;
    case 5:
      if (k == "email") return Field::kEmail;
      if (k == "first") return Field::kFirst;
      break;
    case 6:
      if (k == "workos") return Field::kWorkos;
      if (k == "avatar") return Field::kAvatar;
      break;
    case 7:
      if (k == "created") return Field::kCreated;
      if (k == "pending") return Field::kPending;
      if (k == "updated") return Field::kUpdated;
      if (k == "deleted") return Field::kDeleted;
      break;
    case 8: if (k == "settings") return Field::kSettings; break;
    default: break;
  }
  return Field::kUnknown;
}

const char* NameOf(Field f) {
  switch (f) {
    case Field::kV: return "v";
    case Field::kId: return "id";
    case Field::kWorkos: return "workos";
    case Field::kEmail: return "email";
    case Field::kFirst: return "first";
    case Field::kLast: return "last";
    case Field::kType: return "type";
    case Field::kOnb: return "onb";
    case Field::kCreated: return "created";
    case Field::kRole: return "role";
    case Field::kPending: return "pending";
    case Field::kTx: return "tx";
    case Field::kAvatar: return "avatar";
    case Field::kSettings: return "settings";
    case Field::kTz: return "tz";
    case Field::kUpdated: return "updated";
    case Field::kDeleted: return "deleted";
    case Field::kOrg: return "org";
    case Field::kPic: return "pic";
    case Field::kWupd: return "wupd";
    case Field::kXid: return "xid";
    case Field::kImp: return "imp";
    case Field::kSv: return "sv";
    case Field::kAmd: return "amd";
    default: return "?";
  }
}

constexpr uint32_t Bit(Field f) { return 1u << static_cast<unsigned>(f); }
constexpr uint32_t kRequired = Bit(Field::kV) | Bit(Field::kId) | Bit(Field::kWorkos) | Bit(Field::kEmail) |
                               Bit(Field::kFirst) | Bit(Field::kLast) | Bit(Field::kType) | Bit(Field::kOnb) |
                               Bit(Field::kCreated) | Bit(Field::kRole) | Bit(Field::kPending) | Bit(Field::kTx);

// Fills a UserRecord from nlohmann's MessagePack SAX events, with the
// checks of UserFromJson: a required field missing or of the wrong type, or
// an unknown version, is an error; unknown keys are skipped; "settings" (any
// JSON value) is built as a DOM, the only part that needs one.
class UserSax {
 public:
  explicit UserSax(UserRecord& u) : u_(u) {}

  bool null() {
    if (depth_ > 1) return Nested([](auto& d) { return d.null(); });
    if (!AtField()) return false;
    switch (field_) {
      case Field::kAvatar: u_.avatar_url.reset(); break;
      case Field::kSettings: u_.settings.reset(); break;
      case Field::kTz: u_.timezone.reset(); break;
      case Field::kUpdated: u_.updated_at_ms.reset(); break;
      case Field::kDeleted: u_.deleted_at_ms.reset(); break;
      case Field::kOrg: u_.organization_id.reset(); break;
      case Field::kPic: u_.profile_picture_url.reset(); break;
      case Field::kWupd: u_.workos_updated_at_ms.reset(); break;
      case Field::kXid: u_.external_id.reset(); break;
      case Field::kUnknown: break;
      default: return Fail(" is null");
    }
    return Seen();
  }
  bool boolean(bool v) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.boolean(v); });
    if (!AtField()) return false;
    switch (field_) {
      case Field::kOnb: u_.is_onboarded = v; break;
      case Field::kPending: u_.profile_pending = v; break;
      case Field::kImp: u_.id_from_import = v; break;
      case Field::kAmd: u_.app_metadata = v; break;
      case Field::kSettings: u_.settings = Json(v); break;
      case Field::kUnknown: break;
      default: return Fail(" has the wrong type (boolean)");
    }
    return Seen();
  }
  bool number_integer(Json::number_integer_t v) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.number_integer(v); });
    if (!AtField()) return false;
    return Integer(/*is_signed=*/true, static_cast<uint64_t>(v), v);
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.number_unsigned(v); });
    if (!AtField()) return false;
    return Integer(/*is_signed=*/false, v, 0);
  }
  bool number_float(Json::number_float_t v, const Json::string_t& s) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.number_float(v, s); });
    if (!AtField()) return false;
    if (field_ == Field::kSettings) u_.settings = Json(v);
    else if (field_ != Field::kUnknown) return Fail(" is not an integer");
    return Seen();
  }
  bool string(Json::string_t& s) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.string(s); });
    if (!AtField()) return false;
    switch (field_) {
      case Field::kId: u_.id = std::move(s); break;
      case Field::kWorkos: u_.workos_id = std::move(s); break;
      case Field::kEmail: u_.email = std::move(s); break;
      case Field::kFirst: u_.first_name = std::move(s); break;
      case Field::kLast: u_.last_name = std::move(s); break;
      case Field::kType: u_.user_type = std::move(s); break;
      case Field::kRole: u_.role = std::move(s); break;
      case Field::kAvatar: u_.avatar_url = std::move(s); break;
      case Field::kTz: u_.timezone = std::move(s); break;
      case Field::kOrg: u_.organization_id = std::move(s); break;
      case Field::kPic: u_.profile_picture_url = std::move(s); break;
      case Field::kXid: u_.external_id = std::move(s); break;
      case Field::kSettings: u_.settings = Json(std::move(s)); break;
      case Field::kUnknown: break;
      default: return Fail(" has the wrong type (string)");
    }
    return Seen();
  }
  bool binary(Json::binary_t& b) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.binary(b); });
    if (!AtField()) return false;
    if (field_ == Field::kSettings) u_.settings = Json::binary(std::move(b));
    else if (field_ == Field::kSv) {
      if (!SetUserVersions(u_, b.data(), b.size())) return Fail(" has a bad length");
    } else if (field_ != Field::kUnknown) return Fail(" has the wrong type (binary)");
    return Seen();
  }
  bool start_object(std::size_t n) { return Open(true, n); }
  bool end_object() { return Close(true); }
  bool start_array(std::size_t n) { return Open(false, n); }
  bool end_array() { return Close(false); }
  bool key(Json::string_t& k) {
    if (depth_ > 1) return Nested([&](auto& d) { return d.key(k); });
    field_ = FieldOf(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    undecodable_ = true;
    error_ = e.what();
    return false;
  }

  // After a successful parse: whether every required field was there.
  bool Complete() {
    if (!top_done_) return Fail0("record is not an object");
    if ((seen_ & kRequired) == kRequired) return true;
    for (unsigned f = 0; f < 32; ++f)
      if ((kRequired & (1u << f)) && !(seen_ & (1u << f)))
        return Fail0(std::string(NameOf(static_cast<Field>(f))) + " is missing");
    return false;
  }
  bool undecodable() const { return undecodable_; }
  const std::string& error() const { return error_; }

 private:
  using Dom = nlohmann::detail::json_sax_dom_parser<Json>;

  // A scalar at depth 1 needs a key before it (depth 0 means the record
  // itself is not an object).
  bool AtField() {
    if (depth_ == 0) return Fail0("record is not an object");
    return true;
  }
  bool Seen() {
    seen_ |= Bit(field_);
    return true;
  }
  bool Fail(const std::string& what) { return Fail0(std::string(NameOf(field_)) + what); }
  bool Fail0(std::string what) {
    error_ = std::move(what);
    return false;
  }
  // Inside a nested value: settings are built, anything else is skipped.
  template <class F>
  bool Nested(F&& f) {
    return dom_ ? f(*dom_) : true;
  }
  // nlohmann reports MessagePack's signed encodings (negative fixint,
  // int8..int64) as number_integer and the unsigned ones as number_unsigned,
  // whatever the value; the DOM form's readers tell the two apart the same way.
  bool Integer(bool is_signed, uint64_t u, int64_t i) {
    const auto max64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    switch (field_) {
      case Field::kV:
        if (is_signed ? i != kRecordVersion : u != static_cast<uint64_t>(kRecordVersion))
          return Fail0("unknown user record version");
        break;
      case Field::kCreated:
      case Field::kUpdated:
      case Field::kDeleted:
      case Field::kWupd: {
        if (!is_signed && u > max64) return Fail(" out of range");
        const int64_t v = is_signed ? i : static_cast<int64_t>(u);
        if (field_ == Field::kCreated) u_.created_at_ms = v;
        else if (field_ == Field::kUpdated) u_.updated_at_ms = v;
        else if (field_ == Field::kWupd) u_.workos_updated_at_ms = v;
        else u_.deleted_at_ms = v;
        break;
      }
      case Field::kTx:
        if (is_signed) return Fail(" is not an unsigned integer");
        u_.txid = u;
        break;
      case Field::kSettings: u_.settings = is_signed ? Json(i) : Json(u); break;
      case Field::kUnknown: break;
      default: return Fail(" has the wrong type (integer)");
    }
    return Seen();
  }
  bool Open(bool object, std::size_t n) {
    if (depth_ == 0) {
      if (!object) return Fail0("record is not an object");
      depth_ = 1;
      return true;
    }
    if (++depth_ > kMaxDecodeDepth)
      return Fail0("nested more than " + std::to_string(kMaxDecodeDepth) + " levels deep");
    if (depth_ == 2) {
      if (field_ == Field::kSettings) {
        settings_ = Json();
        dom_ = std::make_unique<Dom>(settings_, /*allow_exceptions=*/true);
      } else if (field_ != Field::kUnknown) {
        return Fail(object ? " has the wrong type (object)" : " has the wrong type (array)");
      }
    }
    if (!dom_) return true;
    return object ? dom_->start_object(n) : dom_->start_array(n);
  }
  bool Close(bool object) {
    if (depth_ == 1) {
      depth_ = 0;
      top_done_ = true;
      return true;
    }
    bool ok = true;
    if (dom_) ok = object ? dom_->end_object() : dom_->end_array();
    if (--depth_ == 1 && dom_) {
      dom_.reset();
      u_.settings = std::move(settings_);
      return ok && Seen();
    }
    return ok;
  }

  UserRecord& u_;
  size_t depth_ = 0;
  bool top_done_ = false;
  Field field_ = Field::kNone;
  uint32_t seen_ = 0;
  Json settings_;
  std::unique_ptr<Dom> dom_;
  bool undecodable_ = false;
  std::string error_;
};

bool FastDecodeUser(std::string_view bytes, UserRecord* u) {
  MsgpackIn in(bytes);
  size_t n;
  if (!in.Map(&n)) return false;
  uint32_t seen = 0;
  std::string_view s;
  auto opt_str = [&](std::optional<std::string>& dst) {
    if (in.Nil()) return dst.reset(), true;
    if (!in.Str(&s)) return false;
    dst.emplace(s);
    return true;
  };
  auto opt_i64 = [&](std::optional<int64_t>& dst) {
    if (in.Nil()) return dst.reset(), true;
    int64_t v;
    if (!in.Int64(&v)) return false;
    dst = v;
    return true;
  };
  for (size_t i = 0; i < n; ++i) {
    if (!in.Str(&s)) return false;
    const Field f = FieldOf(s);
    bool ok;
    switch (f) {
      case Field::kId: ok = in.Str(&s) && (u->id.assign(s), true); break;
      case Field::kWorkos: ok = in.Str(&s) && (u->workos_id.assign(s), true); break;
      case Field::kEmail: ok = in.Str(&s) && (u->email.assign(s), true); break;
      case Field::kFirst: ok = in.Str(&s) && (u->first_name.assign(s), true); break;
      case Field::kLast: ok = in.Str(&s) && (u->last_name.assign(s), true); break;
      case Field::kType: ok = in.Str(&s) && (u->user_type.assign(s), true); break;
      case Field::kRole: ok = in.Str(&s) && (u->role.assign(s), true); break;
      case Field::kAvatar: ok = opt_str(u->avatar_url); break;
      case Field::kTz: ok = opt_str(u->timezone); break;
      case Field::kOrg: ok = opt_str(u->organization_id); break;
      case Field::kPic: ok = opt_str(u->profile_picture_url); break;
      case Field::kXid: ok = opt_str(u->external_id); break;
      case Field::kImp: ok = in.Bool(&u->id_from_import); break;
      case Field::kAmd: ok = in.Bool(&u->app_metadata); break;
      case Field::kSv: {
        const uint8_t* data;
        size_t len;
        ok = in.Bin(&data, &len) && SetUserVersions(*u, data, len);
        break;
      }
      case Field::kOnb: ok = in.Bool(&u->is_onboarded); break;
      case Field::kPending: ok = in.Bool(&u->profile_pending); break;
      case Field::kCreated: ok = in.Int64(&u->created_at_ms); break;
      case Field::kUpdated: ok = opt_i64(u->updated_at_ms); break;
      case Field::kDeleted: ok = opt_i64(u->deleted_at_ms); break;
      case Field::kWupd: ok = opt_i64(u->workos_updated_at_ms); break;
      case Field::kTx: ok = in.Uint(&u->txid); break;
      case Field::kV: {
        int64_t v;
        ok = in.Int64(&v) && v == kRecordVersion;
        break;
      }
      case Field::kSettings:
        if (in.Nil()) {
          u->settings.reset();
          ok = true;
        } else {
          Json v;
          ok = in.Value(&v, 2);
          if (ok) u->settings = std::move(v);
        }
        break;
      default: ok = false; break;  // unknown keys: the SAX path skips them
    }
    if (!ok) return false;
    seen |= Bit(f);
  }
  return in.AtEnd() && (seen & kRequired) == kRequired;
}

// Appends the MessagePack of `u` (EncodeUser's bytes) to `out`.
void AppendUserMsgpack(std::string& out, const UserRecord& u) {
  MsgpackOut w(out);
  const std::vector<uint8_t> versions = UserVersionBytes(u);
  // Keys in std::map order, as nlohmann writes the DOM form.
  w.Map(12 + u.app_metadata + !versions.empty() + u.avatar_url.has_value() + u.settings.has_value() +
        u.timezone.has_value() + u.updated_at_ms.has_value() + u.deleted_at_ms.has_value() +
        u.organization_id.has_value() + u.profile_picture_url.has_value() + u.workos_updated_at_ms.has_value() +
        u.external_id.has_value() + u.id_from_import);
  if (u.app_metadata) w.Str("amd"), w.Bool(true);
  if (u.avatar_url) w.Str("avatar"), w.Str(*u.avatar_url);
  w.Str("created"), w.Int(u.created_at_ms);
  if (u.deleted_at_ms) w.Str("deleted"), w.Int(*u.deleted_at_ms);
  w.Str("email"), w.Str(u.email);
  w.Str("first"), w.Str(u.first_name);
  w.Str("id"), w.Str(u.id);
  if (u.id_from_import) w.Str("imp"), w.Bool(true);
  w.Str("last"), w.Str(u.last_name);
  w.Str("onb"), w.Bool(u.is_onboarded);
  if (u.organization_id) w.Str("org"), w.Str(*u.organization_id);
  w.Str("pending"), w.Bool(u.profile_pending);
  if (u.profile_picture_url) w.Str("pic"), w.Str(*u.profile_picture_url);
  w.Str("role"), w.Str(u.role);
  if (u.settings) w.Str("settings"), w.Raw(Json::to_msgpack(*u.settings));
  if (!versions.empty()) w.Str("sv"), w.Bin(versions);
  w.Str("tx"), w.Uint(u.txid);
  w.Str("type"), w.Str(u.user_type);
  if (u.timezone) w.Str("tz"), w.Str(*u.timezone);
  if (u.updated_at_ms) w.Str("updated"), w.Int(*u.updated_at_ms);
  w.Str("v"), w.Int(kRecordVersion);
  w.Str("workos"), w.Str(u.workos_id);
  if (u.workos_updated_at_ms) w.Str("wupd"), w.Int(*u.workos_updated_at_ms);
  if (u.external_id) w.Str("xid"), w.Str(*u.external_id);
}

}  // namespace

namespace codec {

std::string ToMsgpack(const Json& j) {
  std::vector<uint8_t> bytes = Json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

// Builds the DOM like Json::from_msgpack, but stops at kMaxDecodeDepth
// instead of recursing until the stack runs out.
class BoundedDomSax {
 public:
  explicit BoundedDomSax(Json& root) : dom_(root, /*allow_exceptions=*/true) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const Json::string_t& s) { return dom_.number_float(v, s); }
  bool string(Json::string_t& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return Deeper() && dom_.start_object(n); }
  bool key(Json::string_t& k) { return dom_.key(k); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return Deeper() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error_ = e.what();
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool Deeper() {
    if (++depth_ <= kMaxDecodeDepth) return true;
    error_ = "nested more than " + std::to_string(kMaxDecodeDepth) + " levels deep";
    return false;
  }
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  size_t depth_ = 0;
  std::string error_;
};

Result<Json> FromMsgpack(std::string_view bytes) {
  try {
    Json j;
    BoundedDomSax sax(j);
    if (!Json::sax_parse(bytes.begin(), bytes.end(), &sax, nlohmann::json::input_format_t::msgpack, /*strict=*/true))
      return Status::Corruption("undecodable record: " + sax.error());
    return j;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("undecodable record: ") + e.what());
  }
}

}  // namespace codec

// ----------------------------------------------------------------- users

std::string EncodeUser(const UserRecord& u) {
  std::string out;
  out.reserve(256);
  AppendUserMsgpack(out, u);
  return out;
}

Result<UserRecord> DecodeUser(std::string_view bytes) {
  UserRecord u;
  if (FastDecodeUser(bytes, &u)) return u;
  u = UserRecord();
  UserSax sax(u);
  bool ok;
  try {
    ok = Json::sax_parse(bytes.begin(), bytes.end(), &sax, Json::input_format_t::msgpack, /*strict=*/true) &&
         sax.Complete();
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad user record: ") + e.what());
  }
  if (!ok)
    return Status::Corruption((sax.undecodable() ? "undecodable record: " : "bad user record: ") + sax.error());
  return u;
}

Json UserToJson(const UserRecord& u) {
  Json j{{"v", kRecordVersion},
         {"id", u.id},
         {"workos", u.workos_id},
         {"email", u.email},
         {"first", u.first_name},
         {"last", u.last_name},
         {"type", u.user_type},
         {"onb", u.is_onboarded},
         {"created", u.created_at_ms},
         {"role", u.role},
         {"pending", u.profile_pending},
         {"tx", u.txid}};
  PutOpt(j, "avatar", u.avatar_url);
  PutOpt(j, "settings", u.settings);
  PutOpt(j, "tz", u.timezone);
  PutOpt(j, "updated", u.updated_at_ms);
  PutOpt(j, "deleted", u.deleted_at_ms);
  PutOpt(j, "org", u.organization_id);
  PutOpt(j, "pic", u.profile_picture_url);
  PutOpt(j, "wupd", u.workos_updated_at_ms);
  PutOpt(j, "xid", u.external_id);
  if (u.id_from_import) j["imp"] = true;
  if (u.app_metadata) j["amd"] = true;
  if (auto v = UserVersionBytes(u); !v.empty()) j["sv"] = Json::binary(std::move(v));
  return j;
}

UserRecord UserFromJson(const Json& j) {
  if (I32(j, "v") != kRecordVersion) throw std::runtime_error("unknown user record version");
  UserRecord u;
  u.id = StrField(j, "id");
  u.workos_id = StrField(j, "workos");
  u.email = StrField(j, "email");
  u.first_name = StrField(j, "first");
  u.last_name = StrField(j, "last");
  u.user_type = StrField(j, "type");
  u.is_onboarded = BoolField(j, "onb");
  u.created_at_ms = I64(j, "created");
  u.role = StrField(j, "role");
  u.profile_pending = BoolField(j, "pending");
  u.txid = U64(j, "tx");
  u.avatar_url = OptStr(j, "avatar");
  if (auto it = j.find("settings"); it != j.end() && !it->is_null()) u.settings = *it;
  u.timezone = OptStr(j, "tz");
  u.updated_at_ms = OptI64(j, "updated");
  u.deleted_at_ms = OptI64(j, "deleted");
  u.organization_id = OptStr(j, "org");
  u.profile_picture_url = OptStr(j, "pic");
  u.workos_updated_at_ms = OptI64(j, "wupd");
  u.external_id = OptStr(j, "xid");
  if (auto it = j.find("imp"); it != j.end()) u.id_from_import = it->get<bool>();
  if (auto it = j.find("amd"); it != j.end()) u.app_metadata = it->get<bool>();
  if (auto it = j.find("sv"); it != j.end()) {
    const auto& b = it->get_binary();
    if (!SetUserVersions(u, b.data(), b.size())) throw std::runtime_error("sv has a bad length");
  }
  return u;
}

// ---------------------------------------------------------- change feed

std::string EncodeChange(const Change& c) {
  std::string out;
  out.reserve(256);
  MsgpackOut w(out);
  w.Map(3);
  w.Str("at"), w.Int(c.at_ms);
  w.Str("op"), w.Int(c.op == ChangeOp::kDelete ? 1 : 0);
  w.Str("user");
  AppendUserMsgpack(out, c.user);
  return out;
}

Result<Change> DecodeChange(std::string_view bytes) {
  auto j = FromMsgpack(bytes);
  if (!j.ok()) return j.status();
  try {
    Change c;
    c.op = I32(*j, "op") == 1 ? ChangeOp::kDelete : ChangeOp::kUpsert;
    c.user = UserFromJson(j->at("user"));
    c.at_ms = I64(*j, "at");
    return c;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad change: ") + e.what());
  }
}

}  // namespace usersd::store
