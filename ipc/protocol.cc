#include "ipc/protocol.h"

#include <cmath>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/text.h"

namespace usersd::ipc {

namespace {

// Nesting deeper than this is refused before it can exhaust the stack of
// anything that walks the value later.
constexpr int kMaxDepth = 64;

// Parses with a depth limit and without exceptions. Returns discarded on error
// and sets *too_deep when the limit was the reason.
Json ParseBounded(std::string_view line, bool* too_deep) {
  *too_deep = false;
  int depth = 0;
  auto cb = [&](int d, Json::parse_event_t ev, Json&) {
    if (ev == Json::parse_event_t::object_start || ev == Json::parse_event_t::array_start) {
      depth = d;
      if (d > kMaxDepth) {
        *too_deep = true;
        return false;
      }
    }
    return true;
  };
  (void)depth;
  Json j = Json::parse(line.begin(), line.end(), cb, /*allow_exceptions=*/false);
  if (*too_deep) return Json(Json::value_t::discarded);
  return j;
}

// Moves the header values out of `h` (the parsed line is discarded after).
bool ParseHeaders(Json& h, std::vector<std::pair<std::string, std::string>>* out) {
  if (h.is_null()) return true;
  if (h.is_array()) {
    out->reserve(h.size());
    for (auto& pair : h) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) return false;
      out->emplace_back(ToLowerAscii(pair[0].get_ref<const std::string&>()), std::move(pair[1].get_ref<std::string&>()));
    }
    return true;
  }
  if (h.is_object()) {
    for (auto& [k, v] : h.items()) {
      if (!v.is_string()) return false;
      out->emplace_back(ToLowerAscii(k), std::move(v.get_ref<std::string&>()));
    }
    return true;
  }
  return false;
}

