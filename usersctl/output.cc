#include "usersctl/output.h"

#include <algorithm>
#include <cstdio>

namespace usersd::usersctl {

size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) n++;
  return n;
}

std::string Truncate(const std::string& s, size_t max) {
  std::string flat;
  for (char c : s) flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (Width(flat) <= max) return flat;
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < flat.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(flat[i]);
    if ((c & 0xC0) != 0x80) {
      if (n == max - 1) break;
      n++;
    }
    out += flat[i];
  }
  return out + "…";
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = Width(header[i]);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], Width(r[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(w[i] - Width(cells[i]) + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string Str(const Json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>().empty() ? "\"\"" : j.get<std::string>();
  return j.dump();
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, u++;
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

std::string Duration(int64_t secs) {
  if (secs < 0) secs = 0;
  int64_t d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60, s = secs % 60;
  char buf[64];
  if (d > 0) std::snprintf(buf, sizeof buf, "%lldd %lldh %lldm", (long long)d, (long long)h, (long long)m);
  else if (h > 0) std::snprintf(buf, sizeof buf, "%lldh %lldm %llds", (long long)h, (long long)m, (long long)s);
  else if (m > 0) std::snprintf(buf, sizeof buf, "%lldm %llds", (long long)m, (long long)s);
  else std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

std::string UserName(const Json& u) {
  std::string n = u.value("firstName", "");
  std::string l = u.value("lastName", "");
  if (!l.empty()) n += (n.empty() ? "" : " ") + l;
  return n.empty() ? "-" : n;
}

void PrintJson(const Json& j) { std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str()); }

void PrintUser(const Json& u) {
  const char* order[] = {"id", "workosId", "email", "firstName", "lastName", "organizationId", "role", "userType",
                         "isOnboarded", "avatarUrl", "timezone", "settings", "createdAt", "updatedAt", "deletedAt"};
  for (const char* k : order)
    if (u.contains(k)) std::printf("%-16s %s\n", k, Str(u[k]).c_str());
  for (const auto& [k, v] : u.items()) {
    bool known = false;
    for (const char* o : order) known |= k == o;
    if (!known) std::printf("%-16s %s\n", k.c_str(), Str(v).c_str());
  }
}

std::string ReconcileSummary(const Json& reconcile) {
  auto n = [&](const char* k) { return reconcile.contains(k) ? Str(reconcile[k]) : std::string("-"); };
  std::string s = n("usersSeen") + " users seen, " + n("usersApplied") + " applied, " + n("usersDeleted") +
                  " deleted, " + n("pages") + " pages";
  // Users the listing missed but WorkOS still had when asked one by one.
  if (reconcile.contains("usersNotListed") && reconcile["usersNotListed"].is_number() &&
      reconcile["usersNotListed"].get<double>() > 0)
    s += ", " + Str(reconcile["usersNotListed"]) + " not listed but kept";
  if (reconcile.contains("lastError") && !reconcile["lastError"].is_null())
    s += "; last error: " + Str(reconcile["lastError"]);
  return s;
}

std::string ReconcileStatus(const Json& reconcile) {
  auto has = [&](const char* k) { return reconcile.contains(k) && !reconcile[k].is_null(); };
  std::string state = reconcile.value("state", "?");
  if (state == "running") {
    std::string s = "running";
    if (has("reason")) s += " (" + Str(reconcile["reason"]) + ")";
    if (has("startedAt")) s += " since " + Str(reconcile["startedAt"]);
    return s + ": " + ReconcileSummary(reconcile);
  }
  std::string s = state;
  if (has("finishedAt")) {
    s += ", last run finished " + Str(reconcile["finishedAt"]) + ": " + ReconcileSummary(reconcile);
  } else if (has("lastError")) {
    s += ", last run failed: " + Str(reconcile["lastError"]);
  }
  if (has("nextAutomaticStartAt")) s += "; next automatic run not before " + Str(reconcile["nextAutomaticStartAt"]);
  return s;
}

}  // namespace usersd::usersctl
