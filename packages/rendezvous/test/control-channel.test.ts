/**
 * The control channel over real loopback sockets: three ranks meet at MASTER_ADDR:MASTER_PORT
 * (rank 0 listens) or through an address exchange standing in for the coordinator's, every rank
 * gets the same address table, an abort from one rank reaches the others, and a rank whose socket
 * drops without a goodbye is reported lost.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AddressExchange } from '@hotweights/core';
import { ControlChannel, type ControlMessage, type JoinOptions } from '@hotweights/rendezvous';
import { afterEach, describe, expect, it } from 'vitest';

const open: ControlChannel[] = [];
// Child ranks run the TypeScript sources (tsx, the `@hotweights/source` export condition).
const SOURCE_NODE_ARGS = [
  '--conditions=@hotweights/source',
  '--import',
  pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href,
];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close(0).catch(() => {})));
});

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

const address = (rank: number) => new TextEncoder().encode(`worker-address-of-rank-${rank}`);

function options(rank: number, worldSize: number, extra: Partial<JoinOptions> = {}): JoinOptions {
  return {
    label: 'test',
    retryHint: 'HOTWEIGHTS_UCX_RETRIES',
    rank,
    worldSize,
    address: address(rank),
    retries: 200,
    retryDelayMs: 25,
    timeoutMs: 20_000,
    ...extra,
  };
}

/** An in-memory stand-in for the coordinator's rendezvous RPC: answers once all ranks posted. */
function exchangeFor(worldSize: number): (rank: number) => AddressExchange {
  const rounds = new Map<string, { values: string[]; waiters: Array<() => void> }>();
  return (rank) => async (round, value) => {
    let r = rounds.get(round);
    if (!r) {
      r = { values: new Array(worldSize), waiters: [] };
      rounds.set(round, r);
    }
    r.values[rank] = value;
    const entry = r;
    if (entry.values.filter((v) => v !== undefined).length === worldSize) for (const w of entry.waiters) w();
    else await new Promise<void>((resolve) => entry.waiters.push(resolve));
    return entry.values;
  };
}

