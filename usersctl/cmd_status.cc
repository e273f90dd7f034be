// usersctl status, health, metrics.
#include <cstdio>

#include "usersctl/args.h"
#include "usersctl/commands.h"
#include "usersctl/output.h"

namespace usersd::usersctl {

int CmdStatus(Client& c, const Options& o, const Words& rest) {
  ParseArgs(rest, "status", {}, {}, 0);
  c.Connect();
  Json s = c.Call("admin.status", Json::object());
  if (o.json) return PrintJson(s), kExitOk;
  auto line = [](const char* k, const std::string& v) { std::printf("%-18s %s\n", k, v.c_str()); };
  line("version", s.value("version", "?"));
  if (s.contains("hostId") && s["hostId"].is_string()) line("host id", s["hostId"].get<std::string>());
  line("uptime", Duration(s.value("uptimeSeconds", int64_t(0))));
  line("users", Str(s["users"]));
  line("last transaction", Str(s["lastTransactionId"]));
  const Json& st = s["store"];
  std::string store = st.value("path", "?") + " (" + Bytes(st.value("sizeBytes", 0.0)) + " on disk, " +
                      Bytes(st.value("usedBytes", 0.0)) + " used of a " + Bytes(st.value("mapSizeBytes", 0.0)) +
                      " map";
  if (st.contains("maxMapSizeBytes")) store += ", max " + Bytes(st.value("maxMapSizeBytes", 0.0));
  line("store", store + ")");
  const Json& ob = s["outbox"];
  std::string outbox = Str(ob["depth"]) + " job(s)";
  if (!ob["oldestAgeSeconds"].is_null()) outbox += ", oldest " + Duration(ob["oldestAgeSeconds"].get<int64_t>());
  line("outbox", outbox);
  line("dead letters", Str(s["deadLetters"]));
  const Json& up = s["upstream"];
  std::string upstream = up.value("state", "?");
  if (up.contains("since") && !up["since"].is_null()) upstream += " since " + up["since"].get<std::string>();
  line("upstream", upstream);
  // Why, when it needs an operator: what to set (unconfigured) or where the
  // refused key comes from and what to do (unauthorized).
  if (up.contains("detail") && up["detail"].is_string()) line("", up["detail"].get<std::string>());
  if (up.value("state", "") == "unauthorized" && up.contains("keySource") && up["keySource"].is_string())
    line("", "key from " + up["keySource"].get<std::string>());
  line("events cursor", Str(s["eventsCursor"]));
  // How the feed is read, from daemons that report it: the last good poll,
  // how long ago the feed was last read to its end, and a stuck feed.
  if (s.contains("events") && s["events"].is_object()) {
    const Json& ev = s["events"];
    std::string feed = ev["lastSuccessAt"].is_string() ? "last poll " + ev["lastSuccessAt"].get<std::string>()
                                                       : std::string("no successful poll yet");
    if (ev["cursorAgeSeconds"].is_number()) feed += ", read to the end " + Duration(ev["cursorAgeSeconds"].get<int64_t>()) + " ago";
    if (ev.value("stuck", false)) feed += ", STUCK (pages show no event newer than the cursor)";
    line("events feed", feed);
  }
  const Json& jw = s["jwks"];
  std::string jwks = Str(jw["keys"]) + " key(s)";
  if (!jw["ageSeconds"].is_null()) jwks += ", fetched " + Duration(jw["ageSeconds"].get<int64_t>()) + " ago";
  line("jwks", jwks);
  // The reconcile with WorkOS (users resync --all), from daemons that have it.
  if (s.contains("reconcile") && s["reconcile"].is_object()) line("reconcile", ReconcileStatus(s["reconcile"]));
  return kExitOk;
}

int CmdHealth(Client& c, const Options& o, const Words& rest) {
  ParseArgs(rest, "health", {}, {}, 0);
  c.Connect();
  Json h = c.Call("admin.health", Json::object());
  bool ok = h.value("ok", false);
  if (o.json) {
    PrintJson(h);
    return ok ? kExitOk : kExitRemote;
  }
  std::printf("health: %s\n", ok ? "ok" : "NOT OK");
  std::vector<std::vector<std::string>> rows;
  for (const char* name : {"configured", "store", "writer", "jwks", "upstream", "outbox", "deadLetters"}) {
    if (!h["checks"].contains(name)) continue;
    const Json& ch = h["checks"][name];
    std::string detail;
    if (ch.contains("detail")) {
      detail = ch["detail"].get<std::string>();
    } else {
      for (const auto& [k, v] : ch.items()) {
        if (k == "ok") continue;
        detail += (detail.empty() ? "" : ", ") + k + "=" + Str(v);
      }
    }
    bool advisory = std::string(name) != "store" && std::string(name) != "writer" && std::string(name) != "jwks" &&
                    std::string(name) != "configured";
    std::string state = ch.value("ok", false) ? "ok" : (advisory ? "warn" : "FAIL");
    rows.push_back({std::string("  ") + name, state, detail});
  }
  for (const auto& [k, ch] : h["checks"].items()) {
    bool known = false;
    for (const char* name : {"configured", "store", "writer", "jwks", "upstream", "outbox", "deadLetters"})
      known |= k == name;
    if (!known) rows.push_back({"  " + k, ch.value("ok", false) ? "ok" : "FAIL", ch.dump()});
  }
  PrintTable({"  CHECK", "STATE", "DETAIL"}, rows);
  return ok ? kExitOk : kExitRemote;
}

int CmdMetrics(Client& c, const Options& o, const Words& rest) {
  ParseArgs(rest, "metrics", {}, {}, 0);
  c.Connect();
  Json m = c.Call("admin.metrics", Json::object());
  if (o.json) return PrintJson(m), kExitOk;
  std::fputs(m.value("text", "").c_str(), stdout);
  return kExitOk;
}

}  // namespace usersd::usersctl
