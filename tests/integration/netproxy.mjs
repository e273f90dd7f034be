// A small TCP forwarder for tests: one per daemon in front of the WorkOS test
// server, so one host can be cut off from WorkOS while the others are not.
//
//   const p = await startProxy({ port: fake.port });   // p.url = http://127.0.0.1:<port>
//   p.partition();   // open connections destroyed; new ones closed at once
//   p.heal();        // forwarding again
//   await p.close();
//
// A partitioned proxy accepts and immediately destroys (RST when possible)
// new connections, which curl reports as a network error, as with a host
// whose route to WorkOS is gone. Stats count connections forwarded and
// refused, and partitions.
import net from 'node:net';

export async function startProxy({ port, host = '127.0.0.1' }) {
  const open = new Set(); // client sockets with their upstream paired
  let partitioned = false;
  const stats = { forwarded: 0, refused: 0, partitions: 0, cut: 0 };

  const kill = (s) => {
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
  };

  const server = net.createServer((client) => {
    if (partitioned) {
      stats.refused++;
      client.on('error', () => {});
      kill(client);
      return;
    }
    stats.forwarded++;
    const upstream = net.createConnection({ host, port });
    const pair = { client, upstream };
    open.add(pair);
    const done = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done);
    upstream.on('error', done);
    client.on('close', done);
    upstream.on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const proxyPort = server.address().port;

  return {
    port: proxyPort,
    url: `http://127.0.0.1:${proxyPort}`,
    stats,
    isPartitioned: () => partitioned,
    /** Cuts every open connection and refuses new ones until heal(). */
    partition() {
      if (partitioned) return;
      partitioned = true;
      stats.partitions++;
      for (const pair of [...open]) {
        stats.cut++;
        open.delete(pair);
        kill(pair.client);
        pair.upstream.destroy();
      }
    },
    heal() {
      partitioned = false;
    },
    close() {
      for (const pair of [...open]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      open.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
