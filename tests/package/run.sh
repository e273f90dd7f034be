#!/usr/bin/env bash
# Tests the Debian package on this machine (make test-package):
#   1. installs it with dpkg -i (systemd need not be PID 1),
#   2. checks that every file, the conffile, the user and groups, /run/usersd
#      and the enabled units are in place and that the man pages render,
#   3. validates /etc/usersd/usersd.yaml with the installed daemon,
#   4. runs the installed daemon as the usersd user against the WorkOS-
#      compatible test server (daemon.test.mjs: user.me, usersctl status),
#   5. removes, then purges it, and checks that nothing is left but the usersd
#      user and groups, which Debian leaves in place; those are deleted at the
#      end only if this test created them, so the machine is left as it was.
# usage: tests/package/run.sh dist/usersd_VERSION_ARCH.deb   (as root)
set -uo pipefail
cd "$(dirname "$0")/../.."
deb=${1:?usage: $0 usersd_VERSION_ARCH.deb}
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
# check DESCRIPTION COMMAND...: runs COMMAND, counts it, shows its output on failure.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what"; printf '%s\n' "$out" | sed 's/^/    /' | tail -40; fi
}
# The page is found by man -w and renders with output and no groff warnings.
man_renders_cleanly() {
  local file text
  file=$(man -w "$1") || return 1
  text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$file" 2>&1 >/dev/null) || return 1
  [ -z "$text" ] || { echo "$text"; return 1; }
  [ -n "$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$file" 2>/dev/null)" ]
}
# Every command that `usersctl --help` lists (its first column, up to the
# first argument) and every option of `usersd --help` is in the man page.
man_covers_help() {
  local page=$1 help=$2 text missing=
  text=$(LC_ALL=C MANWIDTH=200 man -l "$(man -w "$page")" 2>/dev/null | tr -s ' \n' '  ')
  while read -r item; do
    [ -n "$item" ] && ! grep -qF -- "$item" <<<"$text" && missing="$missing [$item]"
  done <<<"$help"
  [ -z "$missing" ] || { echo "not in man $page:$missing"; return 1; }
}
usersctl_commands() {
  /usr/bin/usersctl --help | sed -n '/^commands:/,/^$/p' | grep '^  [a-z]' | sed 's/^  //' |
    awk -F '  +' '{ n = split($1, t, " "); c = t[1]; for (i = 2; i <= n && t[i] ~ /^[a-z-]+$/; i++) c = c " " t[i]; print c }'
}
usersd_options() {
  /usr/sbin/usersd --help | grep -o -- '--[a-z-]*' | sort -u
}
finish() {
  echo "package: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

if [ "$(id -u)" != 0 ]; then echo "tests/package/run.sh: run as root (it installs and purges the package)"; exit 2; fi
[ -f "$deb" ] || { echo "tests/package/run.sh: no package at $deb"; exit 2; }

# The test installs, then purges: refuse to run over a real installation.
if dpkg-query -W -f='${db:Status-Status}' usersd 2>/dev/null | grep -qv '^not-installed$'; then
  echo "tests/package/run.sh: usersd is installed on this machine ($(dpkg-query -W -f='${db:Status-Status}' usersd));"
  echo "  the test would purge it and its store. Purge it first: dpkg --purge usersd"
  exit 2
fi
for p in /etc/usersd /var/lib/usersd /run/usersd; do
  if [ -e "$p" ]; then echo "tests/package/run.sh: $p exists (an installation without the package?); the test would delete it"; exit 2; fi
done
had_user=no
getent passwd usersd >/dev/null && had_user=yes
had_groups=$(for g in usersd usersd-clients; do getent group "$g" >/dev/null && echo "$g"; done)

version=$(dpkg-deb -f "$deb" Version)
echo "# package $deb (version $version)"
check "the package is named usersd" test "$(dpkg-deb -f "$deb" Package)" = usersd
check "it depends on systemd (or a sysusers provider) for systemd-sysusers" \
  bash -c "dpkg-deb -f '$deb' Depends | grep -q 'systemd | systemd-standalone-sysusers'"

# ------------------------------------------------------------ install
echo "# dpkg -i"
if out=$(DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" 2>&1); then
  ok "dpkg -i succeeds without systemd as PID 1"
else
  not_ok "dpkg -i succeeds"
  printf '%s\n' "$out" | sed 's/^/    /'
  dpkg --purge usersd >/dev/null 2>&1
  finish
fi
printf '%s\n' "$out" | sed 's/^/    /'
check "the maintainer scripts print no error" bash -c "! grep -Eiq 'error|fail|warning' <<<\"\$1\"" _ "$out"
check "dpkg reports it installed" bash -c "dpkg-query -W -f='\${db:Status-Status}' usersd | grep -qx installed"
dpkg -L usersd | sort >/tmp/usersd-package-files.$$

for f in /usr/sbin/usersd /usr/bin/usersctl; do
  check "$f is an executable" test -x "$f"
done
for f in /lib/systemd/system/usersd.service /lib/systemd/system/usersd.socket /lib/systemd/system/usersd-admin.socket \
  /usr/lib/sysusers.d/usersd.conf /usr/lib/tmpfiles.d/usersd.conf /etc/usersd/usersd.yaml \
  /usr/share/man/man8/usersd.8.gz /usr/share/man/man8/usersctl.8.gz /usr/share/man/man5/usersd.yaml.5.gz \
  /usr/share/doc/usersd/copyright /usr/share/doc/usersd/DEPLOYMENT.md /usr/share/doc/usersd/CONFIGURATION.md \
  /usr/share/doc/usersd/usersd.example.yaml; do
  check "$f is installed" test -f "$f"
done
check "/etc/usersd/usersd.yaml is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' usersd | grep -q '^ /etc/usersd/usersd.yaml '"
check "/etc/usersd/usersd.yaml is the packaged default (every key commented)" cmp /etc/usersd/usersd.yaml systemd/usersd.yaml
check "usersd.service runs /usr/sbin/usersd with /etc/usersd/usersd.yaml" \
  grep -qx 'ExecStart=/usr/sbin/usersd --config /etc/usersd/usersd.yaml' /lib/systemd/system/usersd.service
check "the units name the installed documentation" test -f "$(sed -n 's|^Documentation=file:||p' /lib/systemd/system/usersd.service)"
check "usersd --version is the package version" bash -c "/usr/sbin/usersd --version | grep -qx 'usersd $version'"
check "usersctl --version runs" /usr/bin/usersctl --version
for page in usersd usersctl usersd.yaml; do
  check "man $page renders without warnings" man_renders_cleanly "$page"
done

check "usersctl(8) describes every command of usersctl --help" man_covers_help usersctl "$(usersctl_commands)"
check "usersd(8) describes every option of usersd --help" man_covers_help usersd "$(usersd_options)"

# sysusers.d and tmpfiles.d, applied by the postinst.
check "the usersd system user exists (home /var/lib/usersd, no login shell)" \
  bash -c "getent passwd usersd | grep -Eq '^usersd:x:[0-9]+:[0-9]+:[^:]*:/var/lib/usersd:/usr/sbin/nologin$' && [ \$(id -u usersd) -lt 1000 ]"
check "the usersd-clients group exists with usersd in it" bash -c "getent group usersd-clients | grep -Eq '^usersd-clients:x:[0-9]+:usersd$'"
check "/run/usersd exists, owned by usersd, mode 0755" bash -c "[ \"\$(stat -c '%U %G %a %F' /run/usersd)\" = 'usersd usersd 755 directory' ]"
check "/etc/usersd/workos_api_key exists, empty, root's, mode 0600 (LoadCredential= finds it)" \
  bash -c "[ \"\$(stat -c '%U %G %a %s %F' /etc/usersd/workos_api_key)\" = 'root root 600 0 regular empty file' ]"
check "the empty credential is no key: the configuration is valid and usersd runs without WorkOS" \
  env CREDENTIALS_DIRECTORY=/etc/usersd /usr/sbin/usersd --config /etc/usersd/usersd.yaml --check-config

# Enabled on install: deb-systemd-helper made the [Install] symlinks even
# though systemd is not running (and started nothing).
check "usersd.service is enabled (multi-user.target.wants)" \
  test "$(readlink /etc/systemd/system/multi-user.target.wants/usersd.service)" = /lib/systemd/system/usersd.service
for s in usersd.socket usersd-admin.socket; do
  check "$s is enabled (sockets.target.wants)" test "$(readlink /etc/systemd/system/sockets.target.wants/$s)" = /lib/systemd/system/$s
done

# ------------------------------------------------------------ config
echo "# the packaged configuration"
check "usersd --check-config accepts /etc/usersd/usersd.yaml" /usr/sbin/usersd --config /etc/usersd/usersd.yaml --check-config
check "the usersd user can read and validate it" \
  setpriv --reuid=usersd --regid=usersd --init-groups -- /usr/sbin/usersd --config /etc/usersd/usersd.yaml --check-config
check "without --config usersd reads /etc/usersd/usersd.yaml" \
  bash -c "/usr/sbin/usersd --check-config | grep -qx '/etc/usersd/usersd.yaml: configuration is valid'"

# ------------------------------------------------------------ run it
echo "# the installed daemon against the WorkOS-compatible test server"
if USERSD_BIN=/usr/sbin/usersd USERSCTL_BIN=/usr/bin/usersctl node --test --test-reporter=spec tests/package/daemon.test.mjs; then
  ok "the installed daemon serves user.me and usersctl status (daemon.test.mjs)"
else
  not_ok "the installed daemon serves user.me and usersctl status (daemon.test.mjs)"
fi
# An API key file as an administrator would add it (DEPLOYMENT.md).
install -m 0600 /dev/null /etc/usersd/workos_api_key
echo sk_test_package >/etc/usersd/workos_api_key

# ------------------------------------------------------------ remove, purge
echo "# dpkg -r, then dpkg --purge"
check "dpkg -r succeeds" dpkg -r usersd
check "after remove the binaries are gone" bash -c '! [ -e /usr/sbin/usersd ] && ! [ -e /usr/bin/usersctl ]'
check "after remove the conffile and the store stay" bash -c '[ -f /etc/usersd/usersd.yaml ] && [ -f /var/lib/usersd/data.mdb ]'
check "dpkg --purge succeeds" dpkg --purge usersd
check "dpkg no longer knows usersd" bash -c "! dpkg-query -W usersd >/dev/null 2>&1 || dpkg-query -W -f='\${db:Status-Status}' usersd | grep -qx not-installed"
left=$(while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done </tmp/usersd-package-files.$$)
check "no file of the package is left" test -z "$left"
[ -z "$left" ] || echo "$left" | sed 's/^/    left: /'
for p in /etc/usersd /var/lib/usersd /run/usersd /usr/share/doc/usersd /lib/systemd/system/usersd.service; do
  check "$p is gone" test ! -e "$p"
done
check "the enable symlinks and deb-systemd-helper's state are gone" bash -c \
  "! ls /etc/systemd/system/*.wants/usersd* 2>/dev/null | grep -q . && ! ls /var/lib/systemd/deb-systemd-helper-enabled/ -R 2>/dev/null | grep -q usersd"
check "no maintainer scripts are left in dpkg's database" bash -c "! ls /var/lib/dpkg/info/usersd.* 2>/dev/null | grep -q ."
check "the usersd user stays, as Debian leaves system users" getent passwd usersd
rm -f /tmp/usersd-package-files.$$

# Leave the machine as it was.
if [ "$had_user" = no ]; then userdel usersd 2>/dev/null; fi
for g in usersd usersd-clients; do
  if ! grep -qx "$g" <<<"$had_groups" && getent group "$g" >/dev/null; then groupdel "$g"; fi
done
finish