// A fast parser for the common request line: it accepts a strict subset of
// JSON (ASCII strings with simple escapes, integers of up to 18 digits,
// nesting up to 32 levels) and builds exactly the value nlohmann's parser
// would. Anything else, valid or not, makes it give up and the line goes to
// nlohmann's parser, which also decides every error. nlohmann's lexer reads
// one character at a time; this copies string runs in bulk, and a request's
// bearer token is most of its bytes.
class FastParser {
 public:
  explicit FastParser(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  bool Parse(Json* out) {
    if (!Value(out, 0)) return false;
    Ws();
    return p_ == end_;
  }

 private:
  void Ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  // Right after an opening bracket: consumes `close` if the container is
  // empty.
  bool Closes(char close) {
    Ws();
    if (p_ < end_ && *p_ == close) {
      ++p_;
      return true;
    }
    return false;
  }

  // After a member or an element: a ',' (*more set) or `close` (*more
  // cleared), either consumed; false for anything else.
  bool Separator(char close, bool* more) {
    Ws();
    if (p_ >= end_) return false;
    if (*p_ == ',' || *p_ == close) {
      *more = *p_++ == ',';
      return true;
    }
    return false;
  }

  bool Lit(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // At the opening quote.
  bool String(std::string* out) {
    ++p_;
    const char* run = p_;
    for (;;) {
      p_ = SkipPlain(p_, end_);
      if (p_ >= end_) return false;
      const char c = *p_;
      if (c == '"') {
        out->append(run, p_);
        ++p_;
        return true;
      }
      if (c != '\\') return false;  // control characters, UTF-8: the slow path
      out->append(run, p_);
      if (++p_ >= end_) return false;
      switch (*p_) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        default: return false;  // \u and invalid escapes: the slow path
      }
      run = ++p_;
    }
  }

 public:
  // The common line, an @effect/rpc Request, straight into a Frame: what
  // ParseEffect makes of the line's DOM, without building the DOM. False
  // for anything else (other frames, JSON-RPC, headers as an object, an
  // empty object, whatever String or Value give up on, every error), which
  // then takes the DOM path.
  bool EffectRequest(Frame* f) {
    Ws();
    if (p_ >= end_ || *p_ != '{') return false;
    ++p_;
    bool is_request = false, has_id = false, has_tag = false, has_payload = false;
    Json id, payload;
    std::string tag, key;
    std::vector<std::pair<std::string, std::string>> headers;
    // Repeated keys: the last one wins, as in the DOM.
    for (;;) {
      Ws();
      if (p_ >= end_ || *p_ != '"') return false;
      key.clear();
      if (!String(&key)) return false;
      Ws();
      if (p_ >= end_ || *p_ != ':') return false;
      ++p_;
      Ws();
      if (key == "_tag") {
        std::string t;
        if (p_ >= end_ || *p_ != '"' || !String(&t)) return false;
        is_request = t == "Request";
      } else if (key == "id") {
        Json v;
        if (!Value(&v, 1) || !(v.is_string() || v.is_number())) return false;
        id = std::move(v);
        has_id = true;
      } else if (key == "tag") {
        tag.clear();
        if (p_ >= end_ || *p_ != '"' || !String(&tag)) return false;
        has_tag = true;
      } else if (key == "payload") {
        payload = Json();
        if (!Value(&payload, 1)) return false;
        has_payload = true;
      } else if (key == "headers") {
        headers.clear();
        if (!HeaderPairs(&headers)) return false;
      } else {
        Json ignored;  // traceId, spanId, sampled, ...: unused, but must parse
        if (!Value(&ignored, 1)) return false;
      }
      bool more;
      if (!Separator('}', &more)) return false;
      if (!more) break;
    }
    Ws();
    if (p_ != end_ || !is_request || !has_id || !has_tag) return false;
    f->kind = FrameKind::kRequest;
    f->wire = Wire::kEffect;
    f->request.wire = Wire::kEffect;
    f->request.id = std::move(id);
    f->request.tag = std::move(tag);
    if (has_payload) f->request.payload = std::move(payload);
    f->request.headers = std::move(headers);
    return true;
  }

 private:
  // null or [[name, value], ...] with string names and values; names
  // lower-cased (ParseHeaders' array form).
  bool HeaderPairs(std::vector<std::pair<std::string, std::string>>* out) {
    if (Lit("null")) return true;
    if (p_ >= end_ || *p_ != '[') return false;
    ++p_;
    if (Closes(']')) return true;
    for (;;) {
      Ws();
      if (p_ >= end_ || *p_ != '[') return false;
      ++p_;
      Ws();
      std::string name, value;
      if (p_ >= end_ || *p_ != '"' || !String(&name)) return false;
      Ws();
      if (p_ >= end_ || *p_ != ',') return false;
      ++p_;
      Ws();
      if (p_ >= end_ || *p_ != '"' || !String(&value)) return false;
      Ws();
      if (p_ >= end_ || *p_ != ']') return false;
      ++p_;
      ToLowerAsciiInPlace(name);
      out->emplace_back(std::move(name), std::move(value));
      bool more;
      if (!Separator(']', &more)) return false;
      if (!more) return true;
    }
  }

  // The first byte at or after `p` that String must look at: a quote, a
  // backslash, a control character or a non-ASCII byte (bearer tokens are
  // long runs of none of these). Sixteen bytes at a time where SSE2 is there.
  static const char* SkipPlain(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      // Signed compare: bytes >= 0x80 are negative, so "< 0x20" catches them too.
      __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                 _mm_cmplt_epi8(v, space));
      int mask = _mm_movemask_epi8(hit);
      if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
      p += 16;
    }
#endif
    while (p < end) {
      unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
      ++p;
    }
    return p;
  }

  bool Number(Json* out) {
    bool neg = false;
    if (*p_ == '-') {
      neg = true;
      ++p_;
    }
    if (p_ >= end_ || *p_ < '0' || *p_ > '9') return false;
    if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9') return false;
    uint64_t v = 0;
    int digits = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (++digits > 18) return false;
      v = v * 10 + static_cast<uint64_t>(*p_ - '0');
      ++p_;
    }
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    if (neg) {
      if (v == 0) return false;
      *out = -static_cast<int64_t>(v);
    } else {
      *out = v;
    }
    return true;
  }

  bool Value(Json* out, int depth) {
    Ws();
    if (p_ >= end_) return false;
    switch (*p_) {
      case '{': {
        if (depth >= 32) return false;
        ++p_;
        *out = Json::object();
        if (Closes('}')) return true;
        for (;;) {
          Ws();
          if (p_ >= end_ || *p_ != '"') return false;
          std::string key;
          if (!String(&key)) return false;
          Ws();
          if (p_ >= end_ || *p_ != ':') return false;
          ++p_;
          Json v;
          if (!Value(&v, depth + 1)) return false;
          (*out)[std::move(key)] = std::move(v);  // a repeated key: the last wins, as in nlohmann
          bool more;
          if (!Separator('}', &more)) return false;
          if (!more) return true;
        }
      }
      case '[': {
        if (depth >= 32) return false;
        ++p_;
        *out = Json::array();
        if (Closes(']')) return true;
        for (;;) {
          Json v;
          if (!Value(&v, depth + 1)) return false;
          out->push_back(std::move(v));
          bool more;
          if (!Separator(']', &more)) return false;
          if (!more) return true;
        }
      }
      case '"': {
        std::string str;
        if (!String(&str)) return false;
        *out = std::move(str);
        return true;
      }
      case 't':
        if (!Lit("true")) return false;
        *out = true;
        return true;
      case 'f':
        if (!Lit("false")) return false;
        *out = false;
        return true;
      case 'n':
        if (!Lit("null")) return false;
        *out = nullptr;
        return true;
      default:
        return Number(out);
    }
  }

  const char* p_;
  const char* end_;
};

