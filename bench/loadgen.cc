// usersd-loadgen: a closed-loop load generator for the usersd socket.
//
// Opens N connections; each keeps exactly one request outstanding (send,
// wait for the reply, send the next), like redis-benchmark with -P 1. Reports
// throughput and latency percentiles from exact sorted samples. --json also
// gives `replies`: every reply of the run, warm-up included, for the CPU time
// per request of the server (bench/compare.sh).
//
//   usersd-loadgen --socket PATH --tokens FILE [--connections 32]
//                  [--duration 10] [--warmup 1] [--op me|update]
//                  [--field timezone|firstName|settings] [--refuse-percent P] [--json]
//
// FILE holds one "USER_ID TOKEN" pair per line; connection i uses pair
// i % lines. Single-threaded (libuv), so the generator itself costs one core,
// as redis-benchmark does. With --refuse-percent P, P% of updates name a
// user id that does not exist, which every policy refuses (UnauthorizedError:
// the self-only policy before the write, the org-admin policy inside it);
// those replies are counted as `refused`, not errors.
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string socket;
  std::string tokens_file;
  int connections = 32;
  double duration_s = 10;
  double warmup_s = 1;
  std::string op = "me";
  std::string field = "timezone";
  int refuse_percent = 0;
  bool json = false;
};

struct Conn;

struct State {
  Options opt;
  uv_loop_t* loop = nullptr;
  std::vector<std::pair<std::string, std::string>> creds;  // user id, token
  std::vector<std::unique_ptr<Conn>> conns;
  Clock::time_point start, measure_from, end;
  std::vector<uint32_t> samples_us;  // latency samples in the measured window
  uint64_t errors = 0;
  uint64_t refused = 0;
  uint64_t completed = 0;
  uint64_t replies = 0;  // every reply, warm-up and tail included (for CPU per request)
  bool stopping = false;
  int open = 0;
};

const char* kZones[] = {"Europe/Paris", "UTC", "America/New_York", "Asia/Tokyo"};

struct Conn {
  State* st;
  int index;
  uv_pipe_t pipe;
  uv_connect_t connect_req;
  std::string inbuf;
  std::string line;
  uint64_t seq = 0;
  bool refusing = false;  // the request in flight names another user
  Clock::time_point sent_at;
  char readbuf[65536];

  void BuildRequest() {
    const auto& [own_uid, token] = st->creds[index % st->creds.size()];
    ++seq;
    // P of every 100 updates name a user that does not exist.
    static const std::string kNobody = "00000000-0000-4000-8000-00000000dead";
    refusing = st->opt.op == "update" && st->opt.refuse_percent > 0 &&
               (seq * static_cast<uint64_t>(st->opt.refuse_percent)) % 100 < static_cast<uint64_t>(st->opt.refuse_percent);
    const std::string& uid = refusing ? kNobody : own_uid;
    line.clear();
    line += R"({"_tag":"Request","id":")";
    line += std::to_string(seq);
    if (st->opt.op == "me") {
      line += R"(","tag":"user.me","payload":{},"headers":[["authorization","Bearer )";
    } else {
      line += R"(","tag":"user.update","payload":{"id":")";
      line += uid;
      line += "\",";
      if (st->opt.field == "firstName") {
        line += "\"firstName\":\"Bench" + std::to_string(seq % 1000) + "\"";
      } else if (st->opt.field == "settings") {
        line += "\"settings\":{\"doNotDisturb\":" + std::string(seq % 2 ? "true" : "false") + "}";
      } else {
        line += "\"timezone\":\"" + std::string(kZones[seq % 4]) + "\"";
      }
      line += R"(},"headers":[["authorization","Bearer )";
    }
    line += token;
    line += "\"]]}\n";
  }

  void Send() {
    if (st->stopping) {
      Close();
      return;
    }
    BuildRequest();
    sent_at = Clock::now();
    uv_buf_t b = uv_buf_init(line.data(), static_cast<unsigned>(line.size()));
    // uv_try_write first: almost always completes immediately on a Unix socket.
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&pipe), &b, 1);
    if (n == static_cast<int>(line.size())) return;
    size_t off = n > 0 ? static_cast<size_t>(n) : 0;
    auto* req = new uv_write_t;
    auto* copy = new std::string(line.substr(off));
    req->data = copy;
    uv_buf_t rest = uv_buf_init(copy->data(), static_cast<unsigned>(copy->size()));
    uv_write(req, reinterpret_cast<uv_stream_t*>(&pipe), &rest, 1, [](uv_write_t* r, int) {
      delete static_cast<std::string*>(r->data);
      delete r;
    });
  }

  void OnLine(std::string_view l) {
    auto now = Clock::now();
    st->replies++;
    bool ok = l.find(R"("_tag":"Success")") != std::string_view::npos;
    if (!ok && refusing && l.find("UnauthorizedError") != std::string_view::npos) {
      st->refused++;
    } else if (!ok) {
      if (st->errors < 3) fprintf(stderr, "error reply: %.*s\n", static_cast<int>(std::min<size_t>(l.size(), 300)), l.data());
      st->errors++;
    }
    if (now >= st->measure_from && now < st->end) {
      st->completed++;
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - sent_at).count();
      st->samples_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
    }
    if (now >= st->end) st->stopping = true;
    Send();
  }

  void Close() {
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&pipe))) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe), [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      c->st->open--;
    });
  }
};

