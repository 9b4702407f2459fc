/**
 * DropExchange with real files: two ranks as two exchanges in this process over one directory,
 * and real child processes as peers that register and exit.
 */
import { spawnSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BucketDrop, DropExchange } from '@hotweights/shm';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'hw-drop-exchange-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Stands in for a transport's named error class. */
class FakeTransportError extends Error {
  readonly code = 'FAKE_TRANSPORT';
  constructor(
    message: string,
    readonly options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

function exchange(dir: string, rank: number, rootHoldsPayload = false): DropExchange {
  return new DropExchange({
    dir,
    rank,
    name: 'fake',
    rootHoldsPayload,
    errors: {
      make: (message, o) => new FakeTransportError(message, o),
      isOwn: (err) => err instanceof FakeTransportError,
      aborted: (signal) =>
        signal.reason instanceof Error ? signal.reason : new FakeTransportError(`aborted: ${signal.reason}`),
      peerExited: (r, pid) => `rank ${r} (pid ${pid}) exited`,
    },
  });
}

const join2 = { worldSize: 2, timeoutS: 10, timeoutError: (m: string) => new FakeTransportError(m) };

/** Two joined ranks over a fresh directory. */
async function pair(): Promise<{ dir: string; r0: DropExchange; r1: DropExchange }> {
  const dir = mkdtempSync(join(root, 'pair-'));
  const r0 = exchange(dir, 0);
  const r1 = exchange(dir, 1);
  await Promise.all([r0.join(join2), r1.join(join2)]);
  return { dir, r0, r1 };
}

/** Files other than the rank registrations. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((n) => !/^rank\.\d+\.pid$/.test(n));
}

/**
 * Runs a child process that registers as `rank` in `dir` (optionally dropping `files` first, each
 * written to `.tmp` and renamed as the exchange does) and exits; returns its pid, once it is gone.
 */
function peerThatExits(dir: string, rank: number, files: Record<string, string> = {}): number {
  const script = `
    const { renameSync, writeFileSync } = require('node:fs');
    const [dir, rank, files] = process.argv.slice(1);
    const drop = (name, text) => { writeFileSync(dir + '/' + name + '.tmp', text); renameSync(dir + '/' + name + '.tmp', dir + '/' + name); };
    for (const [name, text] of Object.entries(JSON.parse(files))) drop(name, text);
    drop('rank.' + rank + '.pid', String(process.pid));
  `;
  const r = spawnSync(process.execPath, ['-e', script, dir, String(rank), JSON.stringify(files)]);
  expect(r.status, String(r.stderr)).toBe(0);
  return r.pid as number;
}

const request = (bucketId: number, signal?: AbortSignal) => ({ bucketId, root: 0, ranks: [0, 1], signal });

describe('DropExchange', { timeout: 30_000 }, () => {
  it('publishes a header, waits for the ack, then removes header and acks', async () => {
    const { dir, r0, r1 } = await pair();
    const events: string[] = [];
    const sent = r0.run(request(7), async (drop) => {
      await drop.publish({ path: '/x', length: 3 });
      events.push('root done');
    });
    const received = r1.run(request(7), async (drop) => {
      expect(drop.name).toBe('7.0');
      const header = await drop.readHeader<{ path: string; length: number }>();
      expect(header).toEqual({ path: '/x', length: 3 });
      // The header appeared whole under its final name, and the root waits for this rank.
      expect(leftovers(dir)).toEqual(['hdr.7.0']);
      await new Promise((r) => setTimeout(r, 100));
      expect(events).toEqual([]);
      events.push('ack');
      await drop.ack();
    });
    await Promise.all([sent, received]);
    expect(events).toEqual(['ack', 'root done']);
    expect(leftovers(dir)).toEqual([]);

    // The same bucket again is the next generation.
    const names: string[] = [];
    await Promise.all([
      r0.run(request(7), async (drop) => {
        names.push(drop.name);
        await drop.publish({});
      }),
      r1.run(request(7), async (drop) => {
        await drop.readHeader();
        expect(existsSync(join(dir, 'hdr.7.1'))).toBe(true);
        await drop.ack();
      }),
    ]);
    expect(names).toEqual(['7.1']);
    expect(leftovers(dir)).toEqual([]);
  });

  it("rejects with the signal's reason when the caller aborts, and cleans up the root's files", async () => {
    const { dir, r0, r1 } = await pair();
    const ctrl = new AbortController();
    // The root publishes, nobody acks: the wait ends only by the signal.
    const sent = r0.run(request(1, ctrl.signal), (drop) => drop.publish({ n: 1 }));
    await expect.poll(() => leftovers(dir)).toEqual(['hdr.1.0']);
    const stop = new Error('stopped by the caller');
    ctrl.abort(stop);
    await expect(sent).rejects.toBe(stop);
    expect(leftovers(dir)).toEqual([]);

    // A reason that is not an Error goes through the transport's `aborted`.
    const ctrl2 = new AbortController();
    const received = r1.run(request(2, ctrl2.signal), (drop) => drop.readHeader());
    ctrl2.abort('deadline');
    await expect(received).rejects.toThrowError(new FakeTransportError('aborted: deadline'));
  });

  it('writes no header for a broadcast aborted before it published', async () => {
    const { dir, r0 } = await pair();
    const created: string[] = [];
    const watcher = watch(dir, (_event, name) => {
      if (name) created.push(name);
    });
    const ctrl = new AbortController();
    const stop = new Error('stopped before publishing');
    const sent = r0.run(request(3, ctrl.signal), async (drop) => {
      ctrl.abort(stop);
      await drop.publish({});
    });
    await expect(sent).rejects.toBe(stop);
    await new Promise((r) => setTimeout(r, 100));
    watcher.close();
    expect(created.filter((n) => n.startsWith('hdr.'))).toEqual([]);
  });

  it("leaves no listener on the caller's signal once a broadcast ended, served or failed", async () => {
    const { r0, r1 } = await pair();
    const signal = new AbortController().signal;
    await Promise.all([
      r0.run(request(6, signal), (drop) => drop.publish({})),
      r1.run(request(6, signal), async (drop) => {
        await drop.readHeader();
        await drop.ack();
      }),
    ]);
    await expect(r0.run(request(8, signal), () => Promise.reject(new Error('x')))).rejects.toThrow(
      'fake: bucket 8: x',
    );
    expect(getEventListeners(signal, 'abort')).toEqual([]);
  });

  it('wraps errors that are not the transport’s own with its name and the bucket', async () => {
    const { r0 } = await pair();
    const boom = new Error('disk full');
    const err = await r0.run(request(3), () => Promise.reject(boom)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FakeTransportError);
    expect((err as Error).message).toBe('fake: bucket 3: disk full');
    expect((err as Error).cause).toBe(boom);
    const own = new FakeTransportError('fake: bad header');
    await expect(r0.run(request(4), () => Promise.reject(own))).rejects.toBe(own);
  });

  it('rejects a pending wait when it closes', async () => {
    const { r1 } = await pair();
    const received = r1.run(request(5), (drop) => drop.readHeader());
    await new Promise((r) => setTimeout(r, 50));
    r1.close();
    const err = await received.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FakeTransportError);
    expect((err as Error).message).toBe('fake: transport closed');
  });

  it('fails at once when the peer it waits for has exited', async () => {
    const dir = mkdtempSync(join(root, 'dead-'));
    const pid = peerThatExits(dir, 1);
    const r0 = exchange(dir, 0);
    await r0.join(join2);
    const t0 = Date.now();
    const err = await r0.run(request(9), (drop) => drop.publish({})).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FakeTransportError);
    expect((err as Error).message).toBe(`fake: rank 1 (pid ${pid}) exited`);
    expect((err as FakeTransportError).options.details).toEqual({ rank: 1 });
    // Well before the transfer timeout: the liveness check runs every 200 ms.
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(leftovers(dir)).toEqual([]);
  });

  it('does not fail for a peer that acked and then exited', async () => {
    const dir = mkdtempSync(join(root, 'acked-'));
    peerThatExits(dir, 1, { 'ack.4.0.1': '' });
    const r0 = exchange(dir, 0);
    const r2 = exchange(dir, 2);
    const join3 = { ...join2, worldSize: 3 };
    await Promise.all([r0.join(join3), r2.join(join3)]);
    const ranks = [0, 1, 2];
    await Promise.all([
      r0.run({ bucketId: 4, root: 0, ranks }, (drop) => drop.publish({})),
      r2.run({ bucketId: 4, root: 0, ranks }, async (drop) => {
        await drop.readHeader();
        // Slower than a peer check, which sees rank 1 gone.
        await new Promise((r) => setTimeout(r, 500));
        await drop.ack();
      }),
    ]);
    expect(leftovers(dir)).toEqual([]);
  });

  it.each([
    [false, 'keeps going'],
    [true, 'fails'],
  ])('with rootHoldsPayload %s, a receiver that read the header %s when the root exits', async (holds) => {
    const dir = mkdtempSync(join(root, `root-exits-${holds}-`));
    // Rank 0: a root that published bucket 1 and exited (its header is removed below).
    const pid = peerThatExits(dir, 0, { 'hdr.1.0': '{"n":1}' });
    const r1 = exchange(dir, 1, holds);
    const r2 = exchange(dir, 2);
    const join3 = { ...join2, worldSize: 3 };
    await Promise.all([r1.join(join3), r2.join(join3)]);
    // Peers are checked while anything waits: a wait on rank 2 (alive, so never failed) keeps
    // the checks running while bucket 1 "copies".
    const idle = new AbortController();
    const other = r1.run({ bucketId: 2, root: 2, ranks: [1, 2], signal: idle.signal }, (drop) =>
      drop.readHeader(),
    );
    let copying: BucketDrop | undefined;
    const received = r1.run(request(1), async (drop) => {
      expect(await drop.readHeader()).toEqual({ n: 1 });
      rmSync(join(dir, 'hdr.1.0'));
      copying = drop;
      await new Promise<void>((resolve, reject) => {
        setTimeout(resolve, 1_000);
        drop.signal.addEventListener('abort', () => reject(drop.signal.reason));
      });
      await drop.ack();
    });
    if (holds) await expect(received).rejects.toThrowError(`fake: rank 0 (pid ${pid}) exited`);
    else await expect(received).resolves.toBeUndefined();
    expect(copying?.signal.aborted).toBe(holds);
    const done = new Error('done');
    idle.abort(done);
    await expect(other).rejects.toBe(done);
  });
});
