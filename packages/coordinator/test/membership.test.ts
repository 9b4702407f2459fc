/**
 * Membership and the fleet's truth at the coordinator (a real server over ZeroMQ): one live worker
 * per rank, world sizes checked, votes only from the rank's holder, per-rank live versions and the
 * fleet state, and a fleet rollback through the two phases.
 */
import { createMetricsRegistry } from '@hotweights/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorClient, CoordinatorServer, expectedDigest, rollbackDigest } from '../src/index.js';
import { heartbeatAs, precommitAs, registerAs, reportHaveAs } from './leases.js';
import { makePlan } from './plans.js';
import { refusal } from './refusal.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function start(leaseS = 10) {
  const registry = createMetricsRegistry({ component: 'coordinator' });
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
    leaseS,
    metricsRegistry: registry,
  });
  cleanups.push(() => server.close());
  const client = new CoordinatorClient(server.endpoint, { timeoutMs: 5000 });
  cleanups.push(() => client.close());
  return { server, client, registry };
}

const worker = (rank: number, world: number, extra: Record<string, unknown> = {}) => ({
  rank,
  world_size: world,
  worker_id: `w${rank}`,
  host: 'host-a',
  pid: 100 + rank,
  live_version: null,
  ...extra,
});

describe('membership', () => {
  it('refuses a second claimant of a held rank, naming the holder; a restarted worker on its host with the lease key takes over', async () => {
    const { client } = await start();
    const w1 = await registerAs(client, worker(1, 2));
    const dup = await refusal(
      client.call('register', { ...worker(1, 2), worker_id: 'other', host: 'host-b', pid: 7 }),
    );
    expect(dup.code).toBe('HW_COORD_RANK_HELD');
    expect(dup.message).toMatch(/rank 1 is held by worker w1 on host host-a \(pid 101, .*lease/);
    expect(JSON.stringify(dup)).not.toContain('key_hash');
    // A take-over only from the holder's host, and only with the holder's lease key.
    const far = await refusal(
      client.call('register', {
        ...worker(1, 2),
        worker_id: 'x',
        host: 'host-b',
        take_over: 'w1',
        take_over_key: w1.lease_key,
      }),
    );
    expect(far.code).toBe('HW_COORD_RANK_HELD');
    const keyless = await refusal(
      client.call('register', { ...worker(1, 2), worker_id: 'w1-restarted', pid: 200, take_over: 'w1' }),
    );
    expect(keyless.code).toBe('HW_COORD_RANK_HELD');
    await client.call('register', {
      ...worker(1, 2),
      worker_id: 'w1-restarted',
      pid: 200,
      take_over: 'w1',
      take_over_key: w1.lease_key,
    });
    const ranks = (await client.status()).workers.map((w) => [w.rank, w.worker_id]);
    expect(ranks).toEqual([[1, 'w1-restarted']]);
  });

  it('a worker id read from status proves nothing: its votes, heartbeats, reports and registration need its lease key', async () => {
    const { client } = await start();
    const holder = await registerAs(client, worker(0, 1, { worker_id: undefined }));
    expect(holder.lease_key).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(plan);
    await client.begin('v1');
    // What an outsider sees: the holder's id, never its key nor the key's hash.
    const status = await client.status();
    const shown = JSON.stringify([status, await client.listWorkers()]);
    expect(shown).not.toContain(holder.lease_key);
    expect(shown).not.toContain('key_hash');
    const id = status.workers[0]?.worker_id ?? '';
    expect(id).toBe(holder.worker_id);
    const digest = expectedDigest((await client.getPlan('v1')).plan, 0);
    for (const leaseKey of [null, 'guessed']) {
      const forged = await refusal(
        client.precommit({ version: 'v1', rank: 0, digest, workerId: id, leaseKey }),
      );
      expect(forged.code).toBe('HW_COORD_LEASE_KEY');
      expect(forged.message).toContain(`lease key for worker ${id}`);
    }
    expect((await refusal(client.call('heartbeat', { worker_id: id }))).code).toBe('HW_COORD_LEASE_KEY');
    const report = refusal(client.reportHave('v1', 0, [0], { workerId: id, leaseKey: 'guessed' }));
    expect((await report).code).toBe('HW_COORD_LEASE_KEY');
    // Re-registering the holder's id elsewhere (to take its rank or its record) is refused too.
    const hijack = await refusal(
      client.call('register', { ...worker(0, 1), worker_id: id, host: 'host-b', pid: 9 }),
    );
    expect(hijack.code).toBe('HW_COORD_LEASE_KEY');
    expect((await client.status()).workers).toMatchObject([{ worker_id: id, host: 'host-a', pid: 100 }]);
    expect((await client.getUpdate('v1')).update).toMatchObject({ state: 'begun', precommitted_ranks: [] });
    // The holder, with its key, is heard.
    await heartbeatAs(client, { worker_id: id, live_version: null });
    await reportHaveAs(client, 'v1', 0, [0], id);
    expect((await precommitAs(client, { version: 'v1', rank: 0, digest, workerId: id })).state).toBe(
      'committed',
    );
  });

  it('checks ranks and world sizes against the fleet, the plan and a cap', async () => {
    const { client } = await start();
    const outside = await refusal(registerAs(client, worker(3, 3)));
    expect(outside.message).toContain('rank 3 is not below world_size 3');
    const huge = await refusal(registerAs(client, worker(0, 2 ** 53)));
    expect(huge.code).toBe('HW_COORD_BAD_PARAMS');
    expect(await refusal(registerAs(client, worker(0, 65_537)))).toHaveProperty(
      'message',
      expect.stringContaining('over the limit of 65536 ranks'),
    );
    await registerAs(client, worker(0, 2));
    const other = await refusal(registerAs(client, worker(1, 3)));
    expect(other.message).toContain("world_size 3 does not match the fleet's (2");
    await registerAs(client, worker(1, 2));
    await client.submitPlan(
      makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }], worldSize: 2 }),
    );
    await client.begin('v1', { autoCommit: false });
    // Same fleet size as the plan's: accepted; a plan-mismatched world is named.
    await registerAs(client, worker(1, 2));
    expect((await refusal(registerAs(client, { ...worker(0, 4), worker_id: 'w0' }))).message).toContain(
      'does not match',
    );
  });

  it('counts a precommit only from the worker holding the rank (a vote forged from get_plan is refused)', async () => {
    const { client } = await start();
    await registerAs(client, worker(0, 2));
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(plan);
    await client.begin('v1');
    // Anyone can compute the digest from the open plan.
    const open = (await client.getPlan('v1')).plan;
    const forged = await refusal(
      client.precommit({ version: 'v1', rank: 1, digest: expectedDigest(open, 1) }),
    );
    expect(forged.code).toBe('HW_COORD_NOT_HOLDER');
    expect(forged.message).toContain('rank 1 is held by no live worker');
    const impostor = await refusal(
      client.precommit({ version: 'v1', rank: 0, digest: expectedDigest(open, 0), workerId: 'w9' }),
    );
    expect(impostor.message).toContain('rank 0 is held by worker w0, not by w9');
    const u = await client.getUpdate('v1');
    expect(u.update).toMatchObject({ state: 'begun', precommitted_ranks: [] });
  });
});

