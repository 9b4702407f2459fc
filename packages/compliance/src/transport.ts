/**
 * The transport compliance suite. Our transports and third-party ones run it to show they keep
 * the contract in src/transport.ts. It is framework-agnostic (no test runner inside):
 *
 * - `checkProviderContract(provider, ctx)` runs in one process: shape, probe behaviour, create and
 *   double close.
 * - `runRankCompliance(transport)` runs in EVERY rank of a job (started by mpirun, by the local
 *   launcher, by your own): broadcasts of odd and large sizes, from non-zero roots, to subsets,
 *   several in flight at once, and an aborted request; every byte received is checked. Bad
 *   requests (see `badRequests`) must be refused on the rank, with HW_TRANSPORT_INVALID.
 *
 * Both return a report and throw ComplianceError when something failed.
 */

import type {
  BroadcastRequest,
  ProbeContext,
  Transport,
  TransportOptions,
  TransportProvider,
} from '@hotweights/core';
import { assert, type ComplianceReport, Recorder } from './report.js';

export { ComplianceError, type ComplianceFailure, type ComplianceReport } from './report.js';

/**
 * Checks a provider in one process. `options` are used for create() when the probe says the
 * transport is available (use worldSize 1 for transports that can run alone).
 */
export async function checkProviderContract(
  provider: TransportProvider,
  ctx: ProbeContext,
  options?: TransportOptions,
): Promise<ComplianceReport> {
  const r = new Recorder();
  await r.check('name is a short lowercase identifier', () => {
    assert(
      typeof provider.name === 'string' && /^[a-z0-9][a-z0-9-]{0,31}$/.test(provider.name),
      `bad name ${String(provider.name)}`,
    );
  });
  await r.check('priority is a finite number', () => {
    assert(
      typeof provider.priority === 'number' && Number.isFinite(provider.priority),
      'priority must be finite',
    );
  });
  let available = false;
  await r.check('probe resolves to {available} and does not throw', async () => {
    let result: unknown;
    try {
      result = await provider.probe(ctx);
    } catch (err) {
      throw new Error(`probe threw: ${(err as Error).message}`);
    }
    const res = result as { available?: unknown; reason?: unknown };
    assert(res && typeof res.available === 'boolean', 'probe must resolve to {available: boolean, …}');
    if (!res.available)
      assert(typeof res.reason === 'string' && res.reason.length > 0, 'unavailable needs a non-empty reason');
    available = res.available === true;
  });
  await r.check('probe answers within 5 s', async () => {
    const started = Date.now();
    await provider.probe(ctx);
    assert(Date.now() - started < 5000, 'probe took longer than 5 s');
  });
  if (available && options) {
    await r.check('create() returns a transport and close() is idempotent', async () => {
      const t = await provider.create(options);
      assert(
        t.name === provider.name,
        `transport.name ${t.name} differs from provider.name ${provider.name}`,
      );
      assert(
        t.rank === options.rank && t.worldSize === options.worldSize,
        'transport rank/worldSize differ from options',
      );
      assert(
        typeof t.broadcast === 'function' && typeof t.close === 'function',
        'broadcast() and close() are required',
      );
      await t.close();
      await t.close();
    });
  }
  return r.finish(`provider ${provider.name}`);
}

/**
 * Deterministic bytes for a bucket, so every receiver can check what it got. `salt` tells apart
 * two broadcasts that reuse a bucket id (as every new plan does).
 */
