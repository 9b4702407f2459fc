/**
 * Every refusal of the update state machine and of membership, with the code and the one-line
 * message an operator sees, and proof that a refused call changed nothing: a real server over
 * ZeroMQ on loopback, driven as the CLI and the workers drive it.
 */
import type { Plan } from '@hotweights/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CoordinatorClient,
  CoordinatorServer,
  EventSubscriber,
  expectedDigest,
  rollbackDigest,
} from '../src/index.js';
import { heartbeatAs, precommitAs, registerAs } from './leases.js';
import { makePlan } from './plans.js';
import { refusal } from './refusal.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function start(leaseS = 30) {
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
    leaseS,
  });
  cleanups.push(() => server.close());
  const client = new CoordinatorClient(server.endpoint, { timeoutMs: 10_000 });
  cleanups.push(() => client.close());
  return client;
}

/** [code, message] of the refusal of `p`. */
async function refused(p: Promise<unknown>): Promise<[string, string]> {
  const err = await refusal(p);
  return [err.code, err.message];
}

const manifestOf = (version: string) => ({
  schema: 'hotweights.manifest',
  version,
  digest: `sha256:${version}`,
});

/** Registers ranks 0..n-1 as workers w0.. of a world of n. */
async function fleet(client: CoordinatorClient, n: number) {
  for (let rank = 0; rank < n; rank++)
    await registerAs(client, { rank, world_size: n, worker_id: `w${rank}`, host: 'h', pid: 100 + rank });
}

/** Precommits every rank of `plan` with its expected digest. */
async function voteAll(client: CoordinatorClient, plan: Plan, ranks: number[]) {
  let view: Awaited<ReturnType<typeof precommitAs>> | undefined;
  for (const rank of ranks)
    view = await precommitAs(client, {
      version: plan.version,
      rank,
      digest: expectedDigest(plan, rank),
      workerId: `w${rank}`,
    });
  return view;
}