Frame Error(Wire wire, int code, std::string message) {
  Frame f;
  f.kind = FrameKind::kError;
  f.wire = wire;
  f.error_code = code;
  f.error_message = std::move(message);
  return f;
}

// An error answered as the ValidationError defect of the request whose id we
// could read.
Frame RequestError(Wire wire, Json id, int code, std::string message) {
  Frame f = Error(wire, code, std::move(message));
  f.request.wire = wire;
  f.request.id = std::move(id);
  f.error_has_request = true;
  return f;
}

std::string IdToString(const Json& id) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number_integer() || id.is_number_unsigned()) return id.dump();
  if (id.is_number_float()) {
    // An integral float inside int64's range reads as that integer ("7" for
    // 7.0). Anything else keeps its JSON form: converting a float outside the
    // range (an id of 1e300) to int64 would be undefined behaviour.
    double d = id.get<double>();
    if (d >= -0x1p63 && d < 0x1p63 && d == std::trunc(d)) return std::to_string(static_cast<int64_t>(d));
    return id.dump();
  }
  return id.dump();
}

bool ValidId(const Json& id) { return id.is_string() || id.is_number(); }

Frame ParseEffect(Json& j) {
  const Json& tag = j["_tag"];
  if (!tag.is_string()) return Error(Wire::kEffect, kInvalidRequest, "_tag must be a string");
  const std::string& t = tag.get_ref<const std::string&>();
  Frame f;
  f.wire = Wire::kEffect;
  if (t == "Request") {
    auto id_it = j.find("id");
    if (id_it == j.end() || !ValidId(*id_it)) return Error(Wire::kEffect, kInvalidRequest, "Request needs an id");
    Json id = *id_it;
    auto tag_it = j.find("tag");
    if (tag_it == j.end() || !tag_it->is_string())
      return RequestError(Wire::kEffect, id, kInvalidRequest, "Request needs a string tag");
    f.kind = FrameKind::kRequest;
    f.request.wire = Wire::kEffect;
    f.request.id = std::move(id);
    f.request.tag = tag_it->get<std::string>();
    if (auto p = j.find("payload"); p != j.end()) f.request.payload = std::move(*p);
    if (auto h = j.find("headers"); h != j.end() && !ParseHeaders(*h, &f.request.headers))
      return RequestError(Wire::kEffect, f.request.id, kInvalidRequest, "headers must be [name, value] pairs");
    return f;
  }
  if (t == "Ping") {
    f.kind = FrameKind::kPing;
    return f;
  }
  if (t == "Ack" || t == "Interrupt") {
    auto rid = j.find("requestId");
    if (rid == j.end() || !ValidId(*rid)) return Error(Wire::kEffect, kInvalidRequest, t + " needs a requestId");
    f.kind = t == "Ack" ? FrameKind::kAck : FrameKind::kInterrupt;
    f.request_id = IdToString(*rid);
    return f;
  }
  if (t == "Eof") {
    f.kind = FrameKind::kEof;
    return f;
  }
  if (t == "Pong") {
    f.kind = FrameKind::kIgnored;
    return f;
  }
  return Error(Wire::kEffect, kInvalidRequest, "unknown _tag \"" + t + "\"");
}

