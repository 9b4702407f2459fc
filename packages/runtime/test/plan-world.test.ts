/** checkPlanWorld: the one check that a plan fits the world it is about to run in. */
import { ConfigError } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { checkPlanWorld } from '../src/plan-world.js';
import { makePlan } from './plan-fixture.js';

const files = { 'a.bin': Buffer.alloc(100, 1), 'b.bin': Buffer.alloc(100, 2) };

describe('checkPlanWorld', () => {
  it('accepts a plan in the world it was made for, and a plan that records no world when its ranks fit', () => {
    const plan = { ...makePlan('/ckpt', files, { consumers: () => [0, 1] }), world_size: 2 };
    expect(() => checkPlanWorld(plan, { worldSize: 2, rank: 1 })).not.toThrow();
    expect(() => checkPlanWorld({ ...plan, world_size: null }, { worldSize: 3, rank: 2 })).not.toThrow();
  });

  it('names the world a plan was made for and the re-plan that fixes it', () => {
    const plan = { ...makePlan('/ckpt', files), world_size: 1 };
    const err = (() => {
      try {
        checkPlanWorld(plan, { worldSize: 3, source: 'p.json' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      'plan p.json was made for world size 1, but this job has 3 rank(s): re-plan with `hotweights plan … --world-size 3`, or run it with world size 1',
    );
    // Routes that narrow the world (a late rank reading alone) only need their ranks to fit.
    expect(() => checkPlanWorld(plan, { worldSize: 3 }, { exactWorldSize: false })).not.toThrow();
  });

  it('refuses a rank, a source or a consumer outside the world', () => {
    const plan = makePlan('/ckpt', files, { consumers: () => [0, 3], sourceRank: 0 });
    expect(() => checkPlanWorld(plan, { worldSize: 2, rank: 2 })).toThrowError(/rank 2 is not in 0\.\.1/);
    expect(() => checkPlanWorld(plan, { worldSize: 2 })).toThrowError(
      /bucket 0 is consumed by rank 3, outside the world of 2 ranks .*--world-size 2/,
    );
    const far = makePlan('/ckpt', files, { sourceRank: 4 });
    expect(() => checkPlanWorld(far, { worldSize: 2 })).toThrowError(
      /source rank 4 is outside the world of 2 ranks: re-plan with `hotweights plan … --world-size 2` --source-rank/,
    );
  });
});