describe('submit_plan and begin', () => {
  it('refuse what would replace or skip an update, naming what to do instead', async () => {
    const client = await start();
    await fleet(client, 2);
    const v1 = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    expect(await refused(client.submitPlan(v1, manifestOf('v2')))).toEqual([
      'HW_COORD_BAD_PARAMS',
      `submit_plan: params.manifest.version: expected "v1" (the plan's version), got "v2"`,
    ]);
    expect(await refused(client.begin('v1'))).toEqual([
      'HW_COORD_REFUSED',
      'begin v1: no plan submitted for this version (coord-submit-plan first)',
    ]);
    await client.submitPlan(v1, manifestOf('v1'));
    await client.begin('v1', { autoCommit: false });
    expect(await refused(client.submitPlan(v1))).toEqual([
      'HW_COORD_REFUSED',
      'submit_plan: version v1 is begun; abort it before replacing its plan',
    ]);
    const v2 = makePlan({ version: 'v2', prev: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(v2, manifestOf('v2'));
    expect(await refused(client.begin('v2'))).toEqual([
      'HW_COORD_REFUSED',
      'begin v2: update v1 is begun; commit or abort it first',
    ]);
    expect(await refused(client.commit('v1'))).toEqual([
      'HW_COORD_NO_QUORUM',
      'commit v1: no quorum yet: rank(s) 0, 1 have not precommitted',
    ]);
    await voteAll(client, v1, [0]);
    expect(await refused(client.commit('v1'))).toEqual([
      'HW_COORD_NO_QUORUM',
      'commit v1: no quorum yet: rank(s) 1 have not precommitted',
    ]);
    expect((await voteAll(client, v1, [1]))?.state).toBe('precommitted');
    expect((await client.commit('v1')).state).toBe('committed');
    // Committing again answers with the committed update.
    expect((await client.commit('v1')).state).toBe('committed');
    expect((await client.getCurrentManifest()).manifest).toEqual(manifestOf('v1'));
    expect(await refused(client.submitPlan(v1))).toEqual([
      'HW_COORD_REFUSED',
      'submit_plan: version v1 is already committed; publish a new version',
    ]);

    // A delta from another version than the current one.
    const v3 = makePlan({ version: 'v3', prev: 'v0', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(v3);
    expect(await refused(client.begin('v3'))).toEqual([
      'HW_COORD_REFUSED',
      'begin v3: the plan is a delta from v0 but the current version is v1; plan again against the current manifest',
    ]);
    // An aborted update is neither begun again nor committed.
    await client.begin('v2', { autoCommit: false });
    await client.abort({ version: 'v2', reason: 'r'.repeat(600) });
    const aborted = await client.getUpdate('v2');
    expect(aborted.update?.state).toBe('aborted');
    expect(aborted.update?.reason).toBe('r'.repeat(500));
    expect(aborted.current_version).toBe('v1');
    expect(await refused(client.begin('v2'))).toEqual([
      'HW_COORD_REFUSED',
      'begin v2: the update is aborted; submit its plan again to retry',
    ]);
    expect(await refused(client.commit('v2'))).toEqual([
      'HW_COORD_REFUSED',
      'commit v2: the update is aborted',
    ]);
    expect(await refused(client.commit('v9'))).toEqual(['HW_COORD_REFUSED', 'commit v9: no such update']);
    expect((await client.getUpdate('v9')).update).toBeNull();
    // A manifest-less submit leaves the current manifest as committed.
    const v4 = makePlan({ version: 'v4', prev: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(v4);
    await client.begin('v4');
    expect((await voteAll(client, v4, [0, 1]))?.state).toBe('committed');
    expect(await client.getCurrentManifest()).toEqual({ version: 'v4', manifest: manifestOf('v1') });
  }, 60_000);
});

describe('precommit', () => {
  it('counts a vote only for an update in progress, from a rank it needs, held by the voter, for its plan', async () => {
    const client = await start();
    await fleet(client, 2);
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }], worldSize: 1 });
    const vote = (rank: number, over: Partial<Parameters<typeof precommitAs>[1]> = {}) =>
      precommitAs(client, {
        version: 'v1',
        rank,
        digest: expectedDigest(plan, rank),
        workerId: `w${rank}`,
        ...over,
      });
    expect(await refused(vote(0))).toEqual(['HW_COORD_REFUSED', 'precommit v1: no such update']);
    await client.submitPlan(plan);
    expect(await refused(vote(0))).toEqual(['HW_COORD_REFUSED', 'precommit v1: the update is planned']);
    await client.begin('v1', { autoCommit: false });
    expect(await refused(vote(1))).toEqual([
      'HW_COORD_REFUSED',
      'precommit v1: rank 1 is not part of this update (ranks 0)',
    ]);
    expect(await refused(vote(0, { workerId: 'w1' }))).toEqual([
      'HW_COORD_NOT_HOLDER',
      'precommit v1: rank 0 is held by worker w0, not by w1: a precommit counts only from the worker that holds the rank',
    ]);
    // The plan was made for a world of 1; the fleet registered for 2.
    expect(await refused(vote(0))).toEqual([
      'HW_COORD_REFUSED',
      'precommit v1: worker w0 registered for world size 2, the plan was made for 1',
    ]);
    await client.abort({ version: 'v1' });

    const two = makePlan({ version: 'v2', buckets: [{ id: 0, consumers: [0, 1] }], worldSize: 2 });
    await client.submitPlan(two);
    await client.begin('v2', { autoCommit: false });
    const wrong = expectedDigest(two, 1);
    const [code, message] = await refused(
      precommitAs(client, { version: 'v2', rank: 0, digest: rollbackDigest('v2', null), workerId: 'w0' }),
    );
    expect(code).toBe('HW_COORD_DIGEST_MISMATCH');
    expect(message).toBe(
      `precommit v2: rank 0 staged something else than the plan assigns it (digest ${rollbackDigest('v2', null).slice(0, 24)}…, expected ${expectedDigest(two, 0).slice(0, 24)}…)`,
    );
    // Both ranks consume the one bucket: their digests agree, so rank 1's is rank 0's too.
    expect(wrong).toBe(expectedDigest(two, 0));
    const view = await voteAll(client, two, [0]);
    expect(view?.precommitted_ranks).toEqual([0]);
    expect(view?.state).toBe('begun');
    expect((await voteAll(client, two, [1]))?.state).toBe('precommitted');
    // A vote after the quorum is still counted (the update is precommitted, not finished).
    expect((await voteAll(client, two, [1]))?.state).toBe('precommitted');
  }, 60_000);
});

describe('abort and rollback', () => {
  it('refuse without an update or a version to go back to', async () => {
    const client = await start();
    await fleet(client, 1);
    expect(await refused(client.abort())).toEqual(['HW_COORD_REFUSED', 'abort: no update is in progress']);
    expect(await refused(client.rollback())).toEqual([
      'HW_COORD_REFUSED',
      'rollback: nothing is committed yet',
    ]);
    const v1 = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(v1, manifestOf('v1'));
    await client.begin('v1', { autoCommit: false });
    expect(await refused(client.abort({ version: 'v0' }))).toEqual([
      'HW_COORD_REFUSED',
      'abort v0: the update in progress is v1',
    ]);
    expect(await refused(client.rollback())).toEqual([
      'HW_COORD_REFUSED',
      'rollback: update v1 is begun; commit or abort it first',
    ]);
    expect((await client.abort()).reason).toBe('aborted by request');
    await client.submitPlan(v1, manifestOf('v1'));
    await client.begin('v1');
    await voteAll(client, v1, [0]);
    expect(await refused(client.rollback())).toEqual([
      'HW_COORD_REFUSED',
      'rollback: no version before v1 is known; name one with --to',
    ]);
    expect(await refused(client.rollback({ to: 'v1' }))).toEqual([
      'HW_COORD_REFUSED',
      'rollback: v1 is already the current version',
    ]);
    expect(await refused(client.rollback({ to: 'v0' }))).toEqual([
      'HW_COORD_REFUSED',
      'rollback: the coordinator holds no plan and manifest for v0 (it was not deployed through this coordinator with its manifest)',
    ]);
    // v2 committed, then rolled back to v1: every rank of the fleet votes with the rollback digest.
    const v2 = makePlan({ version: 'v2', prev: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(v2, manifestOf('v2'));
    await client.begin('v2');
    await voteAll(client, v2, [0]);
    const back = await client.rollback({ autoCommit: false });
    expect([back.version, back.state, back.required_ranks]).toEqual(['v1', 'begun', [0]]);
    expect(
      await refused(
        precommitAs(client, { version: 'v1', rank: 0, digest: expectedDigest(v1, 0), workerId: 'w0' }),
      ),
    ).toEqual([
      'HW_COORD_DIGEST_MISMATCH',
      `precommit v1: rank 0 staged something else than the plan assigns it (digest ${expectedDigest(v1, 0).slice(0, 24)}…, expected ${rollbackDigest('v1', 'v2').slice(0, 24)}…)`,
    ]);
    await precommitAs(client, { version: 'v1', rank: 0, digest: rollbackDigest('v1', 'v2'), workerId: 'w0' });
    expect((await client.commit('v1')).state).toBe('committed');
    expect(await client.getCurrentManifest()).toEqual({ version: 'v1', manifest: manifestOf('v1') });
    // Once the fleet rolled back from v2, v2 may be deployed again.
    expect(await client.submitPlan(v2, manifestOf('v2'))).toMatchObject({ version: 'v2', state: 'planned' });
  }, 60_000);
});

describe('register and heartbeat', () => {
  it('refuse a rank held by a live worker, naming it, and a worker the coordinator does not know', async () => {
    const client = await start();
    await registerAs(client, {
      rank: 0,
      world_size: 2,
      worker_id: 'w0',
      host: 'hostA',
      pid: 7,
      node_id: 'n0',
    });
    const [code, message] = await refused(
      registerAs(client, { rank: 0, world_size: 2, worker_id: 'x0', host: 'hostB', pid: 8 }),
    );
    expect(code).toBe('HW_COORD_RANK_HELD');
    expect(message).toMatch(
      /^register: rank 0 is held by worker w0 on host hostA \(pid 7, node n0, lease (29|30)\.\d s left\); stop that worker or give this one another rank$/,
    );
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }], worldSize: 1 });
    await client.submitPlan(plan);
    await client.begin('v1', { autoCommit: false });
    expect(await refused(registerAs(client, { rank: 1, world_size: 2, worker_id: 'w1', host: 'h' }))).toEqual(
      [
        'HW_COORD_REFUSED',
        "register: world_size 2 does not match update v1's plan (made for 1); re-plan with --world-size 2 or start the worker with WORLD_SIZE=1",
      ],
    );
    expect(await refused(client.call('heartbeat', { worker_id: 'ghost', lease_key: null }))).toEqual([
      'HW_COORD_UNKNOWN_WORKER',
      'heartbeat: worker ghost is not registered (lease expired?): register again',
    ]);
    const { workers } = await client.listWorkers();
    expect(workers.map((w) => w.worker_id)).toEqual(['w0']);
  }, 60_000);
});

