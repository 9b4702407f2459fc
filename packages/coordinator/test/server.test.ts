import { createMetricsRegistry } from '@hotweights/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import {
  type CoordEvent,
  CoordinatorClient,
  CoordinatorServer,
  EventSubscriber,
  expectedDigest,
} from '../src/index.js';
import { heartbeatAs, precommitAs, registerAs, reportHaveAs } from './leases.js';
import { makePlan } from './plans.js';
import { refusal } from './refusal.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function start(opts: Partial<Parameters<typeof CoordinatorServer.start>[0]> = {}) {
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
    ...opts,
  });
  cleanups.push(() => server.close());
  const client = new CoordinatorClient(server.endpoint, { token: opts.token, timeoutMs: 5000 });
  cleanups.push(() => client.close());
  return { server, client };
}

/** Registers a worker holding `rank` (id `w<rank>`): only it may precommit for the rank. */
async function join(client: CoordinatorClient, ranks: number[], worldSize: number): Promise<void> {
  for (const rank of ranks) {
    await registerAs(client, { rank, world_size: worldSize, worker_id: `w${rank}`, host: 'h', pid: 1 });
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('coordinator state machine', () => {
  it('runs planned -> begun -> precommitted -> committed and publishes each step', async () => {
    const { server, client } = await start();
    const events: CoordEvent[] = [];
    const sub = new EventSubscriber(server.pubEndpoint, (e) => events.push(e));
    cleanups.push(() => sub.close());
    // PUB/SUB joins asynchronously: wait until the subscriber sees something.
    await until(async () => {
      await client.submitPlan(makePlan({ version: 'v0', buckets: [] }));
      return events.length > 0;
    }, 'the subscriber to connect');

    const plan = makePlan({
      version: 'v1',
      buckets: [
        { id: 0, consumers: [0, 1] },
        { id: 1, consumers: [1] },
      ],
    });
    await join(client, [0, 1], 2);
    expect(await client.submitPlan(plan)).toMatchObject({ version: 'v1', state: 'planned', buckets: 2 });
    const begun = await client.begin('v1');
    expect(begun).toMatchObject({ state: 'begun', required_ranks: [0, 1], missing_ranks: [0, 1] });
    expect((await client.getPlan()).plan.digest).toBe(plan.digest);

    const half = await precommitAs(client, {
      version: 'v1',
      rank: 0,
      digest: expectedDigest(plan, 0),
      workerId: 'w0',
    });
    expect(half).toMatchObject({ state: 'begun', precommitted_ranks: [0], missing_ranks: [1] });
    const done = await precommitAs(client, {
      version: 'v1',
      rank: 1,
      digest: expectedDigest(plan, 1),
      workerId: 'w1',
    });
    expect(done.state).toBe('committed');

    const status = await client.status();
    expect(status.current_version).toBe('v1');
    expect(status.active).toBeNull();
    expect(status.updates[0]).toMatchObject({ version: 'v1', state: 'committed' });
    await until(() => events.some((e) => e.event === 'commit'), 'the commit event');
    const names = events.map((e) => e.event);
    expect(names).toEqual(expect.arrayContaining(['plan', 'begin', 'precommit', 'quorum', 'commit']));
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('refuses a commit without quorum, a second begin, wrong digests and foreign ranks', async () => {
    const { client } = await start();
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    await join(client, [0, 1], 6);
    await client.submitPlan(plan);
    expect((await refusal(client.commit('v1'))).code).toBe('HW_COORD_REFUSED');
    await client.begin('v1', { autoCommit: false });

    const noQuorum = await refusal(client.commit('v1'));
    expect(noQuorum.code).toBe('HW_COORD_NO_QUORUM');
    expect(noQuorum.message).toContain('rank(s) 0, 1 have not precommitted');

    await client.submitPlan(makePlan({ version: 'v2', buckets: [{ id: 0, consumers: [0] }] }));
    const busy = await refusal(client.begin('v2'));
    expect(busy.code).toBe('HW_COORD_REFUSED');
    expect(busy.message).toContain('update v1 is begun');

    const wrong = await refusal(
      precommitAs(client, { version: 'v1', rank: 0, digest: 'sha256:beef', workerId: 'w0' }),
    );
    expect(wrong.code).toBe('HW_COORD_DIGEST_MISMATCH');
    const foreign = await refusal(
      precommitAs(client, { version: 'v1', rank: 5, digest: expectedDigest(plan, 5), workerId: 'w5' }),
    );
    expect(foreign.message).toContain('rank 5 is not part of this update');

    await precommitAs(client, { version: 'v1', rank: 0, digest: expectedDigest(plan, 0), workerId: 'w0' });
    const quorum = await precommitAs(client, {
      version: 'v1',
      rank: 1,
      digest: expectedDigest(plan, 1),
      workerId: 'w1',
    });
    expect(quorum.state).toBe('precommitted'); // manual mode: waits for commit
    expect((await client.commit('v1')).state).toBe('committed');

    // v2 was planned against nothing; once v1 is current a delta from v0 is refused.
    await client.submitPlan(makePlan({ version: 'v3', prev: 'v0', buckets: [] }));
    const stale = await refusal(client.begin('v3'));
    expect(stale.message).toContain('delta from v0 but the current version is v1');
  });

  it('aborts on request and leaves the version re-submittable', async () => {
    const { client } = await start();
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await join(client, [0], 1);
    await client.submitPlan(plan);
    await client.begin('v1');
    const aborted = await client.abort({ reason: 'operator said so' });
    expect(aborted).toMatchObject({ state: 'aborted', reason: 'operator said so' });
    expect((await refusal(client.abort())).message).toContain('no update is in progress');
    expect((await refusal(client.begin('v1'))).message).toContain('submit its plan again');
    await client.submitPlan(plan);
    await client.begin('v1');
    expect(
      (await precommitAs(client, { version: 'v1', rank: 0, digest: expectedDigest(plan, 0), workerId: 'w0' }))
        .state,
    ).toBe('committed');
  });

  it('aborts an update when a needed worker loses its lease, and keeps serving', async () => {
    // A lease 15 heartbeats long: the healthy worker keeps it even when a loaded machine stalls
    // this process for seconds; the silent one still loses it in a few seconds.
    const { client } = await start({ leaseS: 3, heartbeatS: 0.2 });
    const a = await registerAs(client, { rank: 0, world_size: 2 });
    await registerAs(client, { rank: 1, world_size: 2 });
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    await client.submitPlan(plan);
    await client.begin('v1');
    // Only worker 0 heartbeats; worker 1 goes silent.
    const beat = setInterval(() => {
      heartbeatAs(client, { worker_id: a.worker_id }).catch(() => {});
    }, 200);
    cleanups.push(() => clearInterval(beat));
    await until(async () => (await client.status()).updates[0]?.state === 'aborted', 'the abort', 60_000);
    const status = await client.status();
    expect(status.updates[0]?.reason).toMatch(/rank 1, .*lost its lease/);
    expect(status.workers.map((w) => w.rank)).toEqual([0]);
    expect(status.current_version).toBeNull();
    const gone = await refusal(heartbeatAs(client, { worker_id: 'nobody' }));
    expect(gone.code).toBe('HW_COORD_UNKNOWN_WORKER');
  });

  it('aborts when a needed rank never gets a live worker', async () => {
    const { client } = await start({ leaseS: 0.2, heartbeatS: 0.05 });
    await client.submitPlan(makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] }));
    await client.begin('v1');
    await until(async () => (await client.status()).updates[0]?.state === 'aborted', 'the abort');
    expect((await client.status()).updates[0]?.reason).toContain('rank 0 has had no live worker for 0.6 s');
  });

  it('makes the committed manifest current and serves it', async () => {
    const { client } = await start();
    await join(client, [0], 1);
    const m0 = { schema: 'hotweights.manifest', version: 'v0', digest: 'sha256:aa', files: [] };
    await client.setCurrentManifest(m0);
    expect(await client.getCurrentManifest()).toEqual({ version: 'v0', manifest: m0 });
    const plan = makePlan({ version: 'v1', prev: 'v0', buckets: [{ id: 0, consumers: [0] }] });
    const m1 = { schema: 'hotweights.manifest', version: 'v1', digest: 'sha256:bb', files: [] };
    await client.submitPlan(plan, m1);
    await client.begin('v1');
    // The active plan is served from one cached serialisation; both shapes must match.
    const first = await client.getPlan('v1', { withManifest: true });
    expect(first).toEqual({ plan, state: 'begun', begun_at: expect.any(Number), manifest: m1 });
    expect(await client.getPlan()).toEqual({ plan, state: 'begun', begun_at: first.begun_at });
    await precommitAs(client, { version: 'v1', rank: 0, digest: expectedDigest(plan, 0), workerId: 'w0' });
    expect(await client.getPlan('v1', { withManifest: true })).toMatchObject({
      plan,
      state: 'committed',
      manifest: m1,
    });
    expect(await client.getCurrentManifest()).toEqual({ version: 'v1', manifest: m1 });
    const bad = await refusal(client.setCurrentManifest({ schema: 'nope', version: 'x' }));
    expect(bad.code).toBe('HW_COORD_BAD_PARAMS');
    expect(bad.message).toContain('manifest.schema');
  });

  it('tracks which ranks hold which buckets for late joiners', async () => {
    const { client } = await start();
    await registerAs(client, { rank: 0, world_size: 3, worker_id: 'w0' });
    await registerAs(client, { rank: 1, world_size: 3, worker_id: 'w1' });
    const plan = makePlan({
      version: 'v1',
      buckets: [
        { id: 0, consumers: [0, 1, 2] },
        { id: 1, consumers: [0, 2] },
      ],
    });
    await client.submitPlan(plan);
    await client.begin('v1');
    await reportHaveAs(client, 'v1', 0, [0, 1]);
    await reportHaveAs(client, 'v1', 1, [0]);
    expect((await client.whoHas('v1')).holders).toEqual({ 0: [0, 1], 1: [0] });
    expect((await client.whoHas('v1', [1, 7])).holders).toEqual({ 1: [0], 7: [] });
    expect((await refusal(reportHaveAs(client, 'v1', 0, [9]))).message).toContain(
      'bucket 9 is not in the plan',
    );
    expect((await refusal(reportHaveAs(client, 'v0', 0, [0]))).message).toContain(
      'not the update in progress',
    );
  });
});

describe('transfer handles', () => {
  it('keeps a handle for the other consumers after one acks, per node, until TTL', async () => {
    const registry = createMetricsRegistry();
    const { client } = await start({ handleTtlS: 30, metricsRegistry: registry });
    await client.postHandle({ nodeId: 'n1', key: 'v1/b0', handle: { ipc: 'abc' }, consumers: ['r0', 'r1'] });
    expect((await client.getHandle('n1', 'v1/b0')).handle).toEqual({ ipc: 'abc' });
    expect((await client.getHandle('n2', 'v1/b0')).handle).toBeNull(); // other node: not visible
    expect(await client.ackHandle('n1', 'v1/b0', 'r0')).toEqual({ removed: false, remaining: ['r1'] });
    expect((await client.getHandle('n1', 'v1/b0')).handle).toEqual({ ipc: 'abc' }); // still there for r1
    expect((await refusal(client.ackHandle('n1', 'v1/b0', 'r9'))).message).toContain('not a consumer');
    expect(await client.ackHandle('n1', 'v1/b0', 'r1')).toEqual({ removed: true, remaining: [] });
    expect((await client.getHandle('n1', 'v1/b0')).handle).toBeNull();

    await client.postHandle({ nodeId: 'n1', key: 'short', handle: 1, ttlS: 0.1 });
    await until(async () => (await client.getHandle('n1', 'short')).handle === null, 'the TTL');
    await until(
      async () => (await registry.metrics()).includes('hotweights_handles_expired_total 1'),
      'the reaper',
    );
    const text = await registry.metrics();
    expect(text).toContain('hotweights_handles_posted_total 2');
    expect(text).toContain('hotweights_handles_acked_total 2');
    expect(text).toContain('hotweights_handles_active 0');
    expect(text).toMatch(/hotweights_coord_rpc_seconds_count\{method="post_handle"\} 2/);
  });
});

describe('security', () => {
  const TOKEN = 's3cret-token-value';

  it('refuses mutating calls without the right token and never echoes it', async () => {
    const registry = createMetricsRegistry();
    const logs: string[] = [];
    const { server } = await start({ token: TOKEN, metricsRegistry: registry, log: (l) => logs.push(l) });
    const events: CoordEvent[] = [];
    const sub = new EventSubscriber(server.pubEndpoint, (e) => events.push(e));
    cleanups.push(() => sub.close());
    const anonymous = new CoordinatorClient(server.endpoint, { timeoutMs: 5000 });
    const wrong = new CoordinatorClient(server.endpoint, { token: `${TOKEN}x`, timeoutMs: 5000 });
    const right = new CoordinatorClient(server.endpoint, { token: TOKEN, timeoutMs: 5000 });
    cleanups.push(
      () => anonymous.close(),
      () => wrong.close(),
      () => right.close(),
    );

    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    for (const c of [anonymous, wrong]) {
      for (const call of [c.submitPlan(plan), c.begin('v1'), c.call('register', { rank: 0 }), c.abort()]) {
        const err = await refusal(call);
        expect(err.code).toBe('HW_COORD_UNAUTHORIZED');
        expect(err.message).not.toContain(TOKEN);
      }
    }
    // Reading is allowed without the token.
    expect((await anonymous.status()).auth).toBe(true);
    await join(right, [0], 1);
    await right.submitPlan(plan);
    await right.begin('v1');
    await precommitAs(right, { version: 'v1', rank: 0, digest: expectedDigest(plan, 0), workerId: 'w0' });
    await until(() => events.some((e) => e.event === 'commit'), 'the commit event', 5000);
    const everything = [
      JSON.stringify(await anonymous.status()),
      JSON.stringify(events),
      logs.join('\n'),
      await registry.metrics(),
    ].join('\n');
    expect(everything).not.toContain(TOKEN);
    expect(everything).toContain('v1');
    // Each refusal is logged with its method, peer and reason.
    expect(logs.join('\n')).toMatch(/refused submit_plan from peer [0-9a-f]+: HW_COORD_UNAUTHORIZED/);
  });

  it('takes requests over one frame in parts, up to maxRequestBytes, from token holders only', async () => {
    const { client } = await start({ token: TOKEN, maxRequestBytes: 2 * 1024 * 1024 });
    const plan = (version: string, n: number) =>
      makePlan({ version, buckets: Array.from({ length: n }, (_, id) => ({ id, consumers: [0] })) });
    const anonymous = new CoordinatorClient(client.endpoint, { timeoutMs: 5000 });
    cleanups.push(() => anonymous.close());
    expect((await refusal(anonymous.submitPlan(plan('v1', 3000)))).code).toBe('HW_COORD_UNAUTHORIZED');
    expect((await refusal(client.submitPlan(plan('v1', 9000)))).code).toBe('HW_COORD_TOO_LARGE');
    // ~1 MB: four parts.
    expect((await client.submitPlan(plan('v1', 3000))).buckets).toBe(3000);
    expect((await client.getPlan('v1')).plan.buckets).toHaveLength(3000);
  });
});

describe('malformed requests', () => {
  it('answers garbage with errors, survives thousands of random frames, then serves an update', async () => {
    const { server, client } = await start({ maxRequestBytes: 64 * 1024 });
    const raw = new Dealer({ linger: 0 });
    raw.connect(server.endpoint);
    cleanups.push(() => raw.close());
    const ask = async (
      frames: Array<Buffer | string>,
    ): Promise<{ id: unknown; error?: { code: string; message: string } }> => {
      await raw.send(frames);
      const [reply] = await raw.receive();
      return JSON.parse(String(reply));
    };
    expect((await ask(['not json'])).error?.code).toBe('HW_COORD_BAD_REQUEST');
    expect((await ask(['[1,2]'])).error?.message).toContain('JSON object');
    expect((await ask(['{"method":"status"}'])).error?.message).toContain('request.id');
    expect(await ask(['{"id":7,"method":"launch_missiles"}'])).toMatchObject({
      id: 7,
      error: { code: 'HW_COORD_UNKNOWN_METHOD' },
    });
    expect(await ask(['{"id":8,"method":"begin","params":{"version":42}}'])).toMatchObject({
      id: 8,
      error: { code: 'HW_COORD_BAD_PARAMS', message: 'begin: params.version: expected a string (got 42)' },
    });
    expect(await ask(['{"id":9,"method":"status","params":[]}'])).toMatchObject({
      id: 9,
      error: { code: 'HW_COORD_BAD_REQUEST' },
    });
    expect((await ask(['a', 'b', 'c'])).error?.message).toContain('expected 1 frame');
    expect((await ask([Buffer.alloc(64 * 1024 + 10, 0x7b)])).error?.code).toBe('HW_COORD_TOO_LARGE');
    // The REQ-style envelope ('' then the body) is answered in kind.
    await raw.send(['', '{"id":10,"method":"ping"}']);
    const [empty, body] = await raw.receive();
    expect(empty?.length).toBe(0);
    expect(JSON.parse(String(body))).toMatchObject({ id: 10, result: { pong: true } });

    // Thousands of random frames (random bytes, random frame counts); count the replies.
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const N = 3000;
    for (let i = 0; i < N; i++) {
      const frames = Array.from({ length: 1 + (rand() % 3) }, () => {
        const b = Buffer.alloc(rand() % 300);
        for (let j = 0; j < b.length; j++) b[j] = rand() & 0xff;
        return b;
      });
      await raw.send(frames);
    }
    let replies = 0;
    while (replies < N) {
      const frames = await raw.receive();
      const last = frames[frames.length - 1];
      const reply = JSON.parse(String(last)) as { error?: unknown };
      if (reply.error) replies++;
    }
    expect(replies).toBe(N);

    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    await join(client, [0], 1);
    await client.submitPlan(plan);
    await client.begin('v1');
    expect(
      (await precommitAs(client, { version: 'v1', rank: 0, digest: expectedDigest(plan, 0), workerId: 'w0' }))
        .state,
    ).toBe('committed');
  });
});
