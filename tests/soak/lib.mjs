// Shared helpers for the reliability suites: used by the short versions in
// tests/integration/{crash,faults}.test.mjs (run by `make test`) and by the
// long runs in tests/soak/*.mjs (run by hand, see docs/RELIABILITY.md).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { connect, ok } from '../integration/harness.mjs';

/** A cleanup scope usable outside node:test (soak scripts): pass as `t`. */
export function manualScope() {
  const fns = [];
  return {
    after: (fn) => fns.push(fn),
    async run() {
      let first;
      while (fns.length) {
        try {
          await fns.pop()();
        } catch (e) {
          first ??= e;
        }
      }
      if (first) throw first;
    },
  };
}

const NOCLEAN = { after: () => {} };

/** One admin request on a fresh connection. */
export async function admin(d, tag, payload) {
  const c = await connect(d.adminPath, { t: NOCLEAN });
  try {
    return await c.request(tag, payload);
  } finally {
    await c.close();
  }
}

export async function adminOk(d, tag, payload) {
  return ok(await admin(d, tag, payload));
}

/**
 * Every change-feed entry with transactionId > since, up to the store's
 * lastTransactionId at the time of the call (Ack after each chunk).
 */
export async function readChanges(d, since = 0) {
  const last = (await adminOk(d, 'admin.status')).lastTransactionId;
  const out = [];
  if (last <= since) return out;
  const c = await connect(d.adminPath, { t: NOCLEAN, timeoutMs: 30000 });
  try {
    c.sendRaw(JSON.stringify({ _tag: 'Request', id: 'feed', tag: 'admin.changes', payload: { sinceTransactionId: since }, headers: [] }));
    while (!out.length || out.at(-1).transactionId < last) {
      const m = await c.nextLine(30000);
      assert.ok(m, 'the change feed closed early');
      assert.equal(m._tag, 'Chunk', JSON.stringify(m).slice(0, 500));
      out.push(...m.values);
      c.sendRaw(JSON.stringify({ _tag: 'Ack', requestId: 'feed' }));
    }
    c.sendRaw(JSON.stringify({ _tag: 'Interrupt', requestId: 'feed' }));
  } finally {
    await c.close();
  }
  return out;
}

/** Resident set size of a process in KiB (VmRSS), or null. */
export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** utime+stime of a process, in clock ticks (100/s on Linux). */
export function cpuTicks(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

export function openFds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
export const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] : NaN;
};

/** A seeded PRNG (mulberry32) so a failing round can be replayed with SEED=. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (n) => Math.floor(next() * n);
  next.pick = (xs) => xs[Math.floor(next() * xs.length)];
  return next;
}

export function log(...args) {
  if (process.env.SOAK_QUIET !== '1') console.log(...args);
}
