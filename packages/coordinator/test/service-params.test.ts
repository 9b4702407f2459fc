/**
 * The smaller services' contracts on a real server (real ZeroMQ, and a real redis-server where
 * what is stored matters): every parameter of report_have, who_has, rendezvous and the handle
 * calls refused by name; what set_current_manifest and post_handle store and publish; a
 * rendezvous begun again starting afresh; handle TTLs and the reaper; the status order of updates
 * never begun.
 */
import { createMetricsRegistry } from '@hotweights/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CoordEvent, type CoordinatorClient, EventSubscriber, RedisBackend } from '../src/index.js';
import { leaseKeyOf, registerAs, reportHaveAs } from './leases.js';
import { makePlan } from './plans.js';
import { type RedisProcess, startRedis } from './redis-server.js';
import { refusal } from './refusal.js';
import { type ServeOptions, serve } from './serve.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const start = (opts: ServeOptions = {}) => serve(cleanups, opts);

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A worker on each rank of a world of `n`, with an update of v1 begun. */
async function begun(client: CoordinatorClient, n = 2) {
  for (let rank = 0; rank < n; rank++)
    await registerAs(client, { rank, world_size: n, worker_id: `w${rank}` });
  const consumers = Array.from({ length: n }, (_, r) => r);
  await client.submitPlan(makePlan({ version: 'v1', buckets: [{ id: 0, consumers }], worldSize: n }));
  return client.begin('v1', { autoCommit: false });
}

describe('parameters refused by name', () => {
  it('report_have, who_has, rendezvous and the handle calls name the parameter that is wrong', async () => {
    const { client } = await start();
    const update = await begun(client);
    const lease = { worker_id: 'w0', lease_key: leaseKeyOf('w0') };
    const base: Record<string, Record<string, unknown>> = {
      report_have: { version: 'v1', rank: 0, bucket_ids: [0], ...lease },
      who_has: { version: 'v1', bucket_ids: [0] },
      rendezvous: { version: 'v1', begun_at: update.begun_at, round: 'r', rank: 0, value: 'x', ...lease },
      get_handle: { node_id: 'n', key: 'k' },
      ack_handle: { node_id: 'n', key: 'k', consumer: 'c' },
    };
    const CASES: [string, string, unknown, string][] = [
      ['report_have', 'version', '', 'a non-empty string'],
      ['report_have', 'rank', -1, 'an integer >= 0'],
      ['report_have', 'bucket_ids', 0, 'an array'],
      ['report_have', 'bucket_ids[0]', -1, 'an integer >= 0'],
      ['report_have', 'worker_id', 5, 'a string'],
      ['report_have', 'lease_key', 5, 'a string'],
      ['who_has', 'version', '', 'a non-empty string'],
      ['who_has', 'bucket_ids', 0, 'an array'],
      ['rendezvous', 'version', '', 'a non-empty string'],
      ['rendezvous', 'begun_at', -1, 'an integer >= 0'],
      ['rendezvous', 'round', '', 'a non-empty string'],
      ['rendezvous', 'rank', -1, 'an integer >= 0'],
      ['rendezvous', 'value', 5, 'a string'],
      ['rendezvous', 'worker_id', 5, 'a string'],
      ['rendezvous', 'lease_key', 5, 'a string'],
      ['get_handle', 'node_id', '', 'a non-empty string'],
      ['get_handle', 'key', '', 'a non-empty string'],
      ['ack_handle', 'node_id', '', 'a non-empty string'],
      ['ack_handle', 'key', '', 'a non-empty string'],
      ['ack_handle', 'consumer', '', 'a non-empty string'],
    ];
    for (const [method, field, value, expected] of CASES) {
      const params = { ...base[method] };
      if (field === 'bucket_ids[0]') params.bucket_ids = [value];
      else params[field] = value;
      const err = await refusal(client.call(method, params));
      expect(err.code, `${method} ${field}`).toBe('HW_COORD_BAD_PARAMS');
      expect(err.message.startsWith(`${method}: params.${field}: expected ${expected}`), err.message).toBe(
        true,
      );
    }
    // A TTL given as a numeric string is still not a number of seconds.
    const ttl = await refusal(client.call('post_handle', { node_id: 'n', key: 'k', handle: 1, ttl_s: '5' }));
    expect(ttl.message).toBe(
      'post_handle: params.ttl_s: expected a number of seconds in (0, 86400] (got "5")',
    );
    // Posting for a rank one does not hold names the rendezvous and what only the holder may do.
    const stranger = await refusal(client.call('rendezvous', { ...base.rendezvous, rank: 1 }));
    expect(stranger.message).toBe(
      "rendezvous: rank 1 is not held by w0; only the rank's live worker posts for it",
    );
  });
});

