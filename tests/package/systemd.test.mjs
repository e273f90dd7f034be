// The Debian package under a real systemd (make test-package, after run.sh).
//
// A minimal root of the host's Debian release is built with mmdebstrap from
// the host's own apt sources (never a mirror named here), booted with
// systemd-nspawn (systemd as PID 1, cgroup v2 layout:
// SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1; --register=no --keep-unit, as the host
// need not run systemd), and every command inside runs through nsenter. The
// container shares the host's network, so the daemon inside reaches the
// WorkOS-compatible test server on the host's loopback, and this process
// reaches the daemon's application socket through /proc/PID/root.
//
// Each test is one step, in order; a step that fails skips the rest. The time
// of each step is printed at the end. What is checked: the .deb installs and
// its units are active; a fresh install is unconfigured (contacts nothing,
// says what to set, in status and in the journal at the right priority);
// configured, it serves; the sandbox is in force (/proc/PID/status); socket
// activation, reload, restart, kill -9 with nothing lost, a crash loop that
// recovers by itself, the watchdog, a reboot and purge. Nothing is left
// behind: the root, the cgroups and nspawn's runtime files are removed.
//
// Environment: USERSD_DEB (the package; required). USERSD_SYSTEMD_BASE_ROOT:
// a directory holding a root built earlier, copied instead of running
// mmdebstrap (for working on this test; CI leaves it unset). Run as root.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { withFake, connect, newUser, ok, failure, sleep, waitFor, suiteScope } from '../integration/harness.mjs';

const DEB = process.env.USERSD_DEB;
const BASE_ROOT = process.env.USERSD_SYSTEMD_BASE_ROOT || '';
const INSIDE_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', TERM: 'dumb' };
const CONFIG = '/etc/usersd/usersd.yaml';
const KEY_FILE = '/etc/usersd/workos_api_key';

// ------------------------------------------------------------ host helpers

function run(cmd, args, { input, timeoutMs = 120000, env } = {}) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: timeoutMs, env: env ?? process.env, maxBuffer: 64 << 20 });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

