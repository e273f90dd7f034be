#!/usr/bin/env node
// gen_users_jsonl: writes N users in the `usersctl users export` format (one
// JSON object per line), for timing `usersctl users import`
// (docs/OPERATIONS.md, "Import and export at scale").
//
//   node bench/gen_users_jsonl.mjs [--users 1000000] [--seed 1] [--out FILE]
//
// Every user has every field an export carries (id, workosId, email, names,
// organization, role, timezone, settings, timestamps); ids, emails and
// workosIds are unique, derived from the index and the seed so that two runs
// with the same arguments write the same file. Without --out, stdout.
import fs from 'node:fs';

const args = process.argv.slice(2);
const opt = { users: 1000000, seed: 1, out: '' };
for (let i = 0; i < args.length; i++) {
  const k = args[i].replace(/^--/, '');
  if (!(k in opt) || i + 1 >= args.length) {
    console.error(`usage: gen_users_jsonl.mjs [--users N] [--seed S] [--out FILE] (bad ${args[i]})`);
    process.exit(2);
  }
  opt[k] = k === 'out' ? args[++i] : Number(args[++i]);
}

const hex = (n, width) => n.toString(16).padStart(width, '0').slice(-width);
// A version-4-shaped UUID from (seed, i): unique per i.
const uuid = (i) =>
  `${hex(opt.seed, 8)}-${hex(i >>> 16, 4)}-4${hex(i & 0xfff, 3)}-8${hex((i >>> 12) & 0xfff, 3)}-${hex(i, 12)}`;
const zones = ['Europe/London', 'America/New_York', 'Asia/Tokyo', 'Europe/Berlin', null];
const roles = ['member', 'member', 'member', 'admin', 'owner'];
const t0 = Date.UTC(2025, 0, 1);

const fd = opt.out ? fs.openSync(opt.out, 'w') : 1;
let buf = '';
for (let i = 0; i < opt.users; i++) {
  const created = new Date(t0 + i * 1000).toISOString();
  buf += `${JSON.stringify({
    id: uuid(i),
    workosId: `user_${hex(opt.seed, 4)}${hex(i, 22).toUpperCase()}`,
    email: `user${i}.s${opt.seed}@example.com`,
    firstName: `First${i % 1000}`,
    lastName: `Last${i}`,
    organizationId: `org_${hex(i % 500, 8)}`,
    role: roles[i % roles.length],
    userType: 'user',
    isOnboarded: i % 3 !== 0,
    avatarUrl: i % 4 === 0 ? `https://img.example.com/u/${i}.png` : null,
    timezone: zones[i % zones.length],
    settings: i % 2 === 0 ? { theme: { mode: 'dark' }, doNotDisturb: false, quietHoursStart: '22:00', quietHoursEnd: '07:00' } : {},
    createdAt: created,
    updatedAt: created,
    deletedAt: null,
  })}\n`;
  if (buf.length > 1 << 20) {
    fs.writeSync(fd, buf);
    buf = '';
  }
}
fs.writeSync(fd, buf);
if (opt.out) fs.closeSync(fd);