describe('ControlChannel', () => {
  it('gives every rank the same address table, at MASTER_ADDR:MASTER_PORT', async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const channels = await Promise.all([0, 1, 2].map((r) => ControlChannel.join(at, options(r, 3))));
    open.push(...channels);
    for (const c of channels)
      expect(c.addresses.map((a) => new TextDecoder().decode(a))).toEqual(
        [0, 1, 2].map((r) => `worker-address-of-rank-${r}`),
      );
  });

  it('meets through an address exchange instead (rank 0 on a free port)', async () => {
    const exchange = exchangeFor(3);
    const at = { host: '127.0.0.1', port: 0 };
    const channels = await Promise.all(
      [0, 1, 2].map((r) => ControlChannel.join(at, options(r, 3, { exchange: exchange(r) }))),
    );
    open.push(...channels);
    for (const c of channels) expect(c.addresses).toHaveLength(3);
    expect(new TextDecoder().decode(channels[2]?.addresses[1])).toBe('worker-address-of-rank-1');
  });

  it('relays an abort to every other rank', async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const channels = await Promise.all([0, 1, 2].map((r) => ControlChannel.join(at, options(r, 3))));
    open.push(...channels);
    const seen: Array<{ rank: number; m: ControlMessage }> = [];
    for (const [rank, c] of channels.entries())
      c.listen({ onMessage: (m) => seen.push({ rank, m }), onLost: () => {} });
    channels[2]?.abort('bucket-7', 'rank 2 could not land bucket 7');
    await until(() => seen.length >= 2);
    expect(seen.map((s) => s.rank).sort()).toEqual([0, 1]);
    for (const s of seen) expect(s.m).toMatchObject({ t: 'abort', key: 'bucket-7', from: 2 });
  });

  // Rank 1 is refused at least once (its first dial is immediate, and rank 0 only listens after a
  // pause): with a full retryDelayMs (10 minutes) before its second attempt the test would run
  // out of time; the first pauses are short, so it is in as soon as rank 0 listens.
  it('lets a rank that dialled before rank 0 listened in soon after, not a full retryDelayMs later', async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const slow = { retries: 60, retryDelayMs: 600_000 };
    const rank1 = ControlChannel.join(at, options(1, 2, slow));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const channels = await Promise.all([ControlChannel.join(at, options(0, 2, slow)), rank1]);
    open.push(...channels);
    expect(new TextDecoder().decode(channels[1].addresses[0])).toBe('worker-address-of-rank-0');
  });

  it("keeps rank 0's close waiting while another rank is still there, and ends it when that rank leaves", async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const [hub, rank1] = await Promise.all([0, 1].map((r) => ControlChannel.join(at, options(r, 2))));
    await Promise.all([hub?.started(5000), rank1?.started(5000)]);
    let closed = false;
    // A linger of 10 minutes: only rank 1's leaving can end this close within the test.
    const closing = hub?.close(600_000).then(() => {
      closed = true;
    });
    // Rank 1 still relays through rank 0 meanwhile (a pause, not a timing check).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    await rank1?.close(0);
    await closing;
    expect(closed).toBe(true);
  });

  // The hang-up is taken in before the barrier is reached (a pause, not a timing check: a rank
  // reaching the barrier first is refused the same way, through the barrier itself).
  const takeIn = () => new Promise((resolve) => setTimeout(resolve, 300));

  it('refuses the start to a rank whose rank 0 hung up while it was still connecting', async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const [hub, rank1] = await Promise.all([0, 1].map((r) => ControlChannel.join(at, options(r, 2))));
    open.push(rank1 as ControlChannel);
    await hub?.close(0);
    await takeIn();
    await expect(rank1?.started(5000)).rejects.toThrow('test: rank 0 left before the job started');
  });

  it('refuses the start at rank 0, and then at every rank, when a rank left before the barrier', async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const [hub, rank1, rank2] = await Promise.all(
      [0, 1, 2].map((r) => ControlChannel.join(at, options(r, 3))),
    );
    open.push(rank2 as ControlChannel);
    await rank1?.close(0);
    await takeIn();
    const others = rank2?.started(10_000);
    await expect(hub?.started(5000)).rejects.toThrow('test: rank 1 left before the job started');
    // Rank 0 then hangs up, as a transport that failed to join does, and rank 2 is not left waiting.
    await hub?.close(0);
    await expect(others).rejects.toThrow('test: rank 0 left before the job started');
  });

  it('reports a rank whose process died (no goodbye) to rank 0 and, through it, to the others', async () => {
    const at = { host: '127.0.0.1', port: await freePort() };
    const child = spawn(
      process.execPath,
      [
        ...SOURCE_NODE_ARGS,
        fileURLToPath(new URL('fixtures/idle-rank.ts', import.meta.url)),
        at.host,
        String(at.port),
        '1',
        '3',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const channels = await Promise.all([0, 2].map((r) => ControlChannel.join(at, options(r, 3))));
      open.push(...channels);
      const lost: Array<{ rank: number; peer: number }> = [];
      const told: ControlMessage[] = [];
      // Rank 0 sees the socket drop; rank 2 is told by rank 0 (a `lost` message).
      channels[0]?.listen({ onMessage: () => {}, onLost: (peer) => lost.push({ rank: 0, peer }) });
      channels[1]?.listen({ onMessage: (m) => told.push(m), onLost: (peer) => lost.push({ rank: 2, peer }) });
      child.kill('SIGKILL');
      await until(() => lost.some((l) => l.rank === 0 && l.peer === 1));
      await until(() => told.length > 0);
      expect(told[0]).toMatchObject({ t: 'lost', rank: 1 });
      expect(lost).toEqual([{ rank: 0, peer: 1 }]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