describe('heartbeats and leases', () => {
  it('a heartbeat renews the lease and records the live version and sync error a worker reports', async () => {
    const client = await start();
    const reg = await registerAs(client, {
      rank: 0,
      world_size: 1,
      worker_id: 'w0',
      host: 'h'.repeat(300),
      node_id: 'n'.repeat(300),
      live_version: 'v0',
      sync_error: 'e'.repeat(600),
    });
    expect(reg).toMatchObject({ worker_id: 'w0', lease_s: 30, current_version: null });
    const first = (await client.listWorkers()).workers[0];
    expect([
      first?.host.length,
      first?.node_id.length,
      first?.sync_error?.length,
      first?.live_version,
    ]).toEqual([256, 256, 500, 'v0']);
    // Omitted fields keep their values; null clears them; long errors are cut.
    await heartbeatAs(client, { worker_id: 'w0' });
    let w = (await client.listWorkers()).workers[0];
    expect([w?.live_version, w?.sync_error?.length]).toEqual(['v0', 500]);
    await heartbeatAs(client, { worker_id: 'w0', live_version: 'v1', sync_error: 'x'.repeat(501) });
    w = (await client.listWorkers()).workers[0];
    expect([w?.live_version, w?.sync_error]).toEqual(['v1', 'x'.repeat(500)]);
    await heartbeatAs(client, { worker_id: 'w0', live_version: null, sync_error: null });
    w = (await client.listWorkers()).workers[0];
    expect([w?.live_version, w?.sync_error]).toEqual([null, null]);
    expect(w?.lease_expires_at).toBeGreaterThan(first?.lease_expires_at ?? Number.POSITIVE_INFINITY);
    // Registering again with the key keeps the worker's first registration time.
    await registerAs(client, { rank: 0, world_size: 1, worker_id: 'w0', host: 'h' });
    expect((await client.listWorkers()).workers[0]?.registered_at).toBe(first?.registered_at);
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(plan);
    await client.begin('v1', { autoCommit: false });
    expect(await heartbeatAs(client, { worker_id: 'w0' })).toMatchObject({
      active: { version: 'v1', state: 'begun' },
      current_version: null,
    });
  }, 60_000);

  it('a rank that voted yes stays counted when its worker then loses its lease', async () => {
    // A lease of 15 heartbeats: the worker that keeps beating keeps it on a loaded machine.
    const client = await start(3);
    await fleet(client, 2);
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(plan);
    await client.begin('v1', { autoCommit: false });
    await voteAll(client, plan, [0]);
    const beat = setInterval(() => {
      heartbeatAs(client, { worker_id: 'w1' }).catch(() => {});
    }, 200);
    cleanups.push(() => clearInterval(beat));
    const deadline = Date.now() + 60_000;
    while ((await client.listWorkers()).workers.some((x) => x.worker_id === 'w0')) {
      if (Date.now() > deadline) throw new Error('w0 never lost its lease');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await client.getUpdate('v1')).update?.state).toBe('begun');
    expect((await voteAll(client, plan, [1]))?.state).toBe('precommitted');
    // An expired holder's rank is free for a new worker at once.
    await registerAs(client, { rank: 0, world_size: 2, worker_id: 'w0-new', host: 'h' });
    expect((await client.listWorkers()).workers.map((x) => x.worker_id).sort()).toEqual(['w0-new', 'w1']);
  }, 90_000);
});

