// The socket protocol (SPEC section 2): framing, both serializations,
// protocol errors, ids, headers, pipelining, limits.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  withFake,
  startDaemon,
  connect,
  newUser,
  ok,
  failure,
  defect,
  rpcFailure,
  suiteScope,
  sleep,
  waitFor,
} from './harness.mjs';

const MAX_LINE = 4096;
const fake = await withFake();
const d = await startDaemon({ fake, configExtra: { socket: { max_line_bytes: MAX_LINE } } });
const c = await connect(d.socketPath);
const u = await newUser(fake, c, { claims: { org_id: 'org_p', role: 'member' } });
const auth = [['authorization', `Bearer ${u.token}`]];

function assertProtocolError(msg, code) {
  assert.equal(msg?.jsonrpc, '2.0', JSON.stringify(msg));
  assert.ok(Object.hasOwn(msg, 'id') && msg.id === null, `id must be null: ${JSON.stringify(msg)}`);
  assert.equal(msg.error?.code, code, JSON.stringify(msg));
  assert.equal(typeof msg.error.message, 'string');
  return msg.error;
}

describe('ping', () => {
  test('NDJSON Ping → Pong', async () => {
    c.sendRaw('{"_tag":"Ping"}');
    assert.deepEqual(await c.nextLine(), { _tag: 'Pong' });
  });
  test('JSON-RPC @effect/rpc/Ping → @effect/rpc/Pong', async () => {
    c.sendRaw('{"jsonrpc":"2.0","method":"@effect/rpc/Ping"}');
    assert.deepEqual(await c.nextLine(), { jsonrpc: '2.0', method: '@effect/rpc/Pong' });
  });
});

describe('protocol errors', () => {
  test('a line that is not JSON → -32700 with id null; the connection stays usable', async () => {
    for (const line of ['this is not json', '{"_tag":"Request",', '{"a":1}}', '\u00ff\u00fe garbage']) {
      c.sendRaw(line);
      assertProtocolError(await c.nextLine(), -32700);
    }
    // Invalid UTF-8 bytes.
    c.socket.write(Buffer.from([0xff, 0xfe, 0x7b, 0x7d, 0x0a]));
    const m = await c.nextLine();
    assert.ok([-32700, -32600].includes(m.error?.code), JSON.stringify(m));
    assert.equal(ok(await c.request('user.me', undefined, { token: u.token })).id, u.me.id);
  });

  test('JSON that is neither form → -32600 with id null', async () => {
    for (const line of ['{"hello":"world"}', '[1,2,3]', '42', '"Request"', 'null', '{}', '{"_tag":5}', '{"_tag":"Bogus"}', '{"jsonrpc":"2.0"}', '{"jsonrpc":"1.0","method":"user.me","id":1}']) {
      c.sendRaw(line);
      const msg = await c.nextLine();
      assert.equal(msg?.jsonrpc, '2.0', `${line}: ${JSON.stringify(msg)}`);
      assert.equal(msg.error?.code, -32600, `${line}: ${JSON.stringify(msg)}`);
      if (line !== '{"jsonrpc":"1.0","method":"user.me","id":1}') assert.equal(msg.id, null, line);
    }
    // A Request without an id cannot be answered per request.
    c.sendRaw(JSON.stringify({ _tag: 'Request', tag: 'user.me', headers: auth }));
    assertProtocolError(await c.nextLine(), -32600);
    c.sendRaw('{"_tag":"Ping"}');
    assert.deepEqual(await c.nextLine(), { _tag: 'Pong' });
  });

  test('blank lines and CRLF are tolerated', async () => {
    c.sendRaw('\n\n');
    c.socket.write(`${JSON.stringify({ _tag: 'Request', id: 'crlf', tag: 'user.me', headers: auth })}\r\n`);
    const m = await c.nextLine();
    assert.equal(m.requestId, 'crlf');
    assert.equal(ok(m).id, u.me.id);
  });

  test('unknown method: Die ValidationError (NDJSON), -32601 (JSON-RPC)', async () => {
    for (const opts of [{ token: u.token }, {}]) {
      const dft = defect(await c.request('user.nope', {}, { ...opts, id: 'unk' }));
      assert.match(dft.message, /user\.nope/);
      const resp = await c.jsonrpc('user.nope', {}, { ...opts, id: 99 });
      assert.equal(resp.id, 99);
      assert.equal(resp.error?.code, -32601, JSON.stringify(resp));
      assert.match(resp.error.message, /user\.nope/);
    }
    // Admin methods are not served on the application socket.
    defect(await c.request('admin.status', undefined, { token: u.token }));
    assert.equal((await c.jsonrpc('admin.status', undefined, { token: u.token })).error?.code, -32601);
  });

  test('a bad request (bad headers) is answered per request id, never as a connection-wide defect', async () => {
    c.sendRaw(JSON.stringify({ _tag: 'Request', id: 'badh', tag: 'user.me', headers: 'nope' }));
    const m = await c.nextLine();
    assert.equal(m._tag, 'Exit', JSON.stringify(m));
    assert.equal(m.requestId, 'badh');
    defect(m);
  });
});

