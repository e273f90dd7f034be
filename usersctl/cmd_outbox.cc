// usersctl outbox and dead-letters.
#include <cstdint>
#include <cstdio>

#include "admin/limits.h"
#include "usersctl/args.h"
#include "usersctl/commands.h"
#include "usersctl/output.h"

namespace usersd::usersctl {

int CmdOutbox(Client& c, const Options& o, const Words& rest) {
  Args a = ParseArgs(rest, "outbox", {"--limit"}, {}, 0);
  Json p = Json::object();
  if (a.values.count("--limit"))
    p["limit"] = ParseInt(a.values["--limit"], "--limit", "outbox", 1, admin::kMaxJobsLimit);
  c.Connect();
  Json r = c.Call("admin.outbox.list", p);
  if (o.json) return PrintJson(r), kExitOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : r["jobs"]) {
    rows.push_back({Str(j["id"]), Str(j["userId"]), Str(j["op"]), Str(j["attempts"]), Str(j["nextAttemptAt"]),
                    Truncate(Str(j["lastError"]), 60)});
  }
  if (rows.empty()) std::printf("the outbox is empty\n");
  else PrintTable({"ID", "USER", "OP", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"}, rows);
  return kExitOk;
}

int CmdDeadLetters(Client& c, const Options& o, const Words& rest) {
  if (rest.empty()) UsageError("dead-letters: missing subcommand (list, retry, discard)", "dead-letters");
  std::string sub = rest[0];
  std::vector<std::string> args(rest.begin() + 1, rest.end());
  std::string topic = "dead-letters " + sub;
  if (sub == "list") {
    Args a = ParseArgs(args, topic, {"--limit"}, {}, 0);
    Json p = Json::object();
    if (a.values.count("--limit"))
      p["limit"] = ParseInt(a.values["--limit"], "--limit", topic, 1, admin::kMaxJobsLimit);
    c.Connect();
    Json r = c.Call("admin.deadLetters.list", p);
    if (o.json) return PrintJson(r), kExitOk;
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : r["deadLetters"]) {
      // The fields asked for, with their values (the document by name): the
      // part an operator needs first, before the reason.
      std::string fields;
      if (d.contains("fields") && d["fields"].is_object()) {
        for (auto it = d["fields"].begin(); it != d["fields"].end(); ++it) {
          if (it.key() == "external_id_import") continue;
          std::string one = it.key() == "doc" ? std::string("document") : it.key() + "=" + Str(*it);
          fields += (fields.empty() ? "" : ", ") + one;
        }
      }
      rows.push_back({Str(d["id"]), Str(d["userId"]), Str(d["op"]), Truncate(fields.empty() ? "-" : fields, 48),
                      Str(d["status"]), Str(d["failedAt"]), Truncate(Str(d["body"]), 60)});
    }
    if (rows.empty()) std::printf("no dead letters\n");
    else PrintTable({"ID", "USER", "OP", "FIELDS", "STATUS", "FAILED AT", "BODY"}, rows);
    return kExitOk;
  }
  if (sub == "retry" || sub == "discard") {
    Args a = ParseArgs(args, topic, {}, {"--all"}, 1);
    bool all = a.flags.count("--all") > 0;
    if (all == !a.positional.empty()) UsageError(topic + ": give a dead letter ID or --all", topic);
    Json p = all ? Json{{"all", true}}
                 : Json{{"id", ParseInt(a.positional[0], "ID", topic, 1, INT64_MAX)}};
    c.Connect();
    Json r = c.Call(sub == "retry" ? "admin.deadLetters.retry" : "admin.deadLetters.discard", p);
    if (o.json) return PrintJson(r), kExitOk;
    std::printf("%s %s dead letter(s)\n", sub == "retry" ? "re-queued" : "discarded", Str(r["count"]).c_str());
    return kExitOk;
  }
  UsageError("dead-letters: unknown subcommand '" + sub + "'", "dead-letters");
}

}  // namespace usersd::usersctl