Frame ParseJsonRpc(Json& j) {
  auto m = j.find("method");
  if (m == j.end() || !m->is_string()) {
    // A response-shaped message is nothing a server expects.
    return Error(Wire::kJsonRpc, kInvalidRequest, "method must be a string");
  }
  if (auto v = j.find("jsonrpc"); v != j.end() && (!v->is_string() || *v != "2.0"))
    return Error(Wire::kJsonRpc, kInvalidRequest, "jsonrpc must be \"2.0\"");
  std::string method = m->get<std::string>();
  Frame f;
  f.wire = Wire::kJsonRpc;
  Json id = nullptr;
  if (auto it = j.find("id"); it != j.end()) {
    if (!it->is_null() && !ValidId(*it)) return Error(Wire::kJsonRpc, kInvalidRequest, "id must be a string or a number");
    id = *it;
  }
  constexpr std::string_view kControl = "@effect/rpc/";
  if (method.rfind(kControl, 0) == 0 && (id.is_null() || (id.is_number() && id == 0) || (id.is_string() && id == ""))) {
    std::string ctl = method.substr(kControl.size());
    std::string rid;
    if (auto p = j.find("params"); p != j.end() && p->is_object()) {
      if (auto r = p->find("requestId"); r != p->end() && ValidId(*r)) rid = IdToString(*r);
    }
    if (ctl == "Ping") f.kind = FrameKind::kPing;
    else if (ctl == "Ack") f.kind = FrameKind::kAck;
    else if (ctl == "Interrupt") f.kind = FrameKind::kInterrupt;
    else if (ctl == "Eof") f.kind = FrameKind::kEof;
    else if (ctl == "Pong") f.kind = FrameKind::kIgnored;
    else return Error(Wire::kJsonRpc, kMethodNotFound, "unknown control message \"" + method + "\"");
    if ((f.kind == FrameKind::kAck || f.kind == FrameKind::kInterrupt) && rid.empty())
      return Error(Wire::kJsonRpc, kInvalidRequest, ctl + " needs params.requestId");
    f.request_id = rid;
    return f;
  }
  f.kind = FrameKind::kRequest;
  f.request.wire = Wire::kJsonRpc;
  f.request.id = std::move(id);
  f.request.tag = std::move(method);
  if (auto p = j.find("params"); p != j.end()) f.request.payload = std::move(*p);
  if (auto h = j.find("headers"); h != j.end() && !ParseHeaders(*h, &f.request.headers)) {
    if (f.request.id.is_null()) return Error(Wire::kJsonRpc, kInvalidRequest, "headers must be pairs or an object");
    return RequestError(Wire::kJsonRpc, f.request.id, kInvalidRequest, "headers must be pairs or an object");
  }
  return f;
}

void AppendSuccessValue(std::string& out, const Outcome& o) {
  if (!o.raw.empty()) out += o.raw;
  else AppendJson(out, o.value);
}

void AppendExitEffect(std::string& out, const Request& req, const Outcome& o) {
  out += R"({"_tag":"Exit","requestId":)";
  if (req.id.is_string()) AppendJson(out, req.id);
  else AppendJson(out, Json(IdToString(req.id)));
  switch (o.kind) {
    case Outcome::Kind::kSuccess:
      out += R"(,"exit":{"_tag":"Success","value":)";
      AppendSuccessValue(out, o);
      out += "}}";
      break;
    case Outcome::Kind::kFail:
      out += R"(,"exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":)";
      AppendJson(out, o.value);
      out += "}}}";
      break;
    case Outcome::Kind::kDie: {
      out += R"(,"exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":)";
      AppendJson(out, Json{{"name", o.defect_name}, {"message", o.message}});
      out += "}}}";
      break;
    }
  }
}

void AppendExitJsonRpc(std::string& out, const Request& req, const Outcome& o) {
  out += R"({"jsonrpc":"2.0","id":)";
  AppendJson(out, req.id);
  switch (o.kind) {
    case Outcome::Kind::kSuccess:
      out += R"(,"result":)";
      AppendSuccessValue(out, o);  // a discarded/absent value is null too
      out += "}";
      break;
    case Outcome::Kind::kFail: {
      Json err{{"_tag", "Cause"},
               {"code", o.code},
               {"message", o.message},
               {"data", Json{{"_tag", "Fail"}, {"error", o.value}}}};
      out += R"(,"error":)";
      AppendJson(out, err);
      out += "}";
      break;
    }
    case Outcome::Kind::kDie: {
      Json err{{"_tag", "Cause"},
               {"code", o.code},
               {"message", o.message},
               {"data", Json{{"_tag", "Die"}, {"defect", Json{{"name", o.defect_name}, {"message", o.message}}}}}};
      out += R"(,"error":)";
      AppendJson(out, err);
      out += "}";
      break;
    }
  }
}

}  // namespace