describe('ids and headers', () => {
  test('NDJSON requestId echoes the request id', async () => {
    for (const id of ['1', 'abc', '18446744073709551615', '0']) {
      const exit = await c.request('user.me', undefined, { token: u.token, id });
      assert.equal(exit.requestId, id);
      assert.equal(typeof exit.requestId, 'string');
    }
  });

  test('JSON-RPC ids keep their JSON type, on success and on error', async () => {
    for (const id of ['7', 'req-x', 7, 0, 123456789]) {
      const resp = await c.jsonrpc('user.me', undefined, { token: u.token, id });
      assert.equal(resp.id, id);
      assert.equal(typeof resp.id, typeof id);
      assert.equal(resp.result.id, u.me.id);
      const err = await c.jsonrpc('user.me', undefined, { id });
      assert.equal(err.id, id);
      assert.equal(typeof err.id, typeof id);
      rpcFailure(err, 401, 'UnauthorizedError');
    }
  });

  test('JSON-RPC headers may be an object; header names are case-insensitive', async () => {
    const r1 = await c.jsonrpc('user.me', undefined, { headers: { Authorization: `Bearer ${u.token}` } });
    assert.equal(r1.result?.id, u.me.id, JSON.stringify(r1));
    const r2 = await c.jsonrpc('user.me', undefined, { headers: { AUTHORIZATION: `Bearer ${u.token}`, 'x-other': 'y' } });
    assert.equal(r2.result?.id, u.me.id);
    const r3 = await c.jsonrpc('user.me', undefined, { headers: [['AuThOrIzAtIoN', `Bearer ${u.token}`]] });
    assert.equal(r3.result?.id, u.me.id);
    const e1 = await c.request('user.me', undefined, { headers: [['Authorization', `Bearer ${u.token}`]] });
    assert.equal(ok(e1).id, u.me.id);
    const e2 = await c.request('user.me', undefined, { headers: [['x-trace', 'abc'], ['AUTHORIZATION', `Bearer ${u.token}`]] });
    assert.equal(ok(e2).id, u.me.id);
  });

  test('extra members (traceId, spanId, sampled) are accepted; payload may be absent', async () => {
    c.sendRaw(JSON.stringify({ _tag: 'Request', id: 'tr1', tag: 'user.me', traceId: 'abc', spanId: 'def', sampled: true, headers: auth }));
    const exit = await c.nextLine();
    assert.equal(exit.requestId, 'tr1');
    assert.equal(ok(exit).id, u.me.id);
    c.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 'tr2', method: 'user.me', traceId: 'abc', spanId: 'def', sampled: false, headers: auth }));
    const resp = await c.nextLine();
    assert.equal(resp.id, 'tr2');
    assert.equal(resp.result.id, u.me.id);
  });

  test('Ack, Interrupt and Eof-less control frames for unknown requests are accepted silently', async () => {
    c.sendRaw('{"_tag":"Ack","requestId":"12345"}');
    c.sendRaw('{"_tag":"Interrupt","requestId":"12346"}');
    c.sendRaw('{"jsonrpc":"2.0","method":"@effect/rpc/Ack","params":{"requestId":"5"}}');
    c.sendRaw('{"_tag":"Pong"}');
    c.sendRaw('{"_tag":"Ping"}');
    assert.deepEqual(await c.nextLine(), { _tag: 'Pong' }, 'nothing was answered before the Pong');
  });
});

