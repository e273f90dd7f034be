// Builds the package when it is missing or stale: `npm ci` when node_modules
// is older than package-lock.json, `tsc` when dist/ is older than a source.
// Used by the Makefile's `test` target and by the tests that need dist/
// (which ctest may run two at a time: a lock directory serialises them).
//
//   node clients/typescript/scripts/build.mjs        # or: import { ensureBuilt }
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PKG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const mtime = (p) => {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return -1;
  }
};

function newestSource() {
  let newest = Math.max(mtime(path.join(PKG_DIR, 'tsconfig.json')), mtime(path.join(PKG_DIR, 'package-lock.json')));
  for (const f of fs.readdirSync(path.join(PKG_DIR, 'src'))) newest = Math.max(newest, mtime(path.join(PKG_DIR, 'src', f)));
  return newest;
}

const needsInstall = () => mtime(path.join(PKG_DIR, 'node_modules/.package-lock.json')) < mtime(path.join(PKG_DIR, 'package-lock.json'));
const needsCompile = () => mtime(path.join(PKG_DIR, 'dist/index.js')) < newestSource();

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `npm ci` and `tsc` as needed; returns what it did. Throws when a step fails. */
export function ensureBuilt({ log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  if (!needsInstall() && !needsCompile()) return [];
  const lock = path.join(PKG_DIR, '.build-lock');
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      // A lock older than the deadline is left over from a killed build.
      if (Date.now() - mtime(lock) > 300_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`${lock} is held for too long`);
      sleepSync(200);
    }
  }
  const done = [];
  try {
    if (needsInstall()) {
      log('@usersd/client: npm ci');
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: PKG_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
      done.push('npm ci');
    }
    if (needsCompile()) {
      log('@usersd/client: tsc');
      fs.rmSync(path.join(PKG_DIR, 'dist'), { recursive: true, force: true });
      execFileSync(process.execPath, [path.join(PKG_DIR, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], {
        cwd: PKG_DIR,
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      done.push('tsc');
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
  return done;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const done = ensureBuilt();
  console.log(done.length ? `@usersd/client: ${done.join(', ')} done` : '@usersd/client: up to date');
}
