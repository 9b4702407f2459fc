/**
 * stageAtomically / stagePlan: the bytes are written beside the target while the caller goes on,
 * and reach the target only at commit; discard leaves the target as it was and no temp file.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stagePlan } from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { stageAtomically } from '../src/atomic-write.js';
import { tempDir } from './fixtures.js';
import { jsColumnBytes, textCases } from './plan-text-fixtures.js';

const tmp = tempDir('staged-write');
afterAll(tmp.cleanup);

describe('staged atomic writes', () => {
  it('writes every chunk in order at commit, and nothing at discard', async () => {
    const target = join(tmp.path, 'out', 'file.bin');
    const big = Buffer.alloc(3 << 20, 7);
    const staged = stageAtomically(target, [
      Buffer.from('head'),
      big,
      new Uint8Array(0),
      Buffer.from('tail'),
    ]);
    // Written beside the target (the directory is made), not at it, until commit.
    expect(readdirSync(join(tmp.path, 'out')).map((f) => f.startsWith('.file.bin.'))).toEqual([true]);
    await staged.commit();
    expect(
      Buffer.compare(readFileSync(target), Buffer.concat([Buffer.from('head'), big, Buffer.from('tail')])),
    ).toBe(0);
    expect(readdirSync(join(tmp.path, 'out'))).toEqual(['file.bin']);

    const dropped = stageAtomically(target, [Buffer.from('other bytes')]);
    await dropped.discard();
    expect(readFileSync(target).length).toBe(big.length + 8);
    expect(readdirSync(join(tmp.path, 'out'))).toEqual(['file.bin']);
  });

  it('names the target when it cannot write there', () => {
    const file = join(tmp.path, 'a-file');
    writeFileSync(file, 'x');
    expect(() => stageAtomically(join(file, 'plan.json'), [Buffer.from('x')])).toThrow(
      expect.objectContaining({
        code: 'HW_WRITE',
        message: expect.stringContaining(`cannot write ${join(file, 'plan.json')}`),
      }),
    );
  });

  it('stagePlan commits the plan file writePlan writes', async () => {
    const { plan } = (await textCases(tmp.path))[0] as { plan: Parameters<typeof stagePlan>[0] };
    const out = join(tmp.path, 'staged.plan.json');
    await stagePlan(plan, out).commit();
    expect(Buffer.compare(readFileSync(out), jsColumnBytes(plan).bytes)).toBe(0);
  });
});
