import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient, CoordinatorServer, expectedDigest, RedisBackend } from '../src/index.js';
import { heartbeatAs, precommitAs, registerAs, reportHaveAs } from './leases.js';
import { makePlan } from './plans.js';
import { type RedisProcess, startRedis } from './redis-server.js';

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

async function serve(namespace: string) {
  const backend = await RedisBackend.connect({ url: redis.url, namespace });
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
    backend,
    leaseS: 30,
  });
  const client = new CoordinatorClient(server.endpoint, { timeoutMs: 5000 });
  return { server, client };
}

describe('redis backend', () => {
  it('stores values with TTLs and lists them by prefix', async () => {
    const b = await RedisBackend.connect({ url: redis.url, namespace: 'kv-test:' });
    try {
      await b.set('a:1', { x: 1 });
      await b.set('a:2', [2]);
      await b.set('b:1', 'other');
      await b.set('a:short', 1, 50);
      expect(await b.get('a:1')).toEqual({ x: 1 });
      await new Promise((r) => setTimeout(r, 120));
      expect((await b.entries('a:')).sort()).toEqual([
        ['a:1', { x: 1 }],
        ['a:2', [2]],
      ]);
      await b.delete('a:1');
      expect(await b.get('a:1')).toBeUndefined();
    } finally {
      await b.close();
    }
  });

  it('names the Redis it cannot reach without its password', async () => {
    await expect(
      RedisBackend.connect({ url: 'redis://:hunter2@127.0.0.1:1/0', connectTimeoutMs: 500 }),
    ).rejects.toThrow(/cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/);
  });

  it('a restarted coordinator recovers workers, plan, state, precommits and handles', async () => {
    const first = await serve('restart:');
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0, 1] }] });
    const manifest = { schema: 'hotweights.manifest', version: 'v1', digest: 'sha256:11', files: [] };
    await registerAs(first.client, { rank: 0, world_size: 2, worker_id: 'w0' });
    await registerAs(first.client, { rank: 1, world_size: 2, worker_id: 'w1' });
    await first.client.submitPlan(plan, manifest);
    await first.client.begin('v1');
    await precommitAs(first.client, {
      version: 'v1',
      rank: 0,
      digest: expectedDigest(plan, 0),
      workerId: 'w0',
    });
    await reportHaveAs(first.client, 'v1', 0, [0]);
    await first.client.postHandle({ nodeId: 'n', key: 'k', handle: { h: 1 }, consumers: ['a', 'b'] });
    await first.client.ackHandle('n', 'k', 'a');
    first.client.close();
    await first.server.close();

    const second = await serve('restart:');
    try {
      const status = await second.client.status();
      expect(status.backend).toBe('redis');
      expect(status.active).toMatchObject({
        version: 'v1',
        state: 'begun',
        precommitted_ranks: [0],
        missing_ranks: [1],
      });
      expect(status.workers.map((w) => w.worker_id)).toEqual(['w0', 'w1']);
      expect((await second.client.getPlan('v1')).plan.digest).toBe(plan.digest);
      expect((await second.client.whoHas('v1')).holders).toEqual({ 0: [0] });
      expect(await second.client.getHandle('n', 'k')).toMatchObject({ handle: { h: 1 }, acked: ['a'] });
      // Workers keep heartbeating with the ids they had.
      await heartbeatAs(second.client, { worker_id: 'w1' });
      const done = await precommitAs(second.client, {
        version: 'v1',
        rank: 1,
        digest: expectedDigest(plan, 1),
        workerId: 'w1',
      });
      expect(done.state).toBe('committed');
      expect(await second.client.getCurrentManifest()).toEqual({ version: 'v1', manifest });
      expect(status.seq).toBeGreaterThan(0);
      expect((await second.client.status()).seq).toBeGreaterThan(status.seq);
    } finally {
      second.client.close();
      await second.server.close();
    }
  });
});
