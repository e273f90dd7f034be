#!/usr/bin/env node
// Prepares credentials for usersd-loadgen: "USER_ID TOKEN" lines.
//
//   node bench/setup.mjs --fake URL --socket PATH --users K --out FILE
//       creates K users in the WorkOS fake, mints a token for each and
//       provisions them in usersd with one user.me each (to learn their ids).
//       With --org ORG --role ROLE the tokens carry org_id and role claims.
//   node bench/setup.mjs --fake URL --seeded FILE --out FILE
//       mints tokens for "UUID WORKOS_ID" lines written by usersd-seed.
import fs from 'node:fs';
import net from 'node:net';
import { connectFake } from '../tests/workos-fake/client.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const fake = connectFake(args.fake, {});
const lines = [];

async function me(socketPath, token) {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(socketPath);
    let buf = '';
    c.on('connect', () =>
      c.write(JSON.stringify({ _tag: 'Request', id: '1', tag: 'user.me', payload: {}, headers: [['authorization', `Bearer ${token}`]] }) + '\n'),
    );
    c.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      c.end();
      const r = JSON.parse(buf.slice(0, nl));
      if (r.exit?._tag !== 'Success') reject(new Error(JSON.stringify(r)));
      else resolve(r.exit.value);
    });
    c.on('error', reject);
  });
}

if (args.seeded) {
  for (const line of fs.readFileSync(args.seeded, 'utf8').split('\n').filter(Boolean)) {
    const [uuid, workosId] = line.split(' ');
    const token = await fake.mintToken({ sub: workosId, expiresIn: 6 * 3600 });
    lines.push(`${uuid} ${token}`);
  }
} else {
  const k = Number(args.users || 100);
  for (let i = 0; i < k; i++) {
    const u = await fake.createUser({ email: `loadgen${i}.${Date.now()}@example.com`, first_name: 'Load', last_name: `Gen ${i}` });
    const claims = { sub: u.id, expiresIn: 6 * 3600 };
    if (args.org) claims.org_id = args.org;
    if (args.role) claims.role = args.role;
    const token = await fake.mintToken(claims);
    const cur = await me(args.socket, token);
    lines.push(`${cur.id} ${token}`);
  }
}
fs.writeFileSync(args.out, lines.join('\n') + '\n');
console.error(`wrote ${lines.length} credentials to ${args.out}`);
