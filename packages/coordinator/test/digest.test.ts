/**
 * The digests a precommit is checked against and the ranks a commit waits for (digest.ts), against
 * Python's hashlib and json where a digest is defined.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { expectedDigest, requiredRanks, rollbackDigest, stagedDigest } from '../src/index.js';
import { makePlan } from './plans.js';

/** sha256 of Python's canonical JSON (sorted keys, no spaces) of each document. */
function pythonSha(docs: readonly unknown[]): string[] {
  const script = [
    'import hashlib, json, sys',
    'for d in json.load(sys.stdin):',
    "    print('sha256:' + hashlib.sha256(json.dumps(d, sort_keys=True, separators=(',', ':')).encode()).hexdigest())",
  ].join('\n');
  return execFileSync('python3', ['-c', script], { input: JSON.stringify(docs), encoding: 'utf8' })
    .trimEnd()
    .split('\n');
}

describe('precommit digests', () => {
  it('do not depend on the order a worker lists its staged buckets in', () => {
    const plan = makePlan({
      version: 'v1',
      buckets: [2, 0, 10, 1].map((id) => ({ id, consumers: [0] })),
    });
    const byId = [...plan.buckets].sort((a, b) => a.bucket_id - b.bucket_id);
    const doc = {
      version: 'v1',
      buckets: byId.map((b) => [
        b.bucket_id,
        b.size,
        b.items.map((i) => [i.key, i.hash, i.offset, i.nbytes]),
      ]),
    };
    const [want] = pythonSha([doc]);
    expect(stagedDigest('v1', plan.buckets)).toBe(want);
    expect(stagedDigest('v1', [...plan.buckets].reverse())).toBe(want);
    expect(expectedDigest(plan, 0)).toBe(want);
    // The caller's list is left as it was.
    const list = [...plan.buckets];
    stagedDigest('v1', list);
    expect(list.map((b) => b.bucket_id)).toEqual([2, 0, 10, 1]);
  });

  it('of a rollback name both versions', () => {
    const docs = [
      { rollback_to: 'v1', from: 'v2' },
      { rollback_to: 'v1', from: null },
    ];
    expect([rollbackDigest('v1', 'v2'), rollbackDigest('v1', null)]).toEqual(pythonSha(docs));
    expect(rollbackDigest('v1', 'v2')).not.toBe(rollbackDigest('v2', 'v1'));
  });
});

describe('requiredRanks', () => {
  it("is every consumer plus every rank of the plan's world, in numeric order", () => {
    const plan = makePlan({ version: 'v1', buckets: [{ id: 0, consumers: [10, 2] }], worldSize: 3 });
    expect(requiredRanks(plan, [7])).toEqual([0, 1, 2, 10]);
    expect(requiredRanks({ ...plan, world_size: null }, [7])).toEqual([2, 10]);
  });

  it('is the registered ranks when the plan names neither consumers nor a world', () => {
    const empty = makePlan({ version: 'v1', buckets: [] });
    expect(requiredRanks({ ...empty, world_size: null }, [10, 9, 2, 9])).toEqual([2, 9, 10]);
    expect(requiredRanks({ ...empty, world_size: 2 }, [10])).toEqual([0, 1]);
    expect(requiredRanks({ ...empty, world_size: null }, [])).toEqual([]);
  });
});
