import { createServer } from 'node:net';
import { loadConfig, type Transport } from '@hotweights/core';
import { afterEach, describe, expect, it } from 'vitest';
import { provider } from '../src/index.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Two ranks of one job in this process, over real sockets on 127.0.0.1. */
async function pair(): Promise<[Transport, Transport]> {
  const rendezvous = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(await freePort()) };
  const config = loadConfig({ HOTWEIGHTS_TRANSFER_TIMEOUT_S: '20' });
  const [a, b] = await Promise.all(
    [0, 1].map((rank) => provider.create({ rank, worldSize: 2, config, rendezvous })),
  );
  return [a!, b!];
}

describe('tcp transport failure handling', () => {
  let open: Transport[] = [];
  afterEach(async () => {
    await Promise.all(open.map((t) => t.close()));
    open = [];
  });

  it('reuses a bucket id in a later broadcast without mixing the two', async () => {
    open = await pair();
    const [a, b] = open as [Transport, Transport];
    for (const fill of [1, 2]) {
      const sent = new Uint8Array(100_000).fill(fill);
      const got = new Uint8Array(100_000);
      await Promise.all([
        a.broadcast({ bucketId: 7, root: 0, ranks: [0, 1], data: sent }),
        b.broadcast({ bucketId: 7, root: 0, ranks: [0, 1], data: got }),
      ]);
      expect(got.every((x) => x === fill)).toBe(true);
    }
  });

  it('a consumer that aborts makes the root reject, and the next bucket still moves', async () => {
    open = await pair();
    const [a, b] = open as [Transport, Transport];
    const ctrl = new AbortController();
    const receive = b.broadcast({
      bucketId: 1,
      root: 0,
      ranks: [0, 1],
      data: new Uint8Array(10),
      signal: ctrl.signal,
    });
    ctrl.abort(new Error('operator cancelled'));
    await expect(receive).rejects.toMatchObject({ code: 'HW_ABORTED' });
    await expect(
      a.broadcast({ bucketId: 1, root: 0, ranks: [0, 1], data: new Uint8Array(10) }),
    ).rejects.toThrow(/rank 1 aborted it: operator cancelled/);
    const got = new Uint8Array(3);
    await Promise.all([
      a.broadcast({ bucketId: 2, root: 0, ranks: [0, 1], data: Uint8Array.of(4, 5, 6) }),
      b.broadcast({ bucketId: 2, root: 0, ranks: [0, 1], data: got }),
    ]);
    expect([...got]).toEqual([4, 5, 6]);
  });

  it('a consumer whose buffer has the wrong size fails both sides with the sizes', async () => {
    open = await pair();
    const [a, b] = open as [Transport, Transport];
    const results = await Promise.allSettled([
      a.broadcast({ bucketId: 3, root: 0, ranks: [0, 1], data: new Uint8Array(8) }),
      b.broadcast({ bucketId: 3, root: 0, ranks: [0, 1], data: new Uint8Array(5) }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/expected 5 B, root sent 8 B/);
  });

  it('the root rejects instead of hanging when a consumer leaves', async () => {
    open = await pair();
    const [a, b] = open as [Transport, Transport];
    const send = expect(
      a.broadcast({ bucketId: 9, root: 0, ranks: [0, 1], data: new Uint8Array(1000) }),
    ).rejects.toThrow(/rank 1 left the job/);
    await b.close(); // rank 1 never takes part in bucket 9
    await send;
    await expect(
      a.broadcast({ bucketId: 10, root: 0, ranks: [0, 1], data: new Uint8Array(1) }),
    ).rejects.toThrow(/rank 1 has left the job/);
  });

  it('close() rejects what is pending and is safe to call twice', async () => {
    open = await pair();
    const [a, b] = open as [Transport, Transport];
    const receive = expect(
      b.broadcast({ bucketId: 11, root: 0, ranks: [0, 1], data: new Uint8Array(4) }),
    ).rejects.toThrow(/closed/);
    await Promise.all([b.close(), b.close()]);
    await receive;
    await a.close();
  });
});
