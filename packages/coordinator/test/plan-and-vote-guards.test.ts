/**
 * The two checks that keep a coordinator from committing something other than what was planned:
 * the plan's digest on `submit_plan`, and the per-rank precommit digest. Expected digests come
 * from an independent implementation (Python's hashlib and json, run here), and wrong digests are
 * the real digests of plans that differ in exactly one field, so a digest that ignored a field
 * would be caught.
 */
import { execFileSync } from 'node:child_process';
import type { Plan, PlanBucket } from '@hotweights/core';
import { computePlanDigest } from '@hotweights/manifest';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorClient, CoordinatorServer, expectedDigest } from '../src/index.js';
import { precommitAs, registerAs } from './leases.js';
import { makePlan } from './plans.js';
import { refusal } from './refusal.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function start() {
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
  });
  cleanups.push(() => server.close());
  const client = new CoordinatorClient(server.endpoint, { timeoutMs: 5000 });
  cleanups.push(() => client.close());
  return client;
}

/** `plan` with one bucket's first item changed, digested again: a valid plan of its own. */
function withItem(plan: Plan, bucketId: number, change: Record<string, unknown>): Plan {
  const buckets: PlanBucket[] = plan.buckets.map((b) =>
    b.bucket_id !== bucketId
      ? b
      : { ...b, items: b.items.map((it, i) => (i === 0 ? { ...it, ...change } : it)) },
  );
  const { digest: _old, ...body } = { ...plan, buckets };
  return { ...body, digest: computePlanDigest(body) };
}

/**
 * The precommit digest of `rank`'s share of `plan`, computed by Python from the documented
 * definition: sha256 over the canonical JSON (sorted keys, no spaces) of
 * {"version", "buckets": [[bucket_id, size, [[key, hash, offset, nbytes], ...]], ...]} for the
 * buckets the rank consumes, ordered by id.
 */
function pythonDigest(plan: Plan, rank: number): string {
  const script = [
    'import hashlib, json, sys',
    'plan = json.load(sys.stdin); rank = int(sys.argv[1])',
    "mine = sorted((b for b in plan['buckets'] if rank in b['consumer_ranks']), key=lambda b: b['bucket_id'])",
    "parts = [[b['bucket_id'], b['size'], [[i['key'], i['hash'], i['offset'], i['nbytes']] for i in b['items']]] for b in mine]",
    "doc = json.dumps({'version': plan['version'], 'buckets': parts}, sort_keys=True, separators=(',', ':'))",
    "print('sha256:' + hashlib.sha256(doc.encode()).hexdigest())",
  ].join('\n');
  return execFileSync('python3', ['-c', script, String(rank)], {
    input: JSON.stringify(plan),
    encoding: 'utf8',
  }).trim();
}

describe('submit_plan checks the plan against its digest', () => {
  it('refuses a plan edited after it was made (any field), and keeps nothing of it', async () => {
    const client = await start();
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [0] }] });
    const edits: Array<[string, Plan]> = [
      [
        'an item hash',
        {
          ...plan,
          buckets: [
            {
              ...plan.buckets[0],
              items: [{ ...plan.buckets[0].items[0], hash: `sha256:${'1'.repeat(64)}` }],
            },
          ],
        } as Plan,
      ],
      ['a consumer rank', { ...plan, buckets: [{ ...plan.buckets[0], consumer_ranks: [0, 1] }] } as Plan],
      ['the previous version', { ...plan, prev_version: 'v0' }],
    ];
    for (const [what, edited] of edits) {
      const refused = await refusal(client.submitPlan(edited));
      expect(refused.code, what).toBe('HW_COORD_BAD_PARAMS');
      expect(refused.message, what).toContain("the plan's content does not match its digest");
    }
    expect((await client.status()).updates).toEqual([]);
    // The same plan, unedited, is taken.
    expect(await client.submitPlan(plan)).toMatchObject({ version: 'v1', state: 'planned' });
  });
});

describe('precommit digests', () => {
  const plan = makePlan({
    version: 'v1',
    buckets: [
      { id: 0, consumers: [0, 1] },
      { id: 1, consumers: [0] },
      { id: 2, consumers: [1] },
    ],
  });

  it('match an independent implementation of their definition', () => {
    for (const rank of [0, 1]) expect(expectedDigest(plan, rank)).toBe(pythonDigest(plan, rank));
    // Ranks with different shares have different digests.
    expect(expectedDigest(plan, 0)).not.toBe(expectedDigest(plan, 1));
  });

  it('change with each field of what a rank staged, and the coordinator refuses each one', async () => {
    const client = await start();
    for (const rank of [0, 1])
      await registerAs(client, { rank, world_size: 2, worker_id: `w${rank}`, host: 'h', pid: 1 });
    await client.submitPlan(plan);
    await client.begin('v1', { autoCommit: false });
    const { digest: _d, ...body } = plan;
    const others: Array<[string, Plan]> = [
      ['an item hash', withItem(plan, 1, { hash: `sha256:${'7'.repeat(64)}` })],
      ['an item offset', withItem(plan, 1, { offset: 8 })],
      ['an item size', withItem(plan, 1, { nbytes: 4 })],
      ['an item key', withItem(plan, 1, { key: 'other:0' })],
      [
        'a bucket size',
        { ...plan, buckets: plan.buckets.map((b) => (b.bucket_id === 1 ? { ...b, size: 16 } : b)) },
      ],
      ['one bucket fewer', { ...plan, buckets: plan.buckets.filter((b) => b.bucket_id !== 1) }],
      ['another version', { ...body, version: 'v9', digest: '' } as Plan],
    ];
    for (const [what, other] of others) {
      const digest = expectedDigest(other, 0);
      expect(digest, what).not.toBe(expectedDigest(plan, 0));
      const refused = await refusal(precommitAs(client, { version: 'v1', rank: 0, digest, workerId: 'w0' }));
      expect(refused.code, what).toBe('HW_COORD_DIGEST_MISMATCH');
    }
    const view = await precommitAs(client, {
      version: 'v1',
      rank: 0,
      digest: pythonDigest(plan, 0),
      workerId: 'w0',
    });
    expect(view.precommitted_ranks).toEqual([0]);
  });
});
