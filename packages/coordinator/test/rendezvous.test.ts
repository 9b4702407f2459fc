/**
 * The update's rendezvous RPC on a real server over real ZeroMQ: values come back only once every
 * rank of the plan's world has posted, only a rank's live worker may post for it, a worker that
 * waits past the deadline gets an error naming the ranks that never came, and the rounds end with
 * the update.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorClient, CoordinatorServer } from '../src/index.js';
import { updateExchange } from '../src/meet.js';
import { leaseKeyOf, registerAs } from './leases.js';
import { makePlan } from './plans.js';
import { refusal } from './refusal.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function begun(worldSize: number) {
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
  });
  cleanups.push(() => server.close());
  const client = new CoordinatorClient(server.endpoint, { timeoutMs: 5000 });
  cleanups.push(() => client.close());
  for (let rank = 0; rank < worldSize; rank++) {
    await registerAs(client, { rank, world_size: worldSize, worker_id: `w${rank}`, host: 'h', pid: 1 });
  }
  const consumers = Array.from({ length: worldSize }, (_, r) => r);
  await client.submitPlan(makePlan({ version: 'v1', buckets: [{ id: 0, consumers }], worldSize }));
  const update = await client.begin('v1', { autoCommit: false });
  const lease = (rank: number) => ({ workerId: `w${rank}`, leaseKey: leaseKeyOf(`w${rank}`) ?? '' });
  const post = (rank: number, value: string, round = 'ucx') =>
    client.rendezvous({
      version: 'v1',
      begunAt: update.begun_at ?? 0,
      round,
      rank,
      value,
      lease: lease(rank),
    });
  return { client, update, lease, post };
}

describe('the rendezvous of an update', () => {
  it('hands every rank the full table once all have posted, and names who is missing until then', async () => {
    const { post } = await begun(3);
    expect(await post(0, 'a')).toEqual({ round: 'ucx', values: null, missing: [1, 2] });
    expect(await post(2, 'c')).toEqual({ round: 'ucx', values: null, missing: [1] });
    // Rounds are separate: node ids do not count as addresses.
    expect((await post(1, 'node-b', 'nodes')).missing).toEqual([0, 2]);
    expect(await post(1, 'b')).toEqual({ round: 'ucx', values: ['a', 'b', 'c'], missing: [] });
    // Posting again (a poll) reads the same table; a restarted rank's new value replaces its old.
    expect((await post(0, 'a2')).values).toEqual(['a2', 'b', 'c']);
  });

  it("refuses a post for a rank by anyone but its live worker, or for an update that isn't running", async () => {
    const { client, update, post, lease } = await begun(2);
    const stranger = await refusal(
      client.rendezvous({
        version: 'v1',
        begunAt: update.begun_at ?? 0,
        round: 'ucx',
        rank: 1,
        value: 'x',
        lease: lease(0),
      }),
    );
    expect(stranger.code).toBe('HW_COORD_NOT_HOLDER');
    expect(stranger.message).toContain('rank 1 is not held by w0');
    const stale = await refusal(
      client.rendezvous({ version: 'v1', begunAt: 1, round: 'ucx', rank: 0, value: 'x', lease: lease(0) }),
    );
    expect(stale.message).toContain('not the update in progress');
    await client.abort({ version: 'v1', reason: 'test' });
    expect((await refusal(post(0, 'a'))).message).toContain('rendezvous v1: not the update in progress');
  });

  it('fails a waiting worker at its deadline naming the ranks that never posted', async () => {
    const { client, update, lease } = await begun(3);
    const exchange = (rank: number, timeoutS: number, signal = new AbortController().signal) =>
      updateExchange({
        client,
        version: 'v1',
        begunAt: update.begun_at ?? 0,
        rank,
        lease: () => lease(rank),
        timeoutS,
        signal,
      });
    const err = await refusal(exchange(1, 0.3)('ucx', 'b'));
    expect(err.code).toBe('HW_COORD_RENDEZVOUS');
    expect(err.message).toBe(
      "update v1: rank(s) 0, 2 never reached the 'ucx' rendezvous within 0.3 s (is a worker running for each? HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S)",
    );
    // An abort ends the wait at once with its reason.
    const ctrl = new AbortController();
    const waiting = exchange(0, 60, ctrl.signal)('ucx', 'a');
    ctrl.abort(new Error('update aborted'));
    await expect(waiting).rejects.toThrow('update aborted');
    // Everyone there: each rank reads the same table.
    const all = await Promise.all([0, 1, 2].map((r) => exchange(r, 10)('ucx', `addr${r}`)));
    for (const table of all) expect(table).toEqual(['addr0', 'addr1', 'addr2']);
  });
});