describe('pipelining', () => {
  test('many pipelined requests on one connection are all answered with the right ids', async () => {
    const conn = await connect(d.socketPath);
    const N = 300;
    const lines = [];
    const expected = new Map();
    for (let i = 0; i < N; i++) {
      const kind = i % 3;
      if (kind === 0) {
        lines.push(JSON.stringify({ _tag: 'Request', id: `p${i}`, tag: 'user.update', payload: { id: u.me.id, firstName: `Pipe${i}` }, headers: auth }));
        expected.set(`p${i}`, (v) => assert.equal(v.data.firstName, `Pipe${i}`));
      } else if (kind === 1) {
        lines.push(JSON.stringify({ _tag: 'Request', id: `p${i}`, tag: 'user.me', headers: auth }));
        expected.set(`p${i}`, (v) => assert.equal(v.id, u.me.id));
      } else {
        lines.push(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'user.update', params: { id: u.me.id, lastName: `Rpc${i}` }, headers: auth }));
        expected.set(i, (v) => assert.equal(v.data.lastName, `Rpc${i}`));
      }
    }
    // Everything in one write; then collect N replies.
    conn.socket.write(`${lines.join('\n')}\n`);
    const seen = new Map();
    const order = [];
    while (seen.size < N) {
      const m = await conn.nextLine();
      assert.ok(m, 'connection closed early');
      const key = m._tag === 'Exit' ? m.requestId : m.id;
      assert.ok(expected.has(key), `unexpected reply ${JSON.stringify(m).slice(0, 200)}`);
      assert.ok(!seen.has(key), `duplicate reply for ${key}`);
      const value = m._tag === 'Exit' ? ok(m) : m.result;
      assert.ok(value, JSON.stringify(m));
      expected.get(key)(value);
      seen.set(key, value);
      order.push(key);
    }
    // Mutations commit in some order; their transactionIds are all distinct.
    const txids = [...seen.values()].filter((v) => v.transactionId !== undefined).map((v) => v.transactionId);
    assert.equal(new Set(txids).size, txids.length);
    await conn.close();
  });

  test('a request split across many writes is reassembled', async () => {
    const conn = await connect(d.socketPath);
    const line = `${JSON.stringify({ _tag: 'Request', id: 'split', tag: 'user.me', headers: auth })}\n`;
    for (let i = 0; i < line.length; i += 7) {
      conn.socket.write(line.slice(i, i + 7));
      if (i % 70 === 0) await sleep(2);
    }
    const m = await conn.nextLine();
    assert.equal(m.requestId, 'split');
    assert.equal(ok(m).id, u.me.id);
  });

  test('a client that stops reading is throttled, not dropped, and gets every reply', async () => {
    const conn = await connect(d.socketPath);
    conn.socket.pause();
    const N = 20000;
    conn.socket.write('{"_tag":"Ping"}\n'.repeat(N));
    await sleep(300);
    conn.socket.resume();
    let pongs = 0;
    while (pongs < N) {
      const m = await conn.nextLine();
      assert.deepEqual(m, { _tag: 'Pong' });
      pongs++;
    }
    assert.ok(!conn.isClosed());
  });

  test('Eof: requests in flight are answered, then the connection closes', async () => {
    const conn = await connect(d.socketPath);
    conn.sendRaw(
      [
        JSON.stringify({ _tag: 'Request', id: 'e1', tag: 'user.update', payload: { id: u.me.id, timezone: 'UTC' }, headers: auth }),
        JSON.stringify({ _tag: 'Request', id: 'e2', tag: 'user.me', headers: auth }),
        '{"_tag":"Eof"}',
      ].join('\n'),
    );
    const got = new Set();
    for (let i = 0; i < 2; i++) {
      const m = await conn.nextLine();
      ok(m);
      got.add(m.requestId);
    }
    assert.deepEqual([...got].sort(), ['e1', 'e2']);
    await conn.closed;
  });

  test('half-close: replies to requests sent before end() still arrive', async () => {
    const sock = net.createConnection(d.socketPath);
    await new Promise((r) => sock.once('connect', r));
    let data = '';
    sock.setEncoding('utf8');
    sock.on('data', (x) => (data += x));
    sock.end(`${JSON.stringify({ _tag: 'Request', id: 'h1', tag: 'user.finalizeOnboarding', headers: auth })}\n`);
    await new Promise((r) => sock.once('close', r));
    const m = JSON.parse(data.trim());
    assert.equal(m.requestId, 'h1');
    assert.equal(ok(m).data.isOnboarded, true);
  });
});

