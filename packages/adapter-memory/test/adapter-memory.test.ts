import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryAdapter } from '@hotweights/adapter-memory';
import { AdapterError, loadConfig, type Plan } from '@hotweights/core';
import { HostStaging, replicateRank } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, describe, expect, it } from 'vitest';
import { makePlan, writeCheckpoint } from '../../runtime/test/plan-fixture.js';

const work = mkdtempSync(join(tmpdir(), 'hw-memory-adapter-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-memory-adapter-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});
const config = loadConfig({});

async function stage(plan: Plan) {
  const staging = await HostStaging.open({ dir: shm });
  const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  await replicateRank({ plan, rank: 0, worldSize: 1, transport, staging, config });
  return staging;
}

describe('MemoryAdapter', { timeout: 60_000 }, () => {
  it('applies a full plan, then a delta on top of it, and rolls back', async () => {
    const files = writeCheckpoint(join(work, 'a'), { 'a.bin': 100_000, 'b.bin': 3000 });
    const full = makePlan(join(work, 'a'), files, { version: 'v1', bucketBytes: 32 * 1024 });
    const adapter = new MemoryAdapter();
    let staging = await stage(full);
    await adapter.prepare({ plan: full, staging });
    expect(await adapter.currentVersion()).toBeNull();
    await adapter.commit('v1');
    await staging.close();
    expect(Buffer.compare(Buffer.from(adapter.read('a.bin:0') ?? []), files['a.bin'] as Buffer)).toBe(0);

    // v2 changes only b.bin: a delta plan carries b.bin, a.bin is kept from v1.
    const files2 = writeCheckpoint(join(work, 'b'), { 'b.bin': 3000 });
    const delta = { ...makePlan(join(work, 'b'), files2, { version: 'v2' }), prev_version: 'v1' };
    staging = await stage(delta);
    await adapter.prepare({ plan: delta, staging });
    await adapter.commit('v2');
    await staging.close();
    expect(adapter.keys().sort()).toEqual(['a.bin:0', 'b.bin:0']);
    expect(Buffer.compare(Buffer.from(adapter.read('b.bin:0') ?? []), files2['b.bin'] as Buffer)).toBe(0);
    expect(Buffer.compare(Buffer.from(adapter.read('a.bin:0') ?? []), files['a.bin'] as Buffer)).toBe(0);

    expect(await adapter.rollback()).toBe('v1');
    expect(Buffer.compare(Buffer.from(adapter.read('b.bin:0') ?? []), files['b.bin'] as Buffer)).toBe(0);
    // A delta from a version that is not live is refused.
    await expect(adapter.prepare({ plan: { ...delta, prev_version: 'v9' }, staging })).rejects.toBeInstanceOf(
      AdapterError,
    );
  });
});
