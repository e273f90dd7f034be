// usersctl's progress lines (issue 14 part 5): users import, users export
// and backup redraw a line on stderr with "\r" when stderr is a terminal,
// and print nothing extra when it is not, or with --json.
//
// The terminal is a pseudo-terminal from script(1) (util-linux, in Debian's
// essential bsdutils): `script -qec CMD /dev/null` runs CMD with stdin,
// stdout and stderr on a pty and copies what it writes to our stdout.
//
// Environment: USERSD_BIN (the daemon), USERSD_BUILD_DIR (usersctl is at
// $USERSD_BUILD_DIR/usersctl/usersctl).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withFake, startDaemon, suiteScope, makeTempDir, runProgram } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BUILD_DIR = process.env.USERSD_BUILD_DIR ?? path.resolve(here, '../../build');
const USERSCTL = path.join(BUILD_DIR, 'usersctl/usersctl');
const haveScript = spawnSync('script', ['--version']).status === 0;

const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

const run = (cmd, args, opts = {}) => runProgram(cmd, args, { timeoutMs: 60000, ...opts });

/** usersctl ARGS with pipes: {code, stdout, stderr}. */
const ctl = (args, opts) => run(USERSCTL, args, opts);

/** usersctl ARGS on a pseudo-terminal: {code, out} where out is everything it wrote (stdout and stderr). */
async function ctlTty(args, opts) {
  const r = await run('script', ['-qec', [USERSCTL, ...args].map(quote).join(' '), '/dev/null'], opts);
  return { code: r.code, out: r.stdout };
}

/** The progress drawings in a terminal transcript: the texts that follow a "\r" not part of "\r\n". */
function drawings(out) {
  return out.split(/\r(?!\n)/).slice(1).map((s) => s.split('\r\n')[0].trimEnd());
}

