// usersctl's commands, one function each, called by main with the words
// after the command name. Each parses its arguments (usage errors exit 2),
// connects, calls the admin methods and prints; the return value is the
// exit code (failures usually exit through Die instead).
#pragma once

#include <string>
#include <vector>

#include "usersctl/client.h"

namespace usersd::usersctl {

using Words = std::vector<std::string>;

// cmd_status.cc: admin.status, admin.health, admin.metrics.
int CmdStatus(Client& c, const Options& o, const Words& rest);
int CmdHealth(Client& c, const Options& o, const Words& rest);
int CmdMetrics(Client& c, const Options& o, const Words& rest);

// cmd_outbox.cc: admin.outbox.list, admin.deadLetters.*.
int CmdOutbox(Client& c, const Options& o, const Words& rest);
int CmdDeadLetters(Client& c, const Options& o, const Words& rest);

// cmd_users.cc: users list, get, export, import, resync.
int CmdUsers(Client& c, const Options& o, const Words& rest);

// cmd_maintenance.cc: backup, reload (admin.config.reload), jwks refresh,
// watch (admin.changes).
int CmdBackup(Client& c, const Options& o, const Words& rest);
int CmdReload(Client& c, const Options& o, const Words& rest);
int CmdJwks(Client& c, const Options& o, const Words& rest);
int CmdWatch(Client& c, const Options& o, const Words& rest);

}  // namespace usersd::usersctl
