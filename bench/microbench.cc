// usersd-microbench: nanoseconds per call of the per-request pieces that
// docs/bench-history.md's optimisation log measures in isolation: parsing a
// user.me request line (820-byte token), a token-cache lookup (SHA-256),
// decoding a user record with and without settings, and writing the
// user.me reply. Single-threaded, best of 3 runs of N calls each.
//
//   build/bench/usersd-microbench [N]   (default 300000)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "auth/token_cache.h"
#include "domain/user_json.h"
#include "ipc/protocol.h"
#include "store/record_codec.h"

using namespace usersd;

namespace {

double BestNs(int n, const std::function<size_t()>& f) {
  double best = 1e18;
  size_t sink = 0;
  for (int run = 0; run < 3; ++run) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) sink += f();
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() / n);
  }
  if (sink == 42) std::puts("");  // keep the work observable
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 300000;
  std::string token(820, 'x');
  for (size_t i = 0; i < token.size(); ++i) token[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_."[i % 49];
  const std::string line = std::string(R"({"_tag":"Request","id":"12345","tag":"user.me","payload":{},"headers":[["authorization","Bearer )") +
                           token + R"("]]})";

  auth::TokenCache cache(1000);
  auth::Claims claims;
  claims.sub = "user_01";
  claims.exp = 4'000'000'000;
  claims.valid_until = claims.exp;
  cache.Put(token, claims);

  store::UserRecord u;
  u.id = "0b0c2f6e-3a57-4e0e-9d3e-6c1f2b9f7a10";
  u.workos_id = "user_01HXYZABCDEFGHJKMNPQRSTVWX";
  u.email = "ada.lovelace@example.com";
  u.first_name = "Ada";
  u.last_name = "Lovelace";
  u.created_at_ms = 1767225600123;
  u.txid = 42;
  u.timezone = "Europe/Paris";
  u.avatar_url = "https://img.example.com/avatars/ada.png";
  const std::string plain = store::EncodeUser(u);
  u.settings = store::Json{{"doNotDisturb", false}, {"quietHoursStart", "22:00"}, {"quietHoursEnd", "07:00"},
                           {"theme", {{"mode", "dark"}}}};
  const std::string with_settings = store::EncodeUser(u);
  u.settings.reset();

  std::printf("ParseLine (user.me, 820-byte token)   %7.0f ns\n",
              BestNs(n, [&] { return ipc::ParseLine(line).request.headers.size(); }));
  std::printf("TokenCache::Lookup (SHA-256)          %7.0f ns\n",
              BestNs(n, [&] { return static_cast<size_t>(cache.Lookup(token, 1000) != nullptr); }));
  std::printf("DecodeUser, no settings               %7.0f ns\n",
              BestNs(n, [&] { return store::DecodeUser(plain)->id.size(); }));
  std::printf("DecodeUser, four settings keys        %7.0f ns\n",
              BestNs(n, [&] { return store::DecodeUser(with_settings)->id.size(); }));
  std::printf("EncodeUser                            %7.0f ns\n", BestNs(n, [&] { return store::EncodeUser(u).size(); }));
  std::printf("AppendCurrentUserJson                 %7.0f ns\n", BestNs(n, [&] {
                std::string out;
                domain::AppendCurrentUserJson(out, u, claims);
                return out.size();
              }));
  return 0;
}