describe('what the services store and publish', () => {
  it('set_current_manifest stores the version and digest it moved to, and publishes it', async () => {
    const namespace = `params-${process.pid}:`;
    const backend = await RedisBackend.connect({ url: redis.url, namespace });
    const { server, client } = await start({ backend });
    const events: CoordEvent[] = [];
    const sub = new EventSubscriber(server.pubEndpoint, (e) => events.push(e));
    cleanups.push(() => sub.close());
    const store = await RedisBackend.connect({ url: redis.url, namespace });
    cleanups.push(() => store.close());

    const m0 = { schema: 'hotweights.manifest', version: 'v0', digest: 'sha256:aa', files: [] };
    // PUB/SUB joins asynchronously: set until the subscriber sees the event.
    await until(async () => {
      await client.setCurrentManifest(m0);
      return events.some((e) => e.event === 'manifest');
    }, 'the manifest event');
    expect(events.find((e) => e.event === 'manifest')).toMatchObject({ event: 'manifest', version: 'v0' });
    expect(await store.get('current')).toEqual({
      version: 'v0',
      manifest_digest: 'sha256:aa',
      committed_at: null,
    });
    expect(await store.get('current_manifest')).toEqual(m0);
    // Without a digest: none is recorded (a digest of another kind is not taken either).
    await client.setCurrentManifest({ schema: 'hotweights.manifest', version: 'v1', digest: 7, files: [] });
    expect(await store.get('current')).toEqual({ version: 'v1', manifest_digest: null, committed_at: null });

    // A handle is stored with its TTL (not one a thousand times shorter).
    await client.postHandle({ nodeId: 'n1', key: 'k', handle: { ipc: 1 }, ttlS: 30 });
    await new Promise((r) => setTimeout(r, 50));
    expect(await store.get('handle:n1:k')).toMatchObject({ handle: { ipc: 1 } });
  });

  it('report_have answers how many buckets it recorded and counts each holder once in the gauge', async () => {
    const registry = createMetricsRegistry();
    const { client } = await start({ metricsRegistry: registry });
    await begun(client);
    expect(await reportHaveAs(client, 'v1', 0, [0])).toEqual({ buckets: 1 });
    expect(await reportHaveAs(client, 'v1', 1, [0])).toEqual({ buckets: 1 });
    expect(await registry.metrics()).toMatch(/hotweights_coord_have_buckets(\{[^}]*\})? 2\n/);
  });

  it('a rendezvous of an update begun again starts afresh: values posted before do not count', async () => {
    const { client } = await start();
    const first = await begun(client);
    const post = (begunAt: number, rank: number, value: string) =>
      client.rendezvous({
        version: 'v1',
        begunAt,
        round: 'ucx',
        rank,
        value,
        lease: { workerId: `w${rank}`, leaseKey: leaseKeyOf(`w${rank}`) ?? '' },
      });
    expect((await post(first.begun_at ?? 0, 0, 'old')).missing).toEqual([1]);
    await client.abort({ reason: 'again' });
    await new Promise((r) => setTimeout(r, 5));
    await client.submitPlan(
      makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }], worldSize: 2 }),
    );
    const second = await client.begin('v1', { autoCommit: false });
    expect(second.begun_at).not.toBe(first.begun_at);
    expect(await post(second.begun_at ?? 0, 1, 'b')).toEqual({ round: 'ucx', values: null, missing: [0] });
  });
});

describe('handle lifetimes', () => {
  it('an ack on a handle without consumers keeps at most the grace, never past its TTL', async () => {
    const { client } = await start({ handleTtlS: 3 });
    const posted = await client.postHandle({ nodeId: 'n1', key: 'k', handle: 1 });
    await client.ackHandle('n1', 'k', 'anyone');
    // The grace (min(TTL, 5 s) = 3 s) ends after the TTL: the handle keeps its expiry.
    expect((await client.getHandle('n1', 'k')).expires_at).toBe(posted.expires_at);

    const { client: long } = await start({ handleTtlS: 600 });
    await long.postHandle({ nodeId: 'n1', key: 'k', handle: 1 });
    const before = Date.now();
    await long.ackHandle('n1', 'k', 'anyone');
    const after = (await long.getHandle('n1', 'k')).expires_at as number;
    expect(after).toBeGreaterThanOrEqual(before + 5000);
    expect(after).toBeLessThanOrEqual(Date.now() + 5000);
  });

  it('the reaper removes expired handles only, also without a metrics registry', async () => {
    const { client } = await start({ handleTtlS: 600 });
    await client.postHandle({ nodeId: 'n1', key: 'long', handle: 'stays' });
    await client.postHandle({ nodeId: 'n1', key: 'short', handle: 'goes', ttlS: 0.1 });
    await until(async () => (await client.status()).handles_active === 1, 'the reaper');
    expect((await client.getHandle('n1', 'long')).handle).toBe('stays');
    expect((await client.getHandle('n1', 'short')).handle).toBeNull();
  });
});

describe('status', () => {
  it('orders updates by when they began, or were submitted when never begun', async () => {
    const { client } = await start();
    await registerAs(client, { rank: 0, world_size: 1, worker_id: 'w0' });
    const plan = (v: string) => makePlan({ version: v, buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(plan('v1'));
    await new Promise((r) => setTimeout(r, 5));
    await client.submitPlan(plan('v2'));
    await new Promise((r) => setTimeout(r, 5));
    // v1 begins last: it is the newest; v2 was only submitted.
    await client.begin('v1', { autoCommit: false });
    expect((await client.status()).updates.map((u) => u.version)).toEqual(['v1', 'v2']);
  });
});