describe('fleet truth', () => {
  it('reports per-rank live versions, the fleet state and ranks behind; rolls the fleet back in two phases', async () => {
    const { client, registry } = await start();
    expect((await client.status()).fleet).toMatchObject({
      state: 'empty',
      summary: 'empty: no live workers (nothing committed)',
    });
    await registerAs(client, worker(0, 2));
    await registerAs(client, worker(1, 2));
    const m = (v: string) => ({
      schema: 'hotweights.manifest',
      version: v,
      digest: `sha256:${v}`,
      files: [],
    });
    const v0 = makePlan({ version: 'v0', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(v0, m('v0'));
    await client.begin('v0');
    for (const r of [0, 1]) {
      await precommitAs(client, { version: 'v0', rank: r, digest: expectedDigest(v0, r), workerId: `w${r}` });
    }
    let s = await client.status();
    expect(s.fleet).toMatchObject({ state: 'converging', behind: [0, 1] });
    expect(s.fleet.summary).toBe('converging: 2 of 2 behind (rank 0 on nothing, rank 1 on nothing)');
    for (const r of [0, 1]) await heartbeatAs(client, { worker_id: `w${r}`, live_version: 'v0' });
    s = await client.status();
    expect(s.fleet).toMatchObject({
      state: 'converged',
      behind: [],
      summary: 'converged: 2 of 2 live on v0',
    });
    expect(await registry.metrics()).toMatch(/hotweights_coord_ranks_behind\{[^}]*\} 0/);

    const v1 = makePlan({ version: 'v1', prev: 'v0', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(v1, m('v1'));
    await client.begin('v1');
    for (const r of [0, 1]) {
      await precommitAs(client, { version: 'v1', rank: r, digest: expectedDigest(v1, r), workerId: `w${r}` });
    }
    await heartbeatAs(client, { worker_id: 'w0', live_version: 'v1' });
    await heartbeatAs(client, { worker_id: 'w1', live_version: 'v0', sync_error: 'flip failed: EROFS' });
    s = await client.status();
    expect(s.fleet.summary).toBe('diverged: rank 1 on v0 (flip failed: EROFS)');
    expect(await registry.metrics()).toMatch(/hotweights_coord_ranks_behind\{[^}]*\} 1/);
    await heartbeatAs(client, { worker_id: 'w1', live_version: 'v1', sync_error: null });

    // Fleet rollback: back to v0 through begin/precommit/commit; the current manifest moves too.
    const rb = await client.rollback();
    expect(rb).toMatchObject({ version: 'v0', kind: 'rollback', from_version: 'v1', state: 'begun' });
    const wrong = await refusal(
      precommitAs(client, { version: 'v0', rank: 0, digest: expectedDigest(v0, 0), workerId: 'w0' }),
    );
    expect(wrong.code).toBe('HW_COORD_DIGEST_MISMATCH');
    for (const r of [0, 1]) {
      await precommitAs(client, {
        version: 'v0',
        rank: r,
        digest: rollbackDigest('v0', 'v1'),
        workerId: `w${r}`,
      });
    }
    s = await client.status();
    expect(s.current_version).toBe('v0');
    expect(await client.getCurrentManifest()).toEqual({ version: 'v0', manifest: m('v0') });
    expect(s.fleet.state).toBe('converging');
    // v1 may be deployed again on top of the rolled-back fleet.
    await client.submitPlan(v1, m('v1'));
    expect((await client.begin('v1')).state).toBe('begun');
  });
});
