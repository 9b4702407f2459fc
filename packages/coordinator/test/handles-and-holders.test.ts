/**
 * The coordinator's smaller services on a real server over real ZeroMQ, for what a worker relies
 * on: transfer handles (their parameters, limits, TTLs, acks and per-node keys), who holds which
 * bucket (only a rank's live worker may say), the rendezvous' size limits, the current manifest
 * (not moved under an update), and the status view (sorted workers, recent updates, settings).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { heartbeatAs, leaseKeyOf, registerAs, reportHaveAs } from './leases.js';
import { makePlan } from './plans.js';
import { refusal } from './refusal.js';
import { type ServeOptions, serve } from './serve.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

const start = (opts: ServeOptions = {}) => serve(cleanups, opts);

describe('transfer handles', () => {
  it('refuses bad parameters by name and keeps the TTL inside (0, 86400] seconds', async () => {
    const { client } = await start({ handleTtlS: 30 });
    const post = (params: Record<string, unknown>) =>
      client.call('post_handle', { node_id: 'n1', key: 'k', handle: { ipc: 1 }, ...params });
    for (const ttl of [0, -1, 86_401, 'x']) {
      const err = await refusal(post({ ttl_s: ttl }));
      expect(err.code).toBe('HW_COORD_BAD_PARAMS');
      expect(err.message).toBe(
        `post_handle: params.ttl_s: expected a number of seconds in (0, 86400] (got ${JSON.stringify(ttl)})`,
      );
    }
    // The bounds themselves: a day is allowed.
    const before = Date.now();
    const day = (await post({ ttl_s: 86_400 })) as { expires_at: number };
    expect(day.expires_at).toBeGreaterThanOrEqual(before + 86_400_000);
    // No TTL: the server's (30 s).
    const after = Date.now();
    const dflt = (await post({ key: 'dflt' })) as { expires_at: number };
    expect(dflt.expires_at).toBeGreaterThanOrEqual(after + 30_000);
    expect(dflt.expires_at).toBeLessThanOrEqual(Date.now() + 30_000);

    const missing = await refusal(client.call('post_handle', { node_id: 'n1', key: 'k' }));
    expect(missing.code).toBe('HW_COORD_BAD_PARAMS');
    expect(missing.message).toBe('post_handle: params.handle: expected a value');
    expect((await refusal(post({ node_id: '' }))).message).toMatch(
      /^post_handle: params\.node_id: expected a non-empty string/,
    );
    expect((await refusal(post({ key: '' }))).message).toMatch(
      /^post_handle: params\.key: expected a non-empty string/,
    );
    expect((await refusal(post({ consumers: 'r0' }))).message).toMatch(
      /^post_handle: params\.consumers: expected an array/,
    );
    expect((await refusal(post({ consumers: ['r0', ''] }))).message).toMatch(
      /^post_handle: params\.consumers\[1\]: expected a non-empty string/,
    );
    const bad = [
      client.call('get_handle', { node_id: 'n1' }),
      client.call('ack_handle', { node_id: 'n1', key: 'k' }),
    ];
    expect((await refusal(bad[0] as Promise<unknown>)).message).toMatch(
      /^get_handle: params\.key: expected a string/,
    );
    expect((await refusal(bad[1] as Promise<unknown>)).message).toMatch(
      /^ack_handle: params\.consumer: expected a string/,
    );
  });

  it('takes a handle of up to 64 KiB of JSON, no more', async () => {
    const { client } = await start({ maxRequestBytes: 1024 * 1024 });
    // A string of n characters is n + 2 bytes of JSON.
    const fits = 'x'.repeat(64 * 1024 - 2);
    await client.postHandle({ nodeId: 'n1', key: 'big', handle: fits });
    expect((await client.getHandle('n1', 'big')).handle).toBe(fits);
    const err = await refusal(client.postHandle({ nodeId: 'n1', key: 'bigger', handle: `${fits}x` }));
    expect(err.code).toBe('HW_COORD_TOO_LARGE');
    expect(err.message).toBe('post_handle: params.handle: expected at most 65536 bytes of JSON');
    expect((await client.getHandle('n1', 'bigger')).handle).toBeNull();
  });

  it('keeps handles apart by node and key, counts each consumer once, and names a missing one', async () => {
    const { client } = await start({ handleTtlS: 30 });
    // "a:b"/"c" and "a"/"b:c" would be one key if the parts were joined as they are.
    await client.postHandle({ nodeId: 'a:b', key: 'c', handle: 1, consumers: ['r0', 'r1'] });
    await client.postHandle({ nodeId: 'a', key: 'b:c', handle: 2 });
    expect((await client.getHandle('a:b', 'c')).handle).toBe(1);
    expect((await client.getHandle('a', 'b:c')).handle).toBe(2);

    expect(await client.ackHandle('a:b', 'c', 'r0')).toEqual({ removed: false, remaining: ['r1'] });
    expect(await client.ackHandle('a:b', 'c', 'r0')).toEqual({ removed: false, remaining: ['r1'] });
    const seen = (await client.call('get_handle', { node_id: 'a:b', key: 'c' })) as Record<string, unknown>;
    expect(seen).toMatchObject({ handle: 1, consumers: ['r0', 'r1'], acked: ['r0'] });

    const gone = await refusal(client.ackHandle('n9', 'nothing', 'r0'));
    expect(gone.code).toBe('HW_COORD_NOT_FOUND');
    expect(gone.message).toBe('ack_handle: no live handle nothing on node n9');
  });

  it('a handle without a consumer list stays after an ack, for a short grace only', async () => {
    const { client } = await start({ handleTtlS: 600 });
    const posted = await client.postHandle({ nodeId: 'n1', key: 'open', handle: { ipc: 'x' } });
    expect(await client.ackHandle('n1', 'open', 'anyone')).toEqual({ removed: false, remaining: null });
    const after = (await client.getHandle('n1', 'open')) as { handle: unknown; expires_at: number };
    expect(after.handle).toEqual({ ipc: 'x' });
    // The TTL was cut to at most 5 s from the ack (from 600 s).
    expect(after.expires_at).toBeLessThan(posted.expires_at);
    expect(after.expires_at).toBeLessThanOrEqual(Date.now() + 5000);
  });
});

describe('bucket holders', () => {
  it('only a rank’s live worker with its lease key may report; reports are merged, sorted and deduplicated', async () => {
    const { client } = await start();
    await registerAs(client, { rank: 0, world_size: 2, worker_id: 'w0' });
    await registerAs(client, { rank: 1, world_size: 2, worker_id: 'w1' });
    await client.submitPlan(
      makePlan({
        version: 'v1',
        buckets: [
          { id: 0, consumers: [0, 1] },
          { id: 1, consumers: [0, 1] },
        ],
      }),
    );
    await client.begin('v1', { autoCommit: false });

    const foreign = await refusal(reportHaveAs(client, 'v1', 0, [0], 'w1'));
    expect(foreign.code).toBe('HW_COORD_NOT_HOLDER');
    expect(foreign.message).toBe(
      "report_have: rank 0 is not held by w1; only the rank's live worker reports its buckets",
    );
    const anonymous = await refusal(client.call('report_have', { version: 'v1', rank: 0, bucket_ids: [0] }));
    expect(anonymous.message).toBe(
      "report_have: rank 0 is not held by (no worker id); only the rank's live worker reports its buckets",
    );
    const noKey = await refusal(
      client.call('report_have', { version: 'v1', rank: 0, bucket_ids: [0], worker_id: 'w0' }),
    );
    expect(noKey.code).toBe('HW_COORD_LEASE_KEY');
    expect(noKey.message).toMatch(/^report_have: no lease key for worker w0; /);
    const wrongKey = await refusal(
      client.reportHave('v1', 0, [0], { workerId: 'w0', leaseKey: `${leaseKeyOf('w0')}x` }),
    );
    expect(wrongKey.message).toMatch(/^report_have: wrong lease key for worker w0; /);
    expect((await client.whoHas('v1')).holders).toEqual({});

    await reportHaveAs(client, 'v1', 1, [0]);
    await reportHaveAs(client, 'v1', 0, [0, 1]);
    await reportHaveAs(client, 'v1', 0, [0]);
    expect((await client.whoHas('v1')).holders).toEqual({ 0: [0, 1], 1: [0] });
    expect((await client.whoHas('v1', [1])).holders).toEqual({ 1: [0] });
    expect((await client.whoHas('v9')).holders).toEqual({});
    expect((await refusal(client.call('who_has', { version: 'v1', bucket_ids: [-1] }))).message).toMatch(
      /^who_has: params\.bucket_ids\[0\]: expected an integer >= 0/,
    );
  });
});

describe('current manifest and status', () => {
  it('the current manifest does not move under an update; one without a digest is recorded as such', async () => {
    const { client } = await start();
    await registerAs(client, { rank: 0, world_size: 1, worker_id: 'w0' });
    const m0 = { schema: 'hotweights.manifest', version: 'v0', files: [] };
    expect(await client.setCurrentManifest(m0)).toEqual({ version: 'v0' });
    const s0 = await client.status();
    expect(s0.current_version).toBe('v0');
    expect(await client.getCurrentManifest()).toEqual({ version: 'v0', manifest: m0 });
    await client.submitPlan(makePlan({ version: 'v1', prev: 'v0', buckets: [{ id: 0, consumers: [0] }] }));
    await client.begin('v1', { autoCommit: false });
    const busy = await refusal(client.setCurrentManifest({ ...m0, version: 'v9' }));
    expect(busy.code).toBe('HW_COORD_REFUSED');
    expect(busy.message).toBe('set_current_manifest: update v1 is begun');
    expect((await client.getCurrentManifest()).version).toBe('v0');
    expect((await refusal(client.setCurrentManifest({ ...m0, version: '' }))).message).toMatch(
      /^set_current_manifest: params\.manifest\.version: expected a non-empty string/,
    );
  });

  it('status lists workers by rank and the latest updates first, with the server settings', async () => {
    const { client } = await start({ leaseS: 7, heartbeatS: 1.5 });
    for (const rank of [2, 0, 1]) await registerAs(client, { rank, world_size: 3, worker_id: `w${rank}` });
    for (const v of ['v1', 'v2', 'v3']) {
      await client.submitPlan(makePlan({ version: v, buckets: [{ id: 0, consumers: [0] }] }));
      await client.begin(v, { autoCommit: false });
      await client.abort({ reason: 'next' });
      // Updates are ordered by when they began (ms): let the clock move between them.
      await new Promise((r) => setTimeout(r, 5));
    }
    await client.postHandle({ nodeId: 'n1', key: 'k', handle: 1 });
    const s = await client.status();
    expect(s).toMatchObject({
      backend: 'memory',
      auth: false,
      lease_s: 7,
      heartbeat_s: 1.5,
      handles_active: 1,
    });
    expect(s.workers.map((w) => w.rank)).toEqual([0, 1, 2]);
    expect(JSON.stringify(s.workers)).not.toContain('key_hash');
    expect(s.updates.map((u) => u.version)).toEqual(['v3', 'v2', 'v1']);
    expect(s.fleet).toMatchObject({ world_size: 3, state: 'converged' });
  });
});

describe('rendezvous limits', () => {
  it('takes rounds of up to 64 characters and values of up to 64 KiB, no more', async () => {
    const { client } = await start({ maxRequestBytes: 1024 * 1024 });
    await registerAs(client, { rank: 0, world_size: 1, worker_id: 'w0' });
    await client.submitPlan(makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] }));
    const update = await client.begin('v1', { autoCommit: false });
    const post = (round: string, value: string) =>
      client.rendezvous({
        version: 'v1',
        begunAt: update.begun_at ?? 0,
        round,
        rank: 0,
        value,
        lease: { workerId: 'w0', leaseKey: leaseKeyOf('w0') ?? '' },
      });
    const longest = 'v'.repeat(64 * 1024);
    expect(await post('r'.repeat(64), longest)).toEqual({
      round: 'r'.repeat(64),
      values: [longest],
      missing: [],
    });
    const message = 'rendezvous: round (<= 64 chars) or value (<= 65536 chars) too long';
    for (const [round, value] of [
      ['r'.repeat(65), 'x'],
      ['r', `${longest}v`],
    ] as const) {
      const err = await refusal(post(round, value));
      expect(err.code).toBe('HW_COORD_TOO_LARGE');
      expect(err.message).toBe(message);
    }
  });
});

describe('bucket holders of workers that are gone', () => {
  it('who_has leaves out ranks whose worker lost its lease', async () => {
    // A lease many heartbeats long: the worker kept alive keeps it on a loaded machine.
    const { client } = await start({ leaseS: 3, heartbeatS: 0.2 });
    await registerAs(client, { rank: 0, world_size: 2, worker_id: 'w0' });
    await registerAs(client, { rank: 1, world_size: 2, worker_id: 'w1' });
    // Only rank 0 is needed: rank 1 going away does not end the update.
    await client.submitPlan(makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] }));
    await client.begin('v1', { autoCommit: false });
    await reportHaveAs(client, 'v1', 0, [0]);
    await reportHaveAs(client, 'v1', 1, [0]);
    expect((await client.whoHas('v1')).holders).toEqual({ 0: [0, 1] });
    const beat = setInterval(() => {
      heartbeatAs(client, { worker_id: 'w0' }).catch(() => {});
    }, 200);
    cleanups.push(() => clearInterval(beat));
    const deadline = Date.now() + 60_000;
    while ((await client.status()).workers.length > 1) {
      if (Date.now() > deadline) throw new Error('timed out waiting for w1 to lose its lease');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await client.whoHas('v1')).holders).toEqual({ 0: [0] });
  });
});
