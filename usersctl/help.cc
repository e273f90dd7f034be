#include "usersctl/help.h"

namespace usersd::usersctl {

namespace {

struct HelpTopic {
  const char* name;
  const char* text;
};

}  // namespace

const char* const kMainHelp =
    "usage: usersctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS]\n"
    "\n"
    "Operate a running usersd through its admin socket.\n"
    "\n"
    "commands:\n"
    "  status                               daemon, store, outbox, upstream and JWKS status\n"
    "  health                               health checks (exit 1 when not ok)\n"
    "  metrics                              Prometheus metrics (text exposition)\n"
    "  users list [--after ID] [--limit N]  list users in id order\n"
    "  users get (ID | --workos-id X | --email E)\n"
    "                                       show one user\n"
    "  users export [FILE]                  write every user as JSON lines\n"
    "  users import [FILE]                  upsert users from JSON lines (by workosId)\n"
    "  users resync (ID | --workos-id X | --all) [--wait]\n"
    "                                       re-read users from WorkOS\n"
    "  outbox [--limit N]                   jobs waiting for WorkOS\n"
    "  dead-letters list [--limit N]        jobs WorkOS refused\n"
    "  dead-letters retry (ID | --all)      queue dead letters again\n"
    "  dead-letters discard (ID | --all)    drop dead letters\n"
    "  jwks refresh                         fetch the signing keys now\n"
    "  backup PATH                          hot backup of the store into directory PATH\n"
    "  reload                               re-read the configuration file\n"
    "  watch [--since N]                    follow the change feed (Ctrl-C stops)\n"
    "\n"
    "options:\n"
    "  --socket PATH   admin socket (default $USERSD_ADMIN_SOCKET or /run/usersd/admin.sock)\n"
    "  --json          print the raw result JSON instead of tables\n"
    "  --timeout SEC   give up waiting for an answer after SEC seconds (default 60;\n"
    "                  backup and watch wait without limit unless this is given)\n"
    "  -h, --help      help; also after any command: usersctl users --help\n"
    "  --version       print the version\n"
    "\n"
    "users import, users export and backup show their progress on stderr when it\n"
    "is a terminal (not with --json).\n"
    "\n"
    "exit status: 0 ok, 1 the operation failed, 2 usage error, 3 cannot reach usersd\n";

const HelpTopic kHelp[] = {
    {"status",
     "usage: usersctl status [--json]\n\n"
     "Shows version, uptime, user count, last transactionId, store size and map\n"
     "size, outbox depth and oldest job age, dead letters, upstream (WorkOS) state\n"
     "and since when, the events cursor and the JWKS key count and age.\n"},
    {"health",
     "usage: usersctl health [--json]\n\n"
     "Runs the daemon's health checks. store, writer and jwks decide the result;\n"
     "upstream, outbox and deadLetters are advisory. Exits 1 when not ok, so it\n"
     "can serve as a probe: usersctl health >/dev/null || alert.\n"},
    {"metrics",
     "usage: usersctl metrics [--json]\n\n"
     "Prints the Prometheus text exposition (with --json: {\"text\": ...}).\n"},
    {"users",
     "usage: usersctl users list [--after ID] [--limit N]\n"
     "       usersctl users get (ID | --workos-id X | --email E)\n"
     "       usersctl users export [FILE]\n"
     "       usersctl users import [FILE]\n"
     "       usersctl users resync (ID | --workos-id X | --all) [--wait]\n\n"
     "list    users in id order, deleted ones included, --limit per page (default\n"
     "        100, at most 1000); the footer shows the --after for the next page\n"
     "get     one user by id, WorkOS id or email (email finds live users only)\n"
     "export  every user as JSON lines to FILE or stdout (paging through the list;\n"
     "        for a point-in-time copy use backup)\n"
     "import  JSON lines from FILE or stdin, upserted by workosId. Each batch of\n"
     "        up to 1000 users commits atomically; a bad entry fails its batch and\n"
     "        names the line. Import changes local state only (nothing is sent to\n"
     "        WorkOS).\n"
     "resync  re-read one user, or all of them, from WorkOS and apply what differs\n"},
    {"users list", "usage: usersctl users list [--after ID] [--limit N] [--json]\n\n"
                   "Users in id order (deleted ones included). --limit: 1..1000, default 100.\n"},
    {"users get", "usage: usersctl users get (ID | --workos-id X | --email E) [--json]\n\n"
                  "Shows one user. Exits 1 with \"user not found\" when there is none.\n"},
    {"users export", "usage: usersctl users export [FILE]\n\n"
                     "Writes every user as one JSON object per line to FILE (or stdout).\n"
                     "On a terminal, stderr shows the count, rate and time left (not when the\n"
                     "users go to the terminal itself, nor with --json).\n"},
    {"users import", "usage: usersctl users import [FILE]\n\n"
                     "Reads JSON lines (the export format) from FILE or stdin and upserts each\n"
                     "user by workosId, in batches of up to 1000 that each commit atomically.\n"
                     "On a terminal, stderr shows the reading and then the import: count, rate\n"
                     "and time left (not with --json).\n"},
    {"users resync",
     "usage: usersctl users resync (ID | --workos-id X | --all) [--wait] [--json]\n\n"
     "Re-reads users from WorkOS and applies what differs locally (admin.users.resync).\n"
     "ID or --workos-id X: one user, synchronously; prints the outcome (updated,\n"
     "unchanged, deleted, created, not_found_in_workos) and the user.\n"
     "--all: starts a full reconcile in the daemon and returns its run id; with\n"
     "--wait, follows it (admin.status every second: users seen, applied, deleted,\n"
     "pages) until it is idle, and exits 1 if it ended with an error. Ctrl-C stops\n"
     "waiting, not the reconcile. --json prints the raw answer (with --wait, plus\n"
     "the final reconcile status under \"reconcile\").\n"},
    {"outbox", "usage: usersctl outbox [--limit N] [--json]\n\n"
               "Jobs waiting for WorkOS, oldest first (default 100).\n"},
    {"dead-letters",
     "usage: usersctl dead-letters list [--limit N]\n"
     "       usersctl dead-letters retry (ID | --all)\n"
     "       usersctl dead-letters discard (ID | --all)\n\n"
     "Jobs WorkOS refused for good (a 4xx other than 408/429) or that expired\n"
     "(outbox.max_age_seconds). retry queues them again with fresh attempts,\n"
     "carrying the user's current values; discard drops them.\n"},
    {"dead-letters list", "usage: usersctl dead-letters list [--limit N] [--json]\n"},
    {"dead-letters retry", "usage: usersctl dead-letters retry (ID | --all)\n"},
    {"dead-letters discard", "usage: usersctl dead-letters discard (ID | --all)\n"},
    {"jwks", "usage: usersctl jwks refresh\n\nFetches the JWKS now and prints the number of keys.\n"},
    {"jwks refresh", "usage: usersctl jwks refresh\n\nFetches the JWKS now and prints the number of keys.\n"},
    {"backup",
     "usage: usersctl backup PATH\n\n"
     "Writes a consistent, compacted copy of the store (mdb_env_copy2) into the\n"
     "directory PATH while usersd keeps serving. PATH is created if missing and\n"
     "must not already hold a data.mdb; a relative PATH is made absolute from the\n"
     "current directory. The daemon writes the copy, so PATH must be writable by\n"
     "the daemon's user. To restore: stop usersd, replace the contents of\n"
     "store.path with PATH/data.mdb, start usersd.\n"
     "On a terminal, stderr shows the bytes written so far (the size of\n"
     "PATH/data.mdb, when usersctl can see it) and the elapsed time (not with --json).\n"},
    {"reload",
     "usage: usersctl reload [--json]\n\n"
     "Re-reads the configuration file (like SIGHUP) and prints which keys took\n"
     "effect and which need a restart.\n"},
    {"watch",
     "usage: usersctl watch [--since N] [--json]\n\n"
     "Follows the change feed: one line per change (transactionId, op, user).\n"
     "Without --since it starts at the current last transactionId (new changes\n"
     "only); --since N prints every retained change after transactionId N first.\n"
     "Ctrl-C stops it (exit 0).\n"},
};

const char* HelpFor(const std::string& topic) {
  for (const auto& h : kHelp)
    if (topic == h.name) return h.text;
  return nullptr;
}

}  // namespace usersd::usersctl