std::optional<std::string_view> Request::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return std::string_view(v);
  return std::nullopt;
}

std::string Request::IdString() const { return IdToString(id); }

void AppendJson(std::string& out, const Json& j) {
  // What j.dump(-1, ' ', false, replace) produces, written straight into
  // `out` instead of a temporary string.
  nlohmann::detail::serializer<Json> s(nlohmann::detail::output_adapter<char, std::string>(out), ' ',
                                       Json::error_handler_t::replace);
  s.dump(j, false, false, 0);
}

bool FastParseJson(std::string_view text, Json* out) { return FastParser(text).Parse(out); }

bool FastParseEffectRequest(std::string_view line, Frame* out) { return FastParser(line).EffectRequest(out); }

Frame ParseLine(std::string_view line) {
  // Tolerate a CR from clients that write CRLF.
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  {
    Frame f;
    if (FastParser(line).EffectRequest(&f)) return f;
  }
  return ParseLineWithDom(line);
}

Frame ParseLineWithDom(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  bool too_deep = false;
  Json j;
  if (!FastParser(line).Parse(&j)) j = ParseBounded(line, &too_deep);
  if (too_deep) return Error(Wire::kJsonRpc, kInvalidRequest, "JSON nested deeper than 64 levels");
  if (j.is_discarded()) return Error(Wire::kJsonRpc, kParseError, "Parse error: line is not valid JSON");
  if (!j.is_object()) return Error(Wire::kJsonRpc, kInvalidRequest, "Invalid Request: expected a JSON object");
  if (j.contains("_tag")) return ParseEffect(j);
  if (j.contains("jsonrpc") || j.contains("method")) return ParseJsonRpc(j);
  return Error(Wire::kJsonRpc, kInvalidRequest, "Invalid Request: neither an @effect/rpc message nor JSON-RPC");
}

void AppendExit(std::string& out, const Request& req, const Outcome& outcome) {
  if (req.wire == Wire::kEffect) AppendExitEffect(out, req, outcome);
  else AppendExitJsonRpc(out, req, outcome);
  out += '\n';
}

std::string EncodeExit(const Request& req, const Outcome& outcome) {
  std::string out;
  out.reserve(256);
  AppendExit(out, req, outcome);
  return out;
}

std::string EncodeChunk(const Request& req, const Json& values) {
  std::string out;
  if (req.wire == Wire::kEffect) {
    out += R"({"_tag":"Chunk","requestId":)";
    AppendJson(out, Json(req.IdString()));
    out += R"(,"values":)";
    AppendJson(out, values);
    out += "}\n";
  } else {
    out += R"({"jsonrpc":"2.0","chunk":true,"id":)";
    AppendJson(out, req.id);
    out += R"(,"result":)";
    AppendJson(out, values);
    out += "}\n";
  }
  return out;
}

std::string EncodeStreamEnd(const Request& req) {
  if (req.wire == Wire::kEffect) {
    std::string out = R"({"_tag":"Exit","requestId":)";
    AppendJson(out, Json(req.IdString()));
    out += R"(,"exit":{"_tag":"Success"}})";
    out += '\n';
    return out;
  }
  return EncodeExit(req, Outcome::Success(nullptr));
}

std::string EncodePong(Wire wire) {
  if (wire == Wire::kEffect) return "{\"_tag\":\"Pong\"}\n";
  return "{\"jsonrpc\":\"2.0\",\"method\":\"@effect/rpc/Pong\"}\n";
}

std::string EncodeProtocolError(int code, std::string_view message) {
  std::string out = R"({"jsonrpc":"2.0","id":null,"error":)";
  AppendJson(out, Json{{"code", code}, {"message", std::string(message)}});
  out += "}\n";
  return out;
}

}  // namespace usersd::ipc