function must(r, what) {
  assert.ok(!r.error && r.code === 0, `${what}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.error ? ` ${r.error.message}` : ''}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function hostCodename() {
  const text = fs.readFileSync('/etc/os-release', 'utf8');
  const m = /^VERSION_CODENAME=(.*)$/m.exec(text);
  assert.ok(m && m[1], '/etc/os-release has no VERSION_CODENAME');
  return m[1].replace(/^"|"$/g, '');
}

// The host's apt sources for its own release (its suite, -updates and
// -security), as deb822 stanzas: the mirror comes from the machine, as apt
// itself would use it. Both formats: sources.list(.d/*.list) one-line entries
// and sources.list.d/*.sources stanzas; disabled entries are left out.
export function hostAptSources(codename, root = '/etc/apt') {
  const wanted = (suite) => suite === codename || suite === `${codename}-updates` || suite === `${codename}-security`;
  const out = [];
  const files = [];
  const list = [path.join(root, 'sources.list')];
  const dir = path.join(root, 'sources.list.d');
  if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir).sort()) list.push(path.join(dir, f));
  for (const file of list) {
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      files.push(file);
      for (const block of text.split(/\n\s*\n/)) {
        const fields = {};
        let last = null;
        for (const line of block.split('\n')) {
          if (/^\s*#/.test(line) || !line.trim()) continue;
          const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
          if (m) {
            last = m[1].toLowerCase();
            fields[last] = m[2].trim();
          } else if (last && /^\s/.test(line)) {
            fields[last] += `\n${line}`;
          }
        }
        if (!fields.types || !fields.uris || !fields.suites) continue;
        if (/^(no|false)$/i.test(fields.enabled ?? '')) continue;
        if (!fields.types.split(/\s+/).includes('deb')) continue;
        const suites = fields.suites.split(/\s+/).filter(wanted);
        if (!suites.length) continue;
        let stanza = `Types: deb\nURIs: ${fields.uris}\nSuites: ${suites.join(' ')}\nComponents: ${fields.components || 'main'}\n`;
        if (fields['signed-by']) stanza += `Signed-By: ${fields['signed-by']}\n`;
        out.push(stanza);
      }
    } else if (file.endsWith('.list') || file === path.join(root, 'sources.list')) {
      files.push(file);
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        const m = /^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line);
        if (!m || !wanted(m[3])) continue;
        const opts = m[1] ? m[1].slice(1, -1).trim() : '';
        const signed = /signed-by=(\S+)/.exec(opts);
        let stanza = `Types: deb\nURIs: ${m[2]}\nSuites: ${m[3]}\nComponents: ${m[4].trim()}\n`;
        if (signed) stanza += `Signed-By: ${signed[1]}\n`;
        out.push(stanza);
      }
    }
  }
  return { text: out.join('\n'), files };
}

// The packages the .deb depends on (first alternative, no versions), so the
// root has them before dpkg -i runs without a network-backed apt.
function debDepends(deb) {
  const dep = must(run('dpkg-deb', ['-f', deb, 'Depends']), 'dpkg-deb -f Depends').trim();
  return dep
    .split(',')
    .map((d) => d.split('|')[0].replace(/\(.*\)/, '').replace(/:any$/, '').trim())
    .filter(Boolean);
}

// The cgroup mounts that nspawn writes below: cgroup2 (at /sys/fs/cgroup or,
// on a hybrid host, /sys/fs/cgroup/unified) and the v1 name=systemd tree.
function cgroupMounts() {
  const mounts = [];
  const self = fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n').map((l) => l.split(':'));
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n')) {
    const [left, right] = line.split(' - ');
    const mountPoint = left.split(' ')[4];
    const [fstype, , superOpts] = right.split(' ');
    let own;
    if (fstype === 'cgroup2') own = self.find((p) => p[0] === '0')?.[2];
    else if (fstype === 'cgroup' && superOpts.split(',').includes('name=systemd')) own = self.find((p) => p[1] === 'name=systemd')?.[2];
    if (own !== undefined) mounts.push(path.join(mountPoint, own));
  }
  return mounts;
}

// Removes a cgroup directory tree bottom-up (cgroup directories are removed
// with rmdir; the files in them are the kernel's).
function removeCgroupTree(dir) {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

// Resolves to null after `ms`, without keeping the process alive for it.
function timeout(ms) {
  return new Promise((resolve) => setTimeout(() => resolve(null), ms).unref());
}

// ------------------------------------------------------------ the machine

class Machine {
  constructor(root, name) {
    this.root = root;
    this.name = name;
    this.proc = null;
    this.leader = 0;
    this.cgroups = [];
    this.console = path.join(path.dirname(root), 'console.log');
  }

  // Boots the root; resolves once systemd says the system is running.
  async boot() {
    const out = fs.openSync(this.console, 'a');
    const hostHasSystemd = fs.readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd';
    const nspawn = ['systemd-nspawn', '--quiet', '--boot', '--register=no', '--keep-unit', '--console=read-only',
      `--machine=${this.name}`, '-D', this.root];
    let cmd;
    let args;
    if (hostHasSystemd) {
      // A delegated scope is the unit nspawn keeps (--keep-unit).
      cmd = 'systemd-run';
      args = ['--quiet', '--scope', '--property=Delegate=yes', '--', ...nspawn];
    } else {
      // No systemd on the host: nspawn puts its supervisor and the container
      // below its own cgroup, so it starts in one of ours, removed afterwards.
      this.cgroups = cgroupMounts().map((m) => path.join(m, `${this.name}.test`));
      for (const cg of this.cgroups) fs.mkdirSync(cg, { recursive: true });
      cmd = 'sh';
      const script = `${this.cgroups.map((cg) => `echo $$ > '${cg}/cgroup.procs' || exit 97`).join('\n')}\nexec "$@"`;
      args = ['-c', script, 'sh', ...nspawn];
    }
    this.proc = spawn(cmd, args, { stdio: ['ignore', out, out], env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' } });
    fs.closeSync(out);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    this.exitCode = null;
    this.exited.then((r) => (this.exitCode = r));
    this.leader = 0;
    await waitFor(() => {
      if (this.exitCode) throw new Error(`systemd-nspawn exited ${JSON.stringify(this.exitCode)}:\n${this.consoleTail()}`);
      this.leader = this.findLeader();
      return this.leader > 0;
    }, { timeoutMs: 60000, what: 'the container\'s PID 1' });
    let state = '';
    await waitFor(() => {
      if (this.exitCode) throw new Error(`systemd-nspawn exited ${JSON.stringify(this.exitCode)}:\n${this.consoleTail()}`);
      state = this.sh('systemctl is-system-running --wait', { allowFail: true, timeoutMs: 120000 }).stdout.trim();
      return state === 'running' || state === 'degraded';
    }, { timeoutMs: 180000, intervalMs: 500, what: 'systemctl is-system-running' });
    if (state !== 'running') {
      assert.fail(`the container booted ${state}:\n${this.sh('systemctl --failed --no-pager', { allowFail: true }).stdout}`);
    }
  }

  // The container's PID 1: the systemd that nspawn forked (nspawn's child,
  // or its grandchild under systemd-run --scope).
  findLeader() {
    const children = (pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    const comm = (pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    };
    const queue = [this.proc.pid];
    for (let depth = 0; queue.length && depth < 50; depth++) {
      const pid = queue.shift();
      for (const c of children(pid)) {
        if (comm(pid) === 'systemd-nspawn' && comm(c) === 'systemd') return c;
        queue.push(c);
      }
    }
    return 0;
  }

  consoleTail() {
    try {
      return fs.readFileSync(this.console, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  }

  // Runs a shell command inside (all of PID 1's namespaces, its root).
  sh(script, { input, allowFail = false, timeoutMs = 120000 } = {}) {
    assert.ok(this.leader > 0, 'the container is not running');
    const r = run('nsenter', ['-t', String(this.leader), '-a', '-r', '-w', '/bin/sh', '-c', script], {
      input, timeoutMs, env: INSIDE_ENV,
    });
    if (!allowFail) must(r, `inside: ${script}`);
    return r;
  }

  // A path inside, as this process reaches it (sockets included).
  hostPath(p) {
    return `/proc/${this.leader}/root${p}`;
  }

  async poweroff() {
    if (!this.proc || this.exitCode) return this.exitCode;
    this.sh('systemctl poweroff', { allowFail: true });
    const r = await Promise.race([this.exited, timeout(90000)]);
    if (!r) {
      this.proc.kill('SIGKILL');
      return this.exited;
    }
    return r;
  }

  async reboot() {
    this.sh('systemctl reboot', { allowFail: true });
    const r = await Promise.race([this.exited, timeout(90000)]);
    // nspawn ends with 133 when the container asked for a reboot (what
    // systemd-nspawn@.service restarts it on: RestartForceExitStatus=133).
    assert.deepEqual(r, { code: 133, signal: null }, `systemctl reboot: nspawn ended ${JSON.stringify(r)}\n${this.consoleTail()}`);
    this.removeCgroups();
    await this.boot();
  }

  removeCgroups() {
    for (const cg of this.cgroups) removeCgroupTree(cg);
    this.cgroups = [];
  }
}

// ------------------------------------------------------------ the steps

describe(`the usersd package under systemd (${DEB ?? 'USERSD_DEB unset'})`, { concurrency: false }, () => {
  const scope = suiteScope();
  const timings = [];
  let work;
  let machine;
  let fake;
  let failedStep = null;
  let nspawnRunDirExisted = true;
  let version;
  let user; // {workos, token, me}
  const name = `usersd-systemd-${process.pid}`;

  // One step: skipped once an earlier one failed (they build on each other),
  // timed either way.
  const step = (title, fn, timeoutMs = 300000) =>
    test(title, { timeout: timeoutMs }, async (t) => {
      if (failedStep) return t.skip(`after "${failedStep}" failed`);
      const start = Date.now();
      try {
        await fn(t);
      } catch (e) {
        failedStep = title;
        if (machine?.leader && machine.exitCode === null) {
          const j = machine.sh('journalctl -b --no-pager -n 60 -u usersd.service -u usersd.socket -u usersd-admin.socket', { allowFail: true });
          process.stdout.write(`# journal of usersd's units (last 60 lines):\n${`${j.stdout}${j.stderr}`.replace(/^/gm, '#   ')}\n`);
        }
        throw e;
      } finally {
        timings.push({ title, ms: Date.now() - start });
      }
    });

  const inside = (script, opts) => machine.sh(script, opts);
  const show = (unit, prop) => inside(`systemctl show -P ${prop} ${unit}`).stdout.trim();
  const mainPid = () => Number(show('usersd.service', 'MainPID'));
  const status = () => JSON.parse(inside('usersctl --json status').stdout);
  const appSocket = () => machine.hostPath('/run/usersd/usersd.sock');
  const writeInside = (file, text, mode = '0644') =>
    inside(`umask 077; cat > '${file}.new' && chmod ${mode} '${file}.new' && mv '${file}.new' '${file}'`, { input: text });
  const packagedConfig = () => fs.readFileSync(machine.hostPath(`${CONFIG}.dpkg-dist`), 'utf8');
  // The packaged file (kept aside at install) with these sections appended.
  const configure = (extra) => writeInside(CONFIG, `${packagedConfig()}\n${extra}`);
  const journal = (args) => inside(`journalctl -b --no-pager ${args}`, { allowFail: true }).stdout;
  const waitActive = (unit, what = `${unit} active`, timeoutMs = 60000) =>
    waitFor(() => inside(`systemctl is-active ${unit}`, { allowFail: true }).stdout.trim() === 'active', { timeoutMs, intervalMs: 200, what });
  // Waits until the service runs a main process other than `old` and has
  // sent READY=1 (systemctl is-active says "active" only then, Type=notify).
  const waitNewMain = async (old, timeoutMs = 60000) => {
    let pid = 0;
    await waitFor(() => {
      pid = mainPid();
      return pid > 0 && pid !== old && inside('systemctl is-active usersd.service', { allowFail: true }).stdout.trim() === 'active';
    }, { timeoutMs, intervalMs: 200, what: `a new usersd main process (old ${old})` });
    return pid;
  };

  before(() => {
    assert.ok(DEB && fs.existsSync(DEB), `USERSD_DEB must name the package (got ${DEB})`);
    assert.equal(process.getuid(), 0, 'run as root (make test-package)');
    for (const tool of ['systemd-nspawn', 'nsenter', BASE_ROOT ? 'cp' : 'mmdebstrap']) {
      assert.equal(run('sh', ['-c', `command -v ${tool}`]).code, 0, `${tool} is missing (make test-package installs systemd-container and mmdebstrap)`);
    }
    version = must(run('dpkg-deb', ['-f', DEB, 'Version']), 'dpkg-deb').trim();
    nspawnRunDirExisted = fs.existsSync('/run/systemd/nspawn');
    work = fs.mkdtempSync('/var/tmp/usersd-systemd-');
    fs.chmodSync(work, 0o755);
  });

  after(async () => {
    // Leave nothing behind, whatever failed.
    try {
      if (machine) {
        await machine.poweroff();
        machine.removeCgroups();
      }
    } finally {
      if (work) {
        const mounted = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(work));
        for (const m of mounted.reverse()) run('umount', ['-l', m]);
        fs.rmSync(work, { recursive: true, force: true });
      }
      fs.rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
      if (!nspawnRunDirExisted) fs.rmSync('/run/systemd/nspawn', { recursive: true, force: true });
      process.stdout.write('# systemd test, time per step:\n');
      for (const { title, ms } of timings) process.stdout.write(`#   ${(ms / 1000).toFixed(1).padStart(6)} s  ${title}\n`);
      process.stdout.write(`#   ${(timings.reduce((a, b) => a + b.ms, 0) / 1000).toFixed(1).padStart(6)} s  in all\n`);
    }
  });

  step('a minimal root of the host\'s release is built from the host\'s apt sources', () => {
    const root = path.join(work, name);
    if (BASE_ROOT) {
      must(run('cp', ['-a', BASE_ROOT, root], { timeoutMs: 600000 }), 'cp -a USERSD_SYSTEMD_BASE_ROOT');
    } else {
      const codename = hostCodename();
      const sources = hostAptSources(codename);
      assert.ok(sources.text, `no apt source for ${codename} in ${sources.files.join(', ') || '/etc/apt'}`);
      const file = path.join(work, 'host.sources');
      fs.writeFileSync(file, sources.text);
      const include = ['systemd', 'systemd-sysv', 'dbus', ...debDepends(DEB)];
      must(run('mmdebstrap', ['--quiet', '--variant=minbase', '--mode=root', '--format=directory',
        `--include=${[...new Set(include)].join(',')}`, codename, root, file], { timeoutMs: 900000 }), 'mmdebstrap');
    }
    fs.copyFileSync(DEB, path.join(root, 'root', path.basename(DEB)));
    machine = new Machine(root, name);
  }, 900000);

  step('it boots with systemd as PID 1 (nspawn, cgroup v2)', async () => {
    await machine.boot();
    assert.equal(inside('cat /proc/1/comm').stdout.trim(), 'systemd');
    assert.match(inside('stat -fc %T /sys/fs/cgroup').stdout, /^cgroup2fs/);
    fake = await withFake({ t: scope });
  });

  step('dpkg -i installs it; both sockets and the service are active and enabled', async () => {
    const r = inside(`DEBIAN_FRONTEND=noninteractive dpkg -i /root/${path.basename(DEB)} 2>&1`, { allowFail: true });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /error|warning|fail/i, r.stdout);
    for (const unit of ['usersd.socket', 'usersd-admin.socket', 'usersd.service']) {
      await waitActive(unit);
      assert.equal(inside(`systemctl is-enabled ${unit}`).stdout.trim(), 'enabled', unit);
    }
    assert.equal(inside('usersd --version').stdout.trim(), `usersd ${version}`);
    // Kept aside so the steps below can start from the packaged file.
    inside(`cp -p ${CONFIG} ${CONFIG}.dpkg-dist`);
  });

  step('a fresh install is unconfigured: it says so in status, the journal and every answer', async () => {
    const s = status();
    assert.equal(s.upstream.state, 'unconfigured', JSON.stringify(s.upstream));
    const c = await connect(appSocket(), { t: scope });
    const e = failure(await c.request('user.me', undefined, { token: 'x.y.z' }), 'InternalServerError');
    await c.close();
    assert.match(`${e.message} ${e.detail ?? ''}`, /\/etc\/usersd\/usersd\.yaml/);
    assert.match(`${e.message} ${e.detail ?? ''}`, /auth\.client_id/);
    assert.match(journal('-u usersd.service -p warning'), /not configured.*auth\.client_id/);
  });

  step('unconfigured, it contacts nothing; log.format json keeps journal priorities', async () => {
    await fake.clearRequests();
    configure(`workos:\n  base_url: ${fake.baseUrl}\n  events_poll_seconds: 1\nlog:\n  format: json\n`);
    const old = mainPid();
    inside('systemctl restart usersd.service');
    await waitNewMain(old);
    const s = status();
    assert.equal(s.upstream.state, 'unconfigured');
    await sleep(3000);
    assert.deepEqual(await fake.requests(), [], 'an unconfigured usersd sent requests to WorkOS');
    // journald takes the priority from the <N> prefix, also before JSON.
    const pid = mainPid();
    const entries = journal(`-o json _PID=${pid}`).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const mine = entries.filter((en) => typeof en.MESSAGE === 'string' && en.MESSAGE.startsWith('{'));
    const warn = mine.find((en) => /not configured/.test(en.MESSAGE));
    assert.ok(warn, `no JSON "not configured" line:\n${mine.map((en) => en.MESSAGE).join('\n')}`);
    assert.equal(warn.PRIORITY, '4', JSON.stringify(warn));
    assert.equal(JSON.parse(warn.MESSAGE).level, 'warn');
    const ready = mine.find((en) => /usersd ready/.test(en.MESSAGE));
    assert.ok(ready, 'no JSON "usersd ready" line');
    assert.equal(ready.PRIORITY, '6');
    assert.equal(JSON.parse(ready.MESSAGE).level, 'info');
    assert.match(journal('-u usersd.service -p warning'), /"level":"warn".*not configured/);
  });

  step('configured with a client id and the key file, it serves user.me through the test server', async () => {
    configure(`auth:\n  client_id: ${fake.clientId}\nworkos:\n  base_url: ${fake.baseUrl}\n  events_poll_seconds: 1\n`);
    writeInside(KEY_FILE, `${fake.apiKey}\n`, '0600');
    const old = mainPid();
    inside('systemctl restart usersd.service');
    await waitNewMain(old);
    const c = await connect(appSocket(), { t: scope });
    user = await newUser(fake, c, { email: `systemd-${process.pid}@example.com` });
    await c.close();
    assert.equal(user.me.email, `systemd-${process.pid}@example.com`);
    await waitFor(() => status().upstream.state === 'online', { what: 'upstream online' });
  });

  step('the sandbox is in force: no capabilities, seccomp filter, no new privileges, user usersd', () => {
    const pid = mainPid();
    const st = inside(`cat /proc/${pid}/status`).stdout;
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      assert.match(st, new RegExp(`^${cap}:\\s+0000000000000000$`, 'm'), `${cap} of usersd:\n${st}`);
    }
    assert.match(st, /^NoNewPrivs:\s+1$/m);
    assert.match(st, /^Seccomp:\s+2$/m);
    const uid = inside('id -u usersd').stdout.trim();
    assert.match(st, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
    // ProtectSystem=strict: / is read-only for it, its state directory is not.
    const mounts = inside(`cat /proc/${pid}/mountinfo`).stdout.trim().split('\n').map((l) => l.split(' '));
    const at = (mp) => mounts.filter((f) => f[4] === mp).at(-1);  // the topmost mount there
    assert.ok(at('/'), 'no / in its mountinfo');
    assert.ok(at('/')[5].split(',').includes('ro'), `/ is mounted ${at('/')[5]} for usersd`);
    assert.ok(at('/var/lib/usersd')?.[5].split(',').includes('rw'), 'its state directory is writable');
  });

  step('socket activation: with the service stopped, a client starts it', async () => {
    inside('systemctl stop usersd.service');
    assert.equal(inside('systemctl is-active usersd.service', { allowFail: true }).stdout.trim(), 'inactive');
    assert.equal(inside('systemctl is-active usersd.socket').stdout.trim(), 'active');
    const c = await connect(appSocket(), { t: scope });
    const me = ok(await c.request('user.me', undefined, { token: user.token }));
    await c.close();
    assert.equal(me.id, user.me.id);
    await waitActive('usersd.service');
  });

  step('reload: SIGHUP applies log.level in the same process', async () => {
    const pid = mainPid();
    configure(`auth:\n  client_id: ${fake.clientId}\nworkos:\n  base_url: ${fake.baseUrl}\n  events_poll_seconds: 1\nlog:\n  level: debug\n`);
    inside('systemctl reload usersd.service');
    await waitFor(() => /configuration reloaded.*reloaded=log\.level/.test(journal(`_PID=${pid}`)), { what: 'the reload log line' });
    assert.equal(mainPid(), pid);
  });

  step('restart: a new process with the same store', async () => {
    const old = mainPid();
    inside('systemctl restart usersd.service');
    await waitNewMain(old);
    const u = JSON.parse(inside(`usersctl --json users get ${user.me.id}`).stdout);
    assert.equal(u.email, user.me.email);
  });

  step('kill -9: nothing acknowledged is lost, and clients meanwhile wait for the new process', async () => {
    const c = await connect(appSocket(), { t: scope });
    let last;
    for (let i = 0; i < 20; i++) last = ok(await c.request('user.update', { id: user.me.id, firstName: `Killed${i}` }, { token: user.token }));
    await c.close();
    const old = mainPid();
    inside(`kill -9 ${old}`);
    // Connected while no process runs: queued by the socket unit.
    const c2 = await connect(appSocket(), { t: scope });
    const me = ok(await c2.request('user.me', undefined, { token: user.token }));
    await c2.close();
    assert.equal(me.firstName, 'Killed19');
    await waitNewMain(old);
    assert.ok(status().lastTransactionId >= last.transactionId);
  });

  step('a crash loop recovers by itself: the sockets never fail', async () => {
    const restarts = Number(show('usersd.service', 'NRestarts'));
    let pid = mainPid();
    for (let i = 0; i < 8; i++) {
      inside(`kill -9 ${pid}`);
      pid = await waitNewMain(pid);
    }
    assert.ok(Number(show('usersd.service', 'NRestarts')) >= restarts + 8);
    for (const unit of ['usersd.service', 'usersd.socket', 'usersd-admin.socket']) {
      assert.equal(inside(`systemctl is-active ${unit}`, { allowFail: true }).stdout.trim(), 'active', unit);
      assert.equal(show(unit, 'Result'), 'success', `${unit} Result`);
    }
    const c = await connect(appSocket(), { t: scope });
    ok(await c.request('user.me', undefined, { token: user.token }));
    await c.close();
  });

  step('the watchdog: a stopped event loop is killed and restarted', async () => {
    inside('mkdir -p /run/systemd/system/usersd.service.d');
    writeInside('/run/systemd/system/usersd.service.d/watchdog-test.conf', '[Service]\nWatchdogSec=3\nLimitCORE=0\n');
    inside('systemctl daemon-reload && systemctl restart usersd.service');
    const old = await waitNewMain(0);
    inside(`kill -STOP ${old}`);
    await waitNewMain(old, 30000);
    assert.match(journal('-u usersd.service'), /[Ww]atchdog timeout/);
    inside('rm -f /run/systemd/system/usersd.service.d/watchdog-test.conf && systemctl daemon-reload && systemctl restart usersd.service');
    await waitActive('usersd.service');
  });

  step('a reboot brings the sockets and the service back with the store', async () => {
    await machine.reboot();
    for (const unit of ['usersd.socket', 'usersd-admin.socket', 'usersd.service']) await waitActive(unit);
    const u = JSON.parse(inside(`usersctl --json users get ${user.me.id}`).stdout);
    assert.equal(u.firstName, 'Killed19');
  });

  step('purge removes the units, the store, the configuration and the processes', async () => {
    inside(`rm -f ${CONFIG}.dpkg-dist`);
    const r = inside('DEBIAN_FRONTEND=noninteractive dpkg --purge usersd 2>&1', { allowFail: true });
    assert.equal(r.code, 0, r.stdout);
    // (no procps in a minimal root: the process names straight from /proc)
    assert.equal(inside('grep -lx usersd /proc/[0-9]*/comm', { allowFail: true }).stdout, '');
    assert.equal(inside('systemctl list-units --all --no-legend "usersd*"').stdout.trim(), '');
    for (const p of ['/var/lib/usersd', '/etc/usersd', '/run/usersd', '/lib/systemd/system/usersd.service', '/usr/sbin/usersd']) {
      assert.ok(!fs.existsSync(machine.hostPath(p)), `${p} is left`);
    }
  });

  step('poweroff leaves nothing behind on the host', async () => {
    const t0 = Date.now();
    const r = await machine.poweroff();
    const t1 = Date.now();
    assert.deepEqual(r, { code: 0, signal: null });
    machine.removeCgroups();
    for (const m of cgroupMounts()) assert.ok(!fs.existsSync(path.join(m, `${name}.test`)));
    fs.rmSync(work, { recursive: true, force: true });
    assert.ok(!fs.existsSync(work));
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(work), 'a mount of the container is left');
    work = null;
    process.stdout.write(`# poweroff ${((t1 - t0) / 1000).toFixed(1)} s, removing the root ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
  });
});