export function compliancePayload(bucketId: number, size: number, salt = 0): Uint8Array {
  const out = new Uint8Array(size);
  let x = (bucketId * 2654435761 + 1 + salt * 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

interface Scenario {
  readonly bucketId: number;
  readonly root: number;
  readonly ranks: readonly number[];
  readonly size: number;
  readonly salt?: number;
}

/** The broadcasts every rank performs, in order. Depends only on worldSize. */
export function complianceScenarios(worldSize: number): { sequential: Scenario[]; concurrent: Scenario[] } {
  const all = Array.from({ length: worldSize }, (_, i) => i);
  const sequential: Scenario[] = [];
  let id = 1000;
  for (const size of [1, 4099, 1 << 20, (8 << 20) + 7])
    sequential.push({ bucketId: id++, root: 0, ranks: all, size });
  sequential.push({ bucketId: id++, root: 0, ranks: all, size: 0 });
  if (worldSize >= 2) sequential.push({ bucketId: id++, root: worldSize - 1, ranks: all, size: 65_537 });
  if (worldSize >= 3) {
    sequential.push({ bucketId: id++, root: 0, ranks: [0, worldSize - 1], size: 300_001 });
    sequential.push({ bucketId: id++, root: 1, ranks: all.slice(1), size: 77_777 });
  }
  const concurrent: Scenario[] = [];
  for (let i = 0; i < 6; i++) {
    const ranks = worldSize >= 3 && i % 3 === 2 ? [0, worldSize - 1] : all;
    concurrent.push({ bucketId: 2000 + i, root: 0, ranks, size: (1 << 20) * (1 + (i % 3)) + i });
  }
  return { sequential, concurrent };
}

async function runScenario(t: Transport, s: Scenario): Promise<void> {
  if (!s.ranks.includes(t.rank)) return;
  const expected = compliancePayload(s.bucketId, s.size, s.salt);
  const data = t.rank === s.root ? expected.slice() : new Uint8Array(s.size);
  await t.broadcast({ bucketId: s.bucketId, root: s.root, ranks: s.ranks, data });
  if (t.rank === s.root) {
    assert(Buffer.compare(data, expected) === 0, `root's buffer of bucket ${s.bucketId} was modified`);
  } else {
    const bad = data.findIndex((b, i) => b !== expected[i]);
    assert(bad === -1, `bucket ${s.bucketId} (${s.size} B from rank ${s.root}): byte ${bad} differs`);
  }
}

/**
 * Requests every transport must refuse on the rank that makes them, before any peer hears of
 * them, with HW_TRANSPORT_INVALID (core's `checkBroadcastRequest` makes these checks): ranks out
 * of order, a rank outside the world, a root that is not a participant, data that is not bytes.
 */
export function badRequests(worldSize: number): { what: string; request: BroadcastRequest }[] {
  const all = Array.from({ length: worldSize }, (_, i) => i);
  const data = new Uint8Array(4);
  // Bucket 4 is rank-job's broadcast after close; every refusal names its own bucket.
  return [
    ...(worldSize > 1
      ? [{ what: 'ranks out of order', request: { bucketId: 1, root: 0, ranks: [...all].reverse(), data } }]
      : []),
    { what: 'a rank outside the world', request: { bucketId: 2, root: 0, ranks: [...all, worldSize], data } },
    { what: 'a root that is not a participant', request: { bucketId: 3, root: worldSize, ranks: all, data } },
    {
      what: 'data that is not a Uint8Array',
      request: { bucketId: 5, root: 0, ranks: all, data: [1, 2, 3, 4] as unknown as Uint8Array },
    },
  ];
}

export interface RankComplianceOptions {
  /** How long a bad request may take to be refused (default 5000 ms): it must not wait on a peer. */
  readonly refusalMs?: number;
}

/** What a broadcast did: served, still pending after `ms`, or the error it rejected with. */
async function outcomeOf(
  t: Transport,
  request: BroadcastRequest,
  ms: number,
): Promise<'served' | 'late' | Error> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  try {
    return await Promise.race([t.broadcast(request).then(() => 'served' as const), late]);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs on every rank of a job with an open transport. All ranks must call it; it returns when
 * this rank's part is done. Does not close the transport.
 */
export async function runRankCompliance(
  t: Transport,
  { refusalMs = 5000 }: RankComplianceOptions = {},
): Promise<ComplianceReport> {
  const r = new Recorder();
  const { sequential, concurrent } = complianceScenarios(t.worldSize);
  const groups = new Map<string, readonly number[]>();
  for (const s of [...sequential, ...concurrent]) groups.set(s.ranks.join(','), s.ranks);
  if (t.prepare)
    await r.check('prepare() with every participant set', () => t.prepare?.([...groups.values()]));
  for (const { what, request } of badRequests(t.worldSize)) {
    await r.check(`refuses ${what} with HW_TRANSPORT_INVALID`, async () => {
      const outcome = await outcomeOf(t, request, refusalMs);
      assert(outcome !== 'served', 'the broadcast was served');
      assert(outcome !== 'late', `not refused within ${refusalMs} ms: it waits on a peer`);
      const code = (outcome as { code?: unknown }).code;
      assert(code === 'HW_TRANSPORT_INVALID', `refused with code ${String(code)}: ${outcome.message}`);
      assert(
        outcome.message.includes(`bucket ${request.bucketId}`),
        `the error does not name bucket ${request.bucketId}: ${outcome.message}`,
      );
    });
  }
  for (const s of sequential) {
    await r.check(`broadcast ${s.size} B from rank ${s.root} to [${s.ranks.join(',')}]`, () =>
      runScenario(t, s),
    );
  }
  await r.check(`${concurrent.length} broadcasts in flight at once`, async () => {
    await Promise.all(concurrent.map((s) => runScenario(t, s)));
  });
  // Every plan numbers its buckets from 0, so ids repeat across updates: a transport must not
  // confuse a later broadcast with an earlier one of the same id (a stale frame, a cached file).
  const all = Array.from({ length: t.worldSize }, (_, i) => i);
  await r.check('a bucket id used again by a later broadcast carries the new bytes', async () => {
    await runScenario(t, { bucketId: 1000, root: 0, ranks: all, size: 4099, salt: 1 });
    await Promise.all([
      runScenario(t, { bucketId: 2000, root: 0, ranks: all, size: 70_001, salt: 1 }),
      runScenario(t, { bucketId: 2001, root: 0, ranks: all, size: 70_001, salt: 1 }),
    ]);
  });
  await r.check('a broadcast whose signal is already aborted rejects', async () => {
    const ctrl = new AbortController();
    ctrl.abort(new Error('compliance: aborted on purpose'));
    const all = Array.from({ length: t.worldSize }, (_, i) => i);
    let rejected = false;
    try {
      await t.broadcast({
        bucketId: 3000,
        root: 0,
        ranks: all,
        data: new Uint8Array(16),
        signal: ctrl.signal,
      });
    } catch {
      rejected = true;
    }
    assert(rejected, 'broadcast resolved although its signal was aborted');
  });
  // A final full broadcast proves the transport still works after the aborted request.
  await r.check('transport still works after an aborted request', () =>
    runScenario(t, {
      bucketId: 3001,
      root: 0,
      ranks: Array.from({ length: t.worldSize }, (_, i) => i),
      size: 12_345,
    }),
  );
  return r.finish(`transport ${t.name} rank ${t.rank}/${t.worldSize}`);
}