void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(s->data);
  if (n < 0) {
    if (!c->st->stopping) fprintf(stderr, "connection %d closed: %s\n", c->index, uv_strerror(static_cast<int>(n)));
    c->Close();
    return;
  }
  c->inbuf.append(buf->base, static_cast<size_t>(n));
  size_t start = 0;
  for (;;) {
    size_t nl = c->inbuf.find('\n', start);
    if (nl == std::string::npos) break;
    c->OnLine(std::string_view(c->inbuf).substr(start, nl - start));
    start = nl + 1;
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->pipe))) return;
  }
  c->inbuf.erase(0, start);
}

void Usage() {
  fprintf(stderr,
          "usage: usersd-loadgen --socket PATH --tokens FILE [--connections N] [--duration S]\n"
          "                      [--warmup S] [--op me|update] [--field timezone|firstName|settings]\n"
          "                      [--refuse-percent P] [--json]\n");
}

}  // namespace

int main(int argc, char** argv) {
  State st;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--socket") st.opt.socket = next();
    else if (a == "--tokens") st.opt.tokens_file = next();
    else if (a == "--connections" || a == "-c") st.opt.connections = std::atoi(next().c_str());
    else if (a == "--duration") st.opt.duration_s = std::atof(next().c_str());
    else if (a == "--warmup") st.opt.warmup_s = std::atof(next().c_str());
    else if (a == "--op") st.opt.op = next();
    else if (a == "--field") st.opt.field = next();
    else if (a == "--refuse-percent") st.opt.refuse_percent = std::atoi(next().c_str());
    else if (a == "--json") st.opt.json = true;
    else {
      Usage();
      return 2;
    }
  }
  if (st.opt.socket.empty() || st.opt.tokens_file.empty() || st.opt.connections < 1 ||
      (st.opt.op != "me" && st.opt.op != "update")) {
    Usage();
    return 2;
  }
  std::ifstream in(st.opt.tokens_file);
  std::string uid, token;
  while (in >> uid >> token) st.creds.emplace_back(uid, token);
  if (st.creds.empty()) {
    fprintf(stderr, "no credentials in %s\n", st.opt.tokens_file.c_str());
    return 2;
  }

  st.loop = uv_default_loop();
  st.start = Clock::now();
  st.measure_from = st.start + std::chrono::milliseconds(static_cast<int64_t>(st.opt.warmup_s * 1000));
  st.end = st.measure_from + std::chrono::milliseconds(static_cast<int64_t>(st.opt.duration_s * 1000));
  st.samples_us.reserve(4'000'000);
  for (int i = 0; i < st.opt.connections; ++i) {
    auto c = std::make_unique<Conn>();
    c->st = &st;
    c->index = i;
    uv_pipe_init(st.loop, &c->pipe, 0);
    c->pipe.data = c.get();
    c->connect_req.data = c.get();
    uv_pipe_connect(&c->connect_req, &c->pipe, st.opt.socket.c_str(), [](uv_connect_t* req, int status) {
      auto* c = static_cast<Conn*>(req->data);
      if (status < 0) {
        fprintf(stderr, "connect %s: %s\n", c->st->opt.socket.c_str(), uv_strerror(status));
        c->st->errors++;
        c->Close();
        return;
      }
      uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe),
                    [](uv_handle_t* h, size_t, uv_buf_t* b) {
                      auto* c = static_cast<Conn*>(h->data);
                      *b = uv_buf_init(c->readbuf, sizeof c->readbuf);
                    },
                    OnRead);
      c->Send();
    });
    st.open++;
    st.conns.push_back(std::move(c));
  }
  uv_run(st.loop, UV_RUN_DEFAULT);

  double secs = st.opt.duration_s;
  std::sort(st.samples_us.begin(), st.samples_us.end());
  auto pct = [&](double p) -> double {
    if (st.samples_us.empty()) return 0;
    size_t idx = std::min(st.samples_us.size() - 1, static_cast<size_t>(p / 100.0 * st.samples_us.size()));
    return st.samples_us[idx] / 1000.0;
  };
  double rps = st.completed / secs;
  if (st.opt.json) {
    printf(
        "{\"op\":\"%s\",\"connections\":%d,\"seconds\":%.1f,\"requests\":%llu,\"errors\":%llu,"
        "\"refused\":%llu,\"rps\":%.0f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
        "\"replies\":%llu}\n",
        st.opt.op.c_str(), st.opt.connections, secs, static_cast<unsigned long long>(st.completed),
        static_cast<unsigned long long>(st.errors), static_cast<unsigned long long>(st.refused), rps, pct(50), pct(90),
        pct(99), pct(99.9), static_cast<unsigned long long>(st.replies));
  } else {
    printf("%s: %d connections, %.1f s: %llu requests, %.0f req/s, errors %llu, refused %llu\n", st.opt.op.c_str(),
           st.opt.connections, secs, static_cast<unsigned long long>(st.completed), rps,
           static_cast<unsigned long long>(st.errors), static_cast<unsigned long long>(st.refused));
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f\n", pct(50), pct(90), pct(99), pct(99.9));
  }
  uv_loop_close(st.loop);
  return st.errors > 0 && st.completed == 0 ? 1 : 0;
}