describe('over-long lines', () => {
  test('a line over socket.max_line_bytes gets a final -32600 naming the limit and the connection closes; others keep working', async () => {
    const other = await connect(d.socketPath);
    const victim = await connect(d.socketPath);
    // Just under the limit is fine.
    const pad = 'x'.repeat(MAX_LINE - 300);
    const fits = JSON.stringify({ _tag: 'Request', id: 'fits', tag: 'user.me', payload: { pad }, headers: [] });
    assert.ok(Buffer.byteLength(fits) < MAX_LINE);
    failure(await victim.request('user.me', { pad }, { id: 'fits' }), 'UnauthorizedError');

    victim.sendRaw(JSON.stringify({ _tag: 'Request', id: 'big', tag: 'user.me', payload: { pad: 'y'.repeat(MAX_LINE + 10) }, headers: auth }));
    const err = assertProtocolError(await victim.nextLine(), -32600);
    assert.match(err.message, new RegExp(String(MAX_LINE)));
    await victim.closed;
    assert.equal(await victim.nextLine(), null, 'nothing after the error frame');

    c.sendRaw('{"_tag":"Ping"}');
    assert.deepEqual(await c.nextLine(), { _tag: 'Pong' });
    assert.equal(ok(await other.request('user.me', undefined, { token: u.token })).id, u.me.id);
  });

  test('a partial line already over the limit (no newline yet) is refused the same way', async () => {
    const victim = await connect(d.socketPath);
    victim.socket.write(`{"_tag":"Request","id":"big2","tag":"user.me","payload":"${'z'.repeat(MAX_LINE * 3)}`);
    const err = assertProtocolError(await victim.nextLine(), -32600);
    assert.match(err.message, new RegExp(String(MAX_LINE)));
    await victim.closed;
  });
});

describe('the admin socket\'s line limit', () => {
  test('is its own: an import line far over socket.max_line_bytes is served there (usersctl sizes its batches from it)', async () => {
    const admin = await connect(d.adminPath);
    const users = [];
    for (let i = 0; i < 40; i++) {
      users.push({ workosId: `user_longline_${i}`, email: `longline${i}@example.com`, firstName: 'L'.repeat(90), lastName: 'M'.repeat(90) });
    }
    const line = JSON.stringify({ _tag: 'Request', id: 'imp', tag: 'admin.users.import', payload: { users }, headers: [] });
    assert.ok(Buffer.byteLength(line) > 2 * MAX_LINE, `the line is ${Buffer.byteLength(line)} bytes`);
    const r = ok(await admin.request('admin.users.import', { users }));
    assert.equal(r.count, 40);
    assert.equal(ok(await admin.request('admin.users.get', { workosId: 'user_longline_39' })).firstName, 'L'.repeat(90));
    await admin.close();
  });
});

describe('connection limit', () => {
  const scope = suiteScope();
  let ld;
  before(async () => {
    ld = await startDaemon({ fake, t: scope, configExtra: { socket: { max_connections: 5 } } });
  });

  test('the connection over socket.max_connections gets an error and is closed; a freed slot is reusable', async () => {
    // The harness's readiness probe has closed its connection; wait until the daemon noticed.
    const conns = [];
    for (let i = 0; i < 5; i++) {
      const conn = await waitFor(
        async () => {
          const k = await connect(ld.socketPath, { t: scope });
          k.sendRaw('{"_tag":"Ping"}');
          const m = await k.nextLine(2000).catch(() => null);
          if (m?._tag === 'Pong') return k;
          await k.close();
          return null;
        },
        { timeoutMs: 5000, what: `connection ${i + 1} accepted` },
      );
      conns.push(conn);
    }
    const sixth = await connect(ld.socketPath, { t: scope });
    const err = assertProtocolError(await sixth.nextLine(), -32600);
    assert.match(err.message, /connection/i);
    await sixth.closed;

    // The five still work.
    for (const k of conns) {
      k.sendRaw('{"_tag":"Ping"}');
      assert.deepEqual(await k.nextLine(), { _tag: 'Pong' });
    }
    // Free one slot: a new connection is accepted once the daemon saw the close.
    await conns.pop().close();
    const again = await waitFor(
      async () => {
        const k = await connect(ld.socketPath, { t: scope });
        k.sendRaw('{"_tag":"Ping"}');
        const m = await k.nextLine(2000).catch(() => null);
        if (m?._tag === 'Pong') return k;
        await k.close();
        return null;
      },
      { timeoutMs: 5000, what: 'a freed slot' },
    );
    assert.ok(again);
  });
});