describe('usersctl progress', () => {
  const scope = suiteScope();
  let fake, d, dir, file;
  const N = 2500; // three import batches

  before(async () => {
    fake = await withFake({ t: scope });
    d = await startDaemon({ fake, t: scope, configExtra: { workos: { events_poll_seconds: 0 } } });
    dir = await makeTempDir('usd-ctl-progress-');
    scope.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    file = path.join(dir, 'users.jsonl');
    const lines = [];
    for (let i = 0; i < N; i++) lines.push(JSON.stringify({ workosId: `user_progress_${i}`, email: `progress${i}@example.com`, firstName: 'Pro', lastName: `Gress${i}` }));
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
  });

  test('without a terminal, import, export and backup write nothing to stderr', async () => {
    const imp = await ctl(['--socket', d.adminPath, 'users', 'import', file]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal(imp.stderr, '');
    assert.match(imp.stdout, new RegExp(`^imported ${N} user\\(s\\) \\(last transactionId \\d+\\)\\n$`));
    const exp = await ctl(['--socket', d.adminPath, 'users', 'export', path.join(dir, 'piped.jsonl')]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.equal(exp.stderr, '');
    const bk = await ctl(['--socket', d.adminPath, 'backup', path.join(dir, 'bk-piped')]);
    assert.equal(bk.code, 0, bk.stderr);
    assert.equal(bk.stderr, '');
  });

  test('on a terminal: users import shows the reading, then count of total, rate and done', { skip: !haveScript && 'needs script(1)' }, async () => {
    const r = await ctlTty(['--socket', d.adminPath, 'users', 'import', file]);
    assert.equal(r.code, 0, r.out);
    const draws = drawings(r.out);
    const reading = draws.filter((s) => s.startsWith(`reading ${file}: `));
    assert.ok(reading.length >= 2, `no reading progress:\n${JSON.stringify(r.out)}`);
    const size = fs.statSync(file).size;
    assert.match(reading.at(-1), /^reading .*: [\d.]+ (KiB|MiB) of [\d.]+ (KiB|MiB) \(100%\).*, done in [\d.]+s$/);
    assert.ok(size > 1024);
    const imp = draws.filter((s) => s.startsWith('import: '));
    assert.match(imp[0], new RegExp(`^import: 0 of ${N} users \\(0%\\), \\d+s elapsed$`));
    assert.match(imp.at(-1), new RegExp(`^import: ${N} of ${N} users \\(100%\\)(, [\\d.]+/s)?, done in [\\d.]+s$`));
    // The summary follows on a line of its own.
    // (the last draw is padded with spaces over a longer one before it)
    assert.match(r.out, new RegExp(`done in [\\d.]+s *\\r\\nimported ${N} user\\(s\\) \\(last transactionId \\d+\\)\\r\\n$`));
  });

  test('on a terminal: users export to a file shows count of the total; to the terminal itself it does not', { skip: !haveScript && 'needs script(1)' }, async () => {
    const total = JSON.parse((await ctl(['--socket', d.adminPath, '--json', 'status'])).stdout).users;
    const out = path.join(dir, 'tty.jsonl');
    const r = await ctlTty(['--socket', d.adminPath, 'users', 'export', out]);
    assert.equal(r.code, 0, r.out);
    const exp = drawings(r.out).filter((s) => s.startsWith('export: '));
    assert.match(exp[0], new RegExp(`^export: 0 of ${total} users \\(0%\\), \\d+s elapsed$`));
    assert.match(exp.at(-1), new RegExp(`^export: ${total} of ${total} users \\(100%\\)(, [\\d.]+/s)?, done in [\\d.]+s$`));
    assert.match(r.out, new RegExp(`\\r\\nexported ${total} user\\(s\\) to ${out.replace(/[.]/g, '\\.')}\\r\\n$`));
    assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n').length, total);
    // Users written to the terminal: no progress between them.
    const toTty = await ctlTty(['--socket', d.adminPath, 'users', 'export']);
    assert.equal(toTty.code, 0);
    assert.deepEqual(drawings(toTty.out), []);
    assert.equal(toTty.out.trim().split('\r\n').length, total);
  });

  test('on a terminal: backup shows the bytes and the time when done', { skip: !haveScript && 'needs script(1)' }, async () => {
    const target = path.join(dir, 'bk-tty');
    const r = await ctlTty(['--socket', d.adminPath, 'backup', target]);
    assert.equal(r.code, 0, r.out);
    const bk = drawings(r.out).filter((s) => s.startsWith('backup: '));
    assert.ok(bk.length >= 2, JSON.stringify(r.out));
    assert.match(bk[0], /^backup: 0 B, \d+s elapsed$/);
    const bytes = fs.statSync(path.join(target, 'data.mdb')).size;
    const shown = bytes >= 1024 ? `${(bytes / 1024 ** Math.floor(Math.log(bytes) / Math.log(1024))).toFixed(1)} ` : `${bytes} B`;
    assert.ok(bk.at(-1).startsWith(`backup: ${shown}`), `${bk.at(-1)} does not show ${bytes} bytes`);
    assert.match(bk.at(-1), /, done in [\d.]+s$/);
    assert.match(r.out, /\r\nbackup written to .* \(.+, transactionId \d+\)\r\n$/);
  });

  test('on a terminal with --json: no progress, only the JSON', { skip: !haveScript && 'needs script(1)' }, async () => {
    const imp = await ctlTty(['--socket', d.adminPath, '--json', 'users', 'import', file]);
    assert.equal(imp.code, 0, imp.out);
    assert.deepEqual(drawings(imp.out), []);
    assert.equal(JSON.parse(imp.out).count, N);
    const exp = await ctlTty(['--socket', d.adminPath, '--json', 'users', 'export', path.join(dir, 'json.jsonl')]);
    assert.deepEqual(drawings(exp.out), []);
    assert.ok(JSON.parse(exp.out).count >= N);
    const bk = await ctlTty(['--socket', d.adminPath, '--json', 'backup', path.join(dir, 'bk-json')]);
    assert.deepEqual(drawings(bk.out), []);
    assert.ok(JSON.parse(bk.out).bytes > 0);
  });

  test('on a terminal, a failing import ends the progress line before the error', { skip: !haveScript && 'needs script(1)' }, async () => {
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, `${JSON.stringify({ workosId: 'user_progress_bad', email: 'not an email' })}\n`);
    const r = await ctlTty(['--socket', d.adminPath, 'users', 'import', bad]);
    assert.equal(r.code, 1);
    assert.match(r.out, /\r\nusersctl: import failed: .*bad\.jsonl:1: email:/);
  });
});