describe('get_plan', () => {
  it('serves the active plan or a named one, with its manifest when asked, and names what it lacks', async () => {
    const client = await start();
    await fleet(client, 1);
    expect(await refused(client.getPlan())).toEqual([
      'HW_COORD_NOT_FOUND',
      'get_plan: no update in progress and no version given',
    ]);
    expect(await refused(client.getPlan('v9'))).toEqual([
      'HW_COORD_NOT_FOUND',
      'get_plan: no plan for version v9',
    ]);
    const v1 = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(v1, manifestOf('v1'));
    // Submitted, not begun: served from the store.
    expect(await client.getPlan('v1')).toEqual({ plan: v1, state: 'planned', begun_at: null });
    expect((await client.getPlan('v1', { withManifest: true })).manifest).toEqual(manifestOf('v1'));
    await client.begin('v1', { autoCommit: false });
    // Begun: the active plan, with or without a version named.
    for (const version of [undefined, 'v1']) {
      const got = await client.getPlan(version, { withManifest: true });
      expect([got.plan, got.state, got.manifest, typeof got.begun_at]).toEqual([
        v1,
        'begun',
        manifestOf('v1'),
        'number',
      ]);
      expect('manifest' in (await client.getPlan(version))).toBe(false);
    }
    // A plan submitted without a manifest has none to serve.
    const v2 = makePlan({ version: 'v2', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(v2);
    expect((await client.getPlan('v2', { withManifest: true })).manifest).toBeNull();
  }, 60_000);
});

describe('parameters', () => {
  it('a wrong parameter is refused naming the method, the parameter and what it must be', async () => {
    const client = await start();
    const cases: [string, Record<string, unknown>, string][] = [
      ['register', { rank: -1 }, 'params.rank: expected an integer >= 0 (got -1)'],
      ['register', { rank: 0, world_size: 0 }, 'params.world_size: expected an integer >= 1 (got 0)'],
      ['register', { rank: 0, node_id: '' }, 'params.node_id: expected a non-empty string (got "")'],
      ['register', { rank: 0, host: 5 }, 'params.host: expected a string (got 5)'],
      ['register', { rank: 0, pid: -2 }, 'params.pid: expected an integer >= 0 (got -2)'],
      ['register', { rank: 0, live_version: 3 }, 'params.live_version: expected a string (got 3)'],
      ['register', { rank: 0, sync_error: 3 }, 'params.sync_error: expected a string (got 3)'],
      ['register', { rank: 0, worker_id: '' }, 'params.worker_id: expected a non-empty string (got "")'],
      ['register', { rank: 0, take_over: '' }, 'params.take_over: expected a non-empty string (got "")'],
      ['register', { rank: 0, take_over_key: 1 }, 'params.take_over_key: expected a string (got 1)'],
      ['register', { rank: 0, lease_key: 1 }, 'params.lease_key: expected a string (got 1)'],
      [
        'register',
        { rank: 0, world_size: 65_537 },
        'params.world_size 65537 is over the limit of 65536 ranks',
      ],
      ['heartbeat', { worker_id: '' }, 'params.worker_id: expected a non-empty string (got "")'],
      ['heartbeat', { worker_id: 'w', live_version: 1 }, 'params.live_version: expected a string (got 1)'],
      ['heartbeat', { worker_id: 'w', sync_error: 1 }, 'params.sync_error: expected a string (got 1)'],
      ['heartbeat', { worker_id: 'w', lease_key: 1 }, 'params.lease_key: expected a string (got 1)'],
      [
        'precommit',
        { version: '', rank: 0, digest: 'd' },
        'params.version: expected a non-empty string (got "")',
      ],
      [
        'precommit',
        { version: 'v', rank: 'x', digest: 'd' },
        'params.rank: expected an integer >= 0 (got "x")',
      ],
      [
        'precommit',
        { version: 'v', rank: 0, digest: '' },
        'params.digest: expected a non-empty string (got "")',
      ],
      [
        'precommit',
        { version: 'v', rank: 0, digest: 'd', worker_id: 1 },
        'params.worker_id: expected a string (got 1)',
      ],
      [
        'precommit',
        { version: 'v', rank: 0, digest: 'd', lease_key: 1 },
        'params.lease_key: expected a string (got 1)',
      ],
      ['begin', { version: '' }, 'params.version: expected a non-empty string (got "")'],
      [
        'begin',
        { version: 'v', auto_commit: 'yes' },
        'params.auto_commit: expected true or false (got "yes")',
      ],
      ['commit', { version: '' }, 'params.version: expected a non-empty string (got "")'],
      ['abort', { version: '' }, 'params.version: expected a non-empty string (got "")'],
      ['abort', { reason: 1 }, 'params.reason: expected a string (got 1)'],
      ['get_plan', { version: '' }, 'params.version: expected a non-empty string (got "")'],
      ['get_plan', { with_manifest: 1 }, 'params.with_manifest: expected true or false (got 1)'],
      ['get_update', { version: '' }, 'params.version: expected a non-empty string (got "")'],
      ['rollback', { to: '' }, 'params.to: expected a non-empty string (got "")'],
      ['rollback', { auto_commit: 0 }, 'params.auto_commit: expected true or false (got 0)'],
      ['submit_plan', { plan: null }, 'params.plan: (root): expected an object (got null)'],
      [
        'submit_plan',
        { plan: makePlan({ version: 'v1', buckets: [] }), manifest: { schema: 'x', version: 'v1' } },
        'params.manifest.schema: expected "hotweights.manifest" (got "x")',
      ],
    ];
    for (const [method, params, message] of cases)
      expect(await refused(client.call(method, params)), method).toEqual([
        'HW_COORD_BAD_PARAMS',
        `${method}: ${message}`,
      ]);
    // Defaults: a register without world_size, node_id or host is a world of one on an unknown host.
    const r = await registerAs(client, { rank: 0 });
    const w = (await client.listWorkers()).workers.find((x) => x.worker_id === r.worker_id);
    expect([w?.world_size, w?.node_id, w?.host, w?.pid, w?.sync_error]).toEqual([
      1,
      'unknown',
      'unknown',
      null,
      null,
    ]);
    expect(await refused(client.call('register', { rank: 1 }))).toEqual([
      'HW_COORD_BAD_PARAMS',
      'register: params.rank 1 is not below world_size 1',
    ]);
  }, 60_000);
});

describe('events', () => {
  it('publishes each step of an update, an abort and a rollback with what a subscriber needs', async () => {
    const server = await CoordinatorServer.start({
      endpoint: 'tcp://127.0.0.1:0',
      pubEndpoint: 'tcp://127.0.0.1:0',
    });
    cleanups.push(() => server.close());
    const client = new CoordinatorClient(server.endpoint, { timeoutMs: 10_000 });
    cleanups.push(() => client.close());
    const events: Record<string, unknown>[] = [];
    const sub = new EventSubscriber(server.pubEndpoint, (e) =>
      events.push(e as unknown as Record<string, unknown>),
    );
    cleanups.push(() => sub.close());
    // PUB/SUB joins asynchronously: heartbeat-free pings until the subscriber sees an event.
    const deadline = Date.now() + 30_000;
    while (events.length === 0) {
      if (Date.now() > deadline) throw new Error('the subscriber never connected');
      await client.submitPlan(makePlan({ version: 'v0', buckets: [] }));
      await new Promise((r) => setTimeout(r, 100));
    }
    await fleet(client, 1);
    const v1 = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(v1, manifestOf('v1'));
    await client.begin('v1');
    await voteAll(client, v1, [0]);
    const v2 = makePlan({ version: 'v2', prev: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await client.submitPlan(v2, manifestOf('v2'));
    await client.begin('v2');
    await client.abort({ reason: 'operator said so' });
    await client.submitPlan(v2, manifestOf('v2'));
    await client.begin('v2');
    await voteAll(client, v2, [0]);
    await client.rollback({ autoCommit: false });
    const end = Date.now() + 30_000;
    while (!events.some((e) => e.event === 'begin' && e.kind === 'rollback')) {
      if (Date.now() > end) throw new Error('the rollback event never came');
      await new Promise((r) => setTimeout(r, 50));
    }
    const seen = events.filter((e) => e.version !== 'v0').map(({ seq: _s, at: _a, ...rest }) => rest);
    expect(seen).toEqual([
      { event: 'worker_joined', worker_id: 'w0', rank: 0, node_id: 'unknown' },
      { event: 'plan', version: 'v1', plan_digest: v1.digest },
      { event: 'begin', version: 'v1', plan_digest: v1.digest, required_ranks: [0] },
      { event: 'precommit', version: 'v1', rank: 0 },
      { event: 'quorum', version: 'v1' },
      { event: 'commit', version: 'v1', plan_digest: v1.digest },
      { event: 'plan', version: 'v2', plan_digest: v2.digest },
      { event: 'begin', version: 'v2', plan_digest: v2.digest, required_ranks: [0] },
      { event: 'abort', version: 'v2', reason: 'operator said so' },
      { event: 'plan', version: 'v2', plan_digest: v2.digest },
      { event: 'begin', version: 'v2', plan_digest: v2.digest, required_ranks: [0] },
      { event: 'precommit', version: 'v2', rank: 0 },
      { event: 'quorum', version: 'v2' },
      { event: 'commit', version: 'v2', plan_digest: v2.digest },
      {
        event: 'begin',
        version: 'v1',
        kind: 'rollback',
        from: 'v2',
        plan_digest: v1.digest,
        required_ranks: [0],
      },
    ]);
    const rolled = await client.getUpdate('v1');
    expect([rolled.update?.kind, rolled.update?.from_version]).toEqual(['rollback', 'v2']);
    expect((await client.getUpdate('v2')).update?.kind).toBe('update');
  }, 90_000);
});

describe('begin and rollback without votes to wait for', () => {
  it('an update with no ranks to wait for commits at once; with registered workers, they are the ranks', async () => {
    const client = await start();
    const empty = makePlan({ version: 'v1', buckets: [] });
    await client.submitPlan(empty, manifestOf('v1'));
    expect(await client.begin('v1')).toMatchObject({ state: 'committed', required_ranks: [] });
    await registerAs(client, { rank: 10, world_size: 11, worker_id: 'w10', host: 'h' });
    await registerAs(client, { rank: 9, world_size: 11, worker_id: 'w9', host: 'h' });
    const v2 = makePlan({ version: 'v2', prev: 'v1', buckets: [] });
    await client.submitPlan(v2);
    expect(await client.begin('v2', { autoCommit: false })).toMatchObject({
      state: 'begun',
      required_ranks: [9, 10],
    });
    await client.abort();
    // A rollback waits for every rank of the fleet's world, registered or not.
    const v3 = makePlan({ version: 'v3', prev: 'v1', buckets: [] });
    await client.submitPlan(v3, manifestOf('v3'));
    await client.begin('v3', { autoCommit: false });
    for (const rank of [9, 10])
      await precommitAs(client, {
        version: 'v3',
        rank,
        digest: expectedDigest(v3, rank),
        workerId: `w${rank}`,
      });
    await client.commit('v3');
    const back = await client.rollback({ autoCommit: false });
    expect(back.required_ranks).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await client.abort();
    // A version deployed without its manifest cannot be rolled back to.
    const v4 = makePlan({ version: 'v4', prev: 'v3', buckets: [] });
    await client.submitPlan(v4);
    await client.begin('v4', { autoCommit: false });
    for (const rank of [9, 10])
      await precommitAs(client, {
        version: 'v4',
        rank,
        digest: expectedDigest(v4, rank),
        workerId: `w${rank}`,
      });
    await client.commit('v4');
    const v5 = makePlan({ version: 'v5', prev: 'v4', buckets: [] });
    await client.submitPlan(v5, manifestOf('v5'));
    await client.begin('v5', { autoCommit: false });
    for (const rank of [9, 10])
      await precommitAs(client, {
        version: 'v5',
        rank,
        digest: expectedDigest(v5, rank),
        workerId: `w${rank}`,
      });
    await client.commit('v5');
    expect(await refused(client.rollback())).toEqual([
      'HW_COORD_REFUSED',
      'rollback: the coordinator holds no plan and manifest for v4 (it was not deployed through this coordinator with its manifest)',
    ]);
  }, 60_000);
});

describe('take over', () => {
  it('a restarted worker replaces its predecessor only from the same known host, with its lease key', async () => {
    const client = await start();
    const old = await registerAs(client, { rank: 0, world_size: 1, worker_id: 'old', pid: null });
    const claim = (over: Record<string, unknown>) =>
      client.call('register', {
        rank: 0,
        world_size: 1,
        worker_id: 'new',
        take_over: 'old',
        take_over_key: old.lease_key,
        ...over,
      });
    // Both on an unknown host: nothing proves they share one. The refusal names the holder (not
    // its key), with '?' for a pid it did not give.
    const held = await refusal(claim({}));
    expect(held.code).toBe('HW_COORD_RANK_HELD');
    expect(held.message).toMatch(
      /^register: rank 0 is held by worker old on host unknown \(pid \?, node unknown, lease/,
    );
    // Acting as a known worker needs its key, whatever the call.
    for (const [method, params, what] of [
      ['register', { rank: 0, world_size: 1, worker_id: 'old' }, 'register as old'],
      ['heartbeat', { worker_id: 'old' }, 'heartbeat'],
    ] as const) {
      const err = await refusal(client.call(method, { ...params, lease_key: 'not-the-key' }));
      expect([err.code, err.message.startsWith(`${what}: `)], method).toEqual(['HW_COORD_LEASE_KEY', true]);
    }
    const known = await registerAs(client, { rank: 0, world_size: 1, worker_id: 'old', host: 'h' });
    expect((await refused(claim({ host: 'h', take_over_key: old.lease_key })))[0]).toBe('HW_COORD_RANK_HELD');
    await client.call('register', {
      rank: 0,
      world_size: 1,
      worker_id: 'new',
      host: 'h',
      take_over: 'old',
      take_over_key: known.lease_key,
    });
    expect((await client.listWorkers()).workers.map((w) => w.worker_id)).toEqual(['new']);
  }, 60_000);
});
