import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, PathEscapeError, VerificationError } from '@hotweights/core';
import { createMetricsRegistry, HostStaging } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, describe, expect, it } from 'vitest';
import { ReplicationWindow } from '../src/replication-window.js';
import { planGroups, replicateRank } from '../src/replicator.js';
import { makePlan, writeCheckpoint } from './plan-fixture.js';
import { runRanks } from './spawn-ranks.js';

const RANK_SCRIPT = fileURLToPath(new URL('./fixtures/replicate-rank.ts', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'hw-replicator-test-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-replicator-test-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

function checkpoint(name: string) {
  const root = join(work, name);
  // Odd sizes, a file larger than a bucket (split into parts), a nested path and an empty file.
  const files = writeCheckpoint(root, {
    'model-00001.safetensors': 300_001,
    'model-00002.safetensors': 70_000,
    'sub/config.json': 517,
    'empty.bin': 0,
  });
  return { root, files };
}

describe('replicateRank in one process', { timeout: 60_000 }, () => {
  it('stages and verifies every bucket for a world of one, with metrics', async () => {
    const { root, files } = checkpoint('one');
    const plan = makePlan(root, files, { bucketBytes: 64 * 1024 });
    const staging = await HostStaging.open({ dir: mkdtempSync(join(shm, 'one-')) });
    const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config: loadConfig({}) });
    const registry = createMetricsRegistry();
    const progress: number[] = [];
    const report = await replicateRank({
      plan,
      rank: 0,
      worldSize: 1,
      transport,
      staging,
      config: loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '2' }),
      metrics: registry,
      onProgress: (p) => progress.push(p.bucketsDone),
    });
    expect(report.role).toBe('source+consumer');
    expect(report.bucketsLanded).toBe(plan.buckets.length);
    expect(report.itemsVerified).toBe(4);
    expect(progress).toEqual(plan.buckets.map((_, i) => i + 1));
    // Byte-compare the staged item bytes with the checkpoint.
    for (const b of plan.buckets) {
      const staged = staging.get(plan.version, b.bucket_id);
      for (const it of b.items) {
        const want = (files[it.uri] as Buffer).subarray(it.file_offset, it.file_offset + it.nbytes);
        expect(
          Buffer.compare(Buffer.from(staged?.bytes.subarray(it.offset, it.offset + it.nbytes) ?? []), want),
        ).toBe(0);
      }
    }
    const text = await registry.metrics();
    expect(text).toContain(`hotweights_buckets_total{role="land"} ${plan.buckets.length}`);
    expect(text).toContain(
      `hotweights_bytes_replicated_total{role="land"} ${plan.buckets.reduce((n, b) => n + b.size, 0)}`,
    );
    expect(text).toMatch(/hotweights_last_bucket_size_bytes \d+/);
    expect(text).toContain('hotweights_window_buckets 2');
    await staging.close();
    await transport.close();
  });

  it('refuses item paths that leave the checkpoint root, before landing anything', async () => {
    const { root, files } = checkpoint('escape');
    const plan = makePlan(root, files);
    const evil = {
      ...plan,
      buckets: plan.buckets.map((b, i) =>
        i === 0
          ? { ...b, items: b.items.map((it, j) => (j === 0 ? { ...it, uri: '../escape-secret' } : it)) }
          : b,
      ),
    };
    writeFileSync(join(work, 'escape-secret'), 'secret');
    const staging = await HostStaging.open({ dir: mkdtempSync(join(shm, 'esc-')) });
    const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config: loadConfig({}) });
    await expect(
      replicateRank({ plan: evil, rank: 0, worldSize: 1, transport, staging, config: loadConfig({}) }),
    ).rejects.toBeInstanceOf(PathEscapeError);
    expect(staging.list(plan.version)).toEqual([]);
    await staging.close();
  });

  it('names the item and the rank when the checkpoint changed after publish, and releases staging', async () => {
    const { root, files } = checkpoint('changed');
    const plan = makePlan(root, files);
    writeFileSync(join(root, 'sub/config.json'), Buffer.alloc(517, 1));
    const dir = mkdtempSync(join(shm, 'chg-'));
    const staging = await HostStaging.open({ dir });
    const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config: loadConfig({}) });
    const err = await replicateRank({
      plan,
      rank: 0,
      worldSize: 1,
      transport,
      staging,
      config: loadConfig({}),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect((err as Error).message).toMatch(
      /^rank 0: item sub\/config\.json:0 \(sub\/config\.json, bucket \d+\) does not match/,
    );
    expect(staging.list(plan.version)).toEqual([]);
    expect(readdirSync(dir).filter((n) => n.includes('.v1.'))).toEqual([]);
    await staging.close();
  });

  it('rejects a plan whose consumers lie outside the world', async () => {
    const { root, files } = checkpoint('world');
    const plan = makePlan(root, files, { consumers: () => [0, 5] });
    const staging = await HostStaging.open({ dir: mkdtempSync(join(shm, 'w-')) });
    const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config: loadConfig({}) });
    await expect(
      replicateRank({ plan, rank: 0, worldSize: 2, transport, staging, config: loadConfig({}) }),
    ).rejects.toThrowError(/consumed by rank 5, outside the world of 2 ranks/);
    expect(planGroups(plan)).toEqual([[0, 5]]);
    await staging.close();
  });
});

describe('ReplicationWindow', () => {
  it('caps buckets and bytes, admits in order, and always admits one bucket', async () => {
    const w = new ReplicationWindow(2, 100);
    await w.acquire(60);
    const order: string[] = [];
    const big = w.acquire(60).then(() => order.push('big'));
    const small = w.acquire(10).then(() => order.push('small'));
    await Promise.resolve();
    expect(order).toEqual([]);
    w.release(60);
    await big;
    await small;
    expect(order).toEqual(['big', 'small']);
    expect(w.inFlightBuckets).toBe(2);
    w.release(60);
    w.release(10);
    await w.acquire(1000);
    expect(w.inFlightBytes).toBe(1000);
  });
});

describe('replicateRank across real rank processes (local transport)', { timeout: 120_000 }, () => {
  function setup(name: string, consumers: (i: number) => number[]) {
    const { root, files } = checkpoint(name);
    const plan = makePlan(root, files, { bucketBytes: 48 * 1024, consumers });
    const planPath = join(work, `${name}.plan.json`);
    writeFileSync(planPath, JSON.stringify(plan));
    const stagingDir = mkdtempSync(join(shm, `${name}-`));
    const rendezvous = join(stagingDir, 'rdv');
    mkdirSync(rendezvous);
    const out = join(work, `${name}-out`);
    return { plan, files, planPath, rendezvous, out, stagingDir };
  }

  it('lands exactly the checkpoint bytes at every consuming rank, and only its buckets', async () => {
    // Buckets 0-6 (the parts of the first file) go to every rank, the rest only to rank 2.
    const s = setup('multi', (i) => (i < 7 ? [0, 1, 2] : [2]));
    expect(s.plan.buckets.length).toBeGreaterThan(7);
    const results = await runRanks(3, RANK_SCRIPT, (r) => [s.planPath, s.rendezvous, String(r), '3', s.out]);
    for (const r of results) {
      expect(r.stderr).toBe('');
      const res = JSON.parse(r.stdout);
      expect(res.ok, res.error).toBe(true);
      const mine = s.plan.buckets.filter((b) => b.consumer_ranks.includes(r.rank));
      expect(res.segments).toBe(mine.length);
      // Byte-compare every landed item with the checkpoint file's range.
      for (const b of s.plan.buckets) {
        for (const it of b.items) {
          const path = join(s.out, `r${r.rank}`, `${it.uri}.part${it.part?.index ?? 0}`);
          if (!b.consumer_ranks.includes(r.rank)) continue;
          const want = (s.files[it.uri] as Buffer).subarray(it.file_offset, it.file_offset + it.nbytes);
          expect(Buffer.compare(readFileSync(path), want), `${path}`).toBe(0);
        }
      }
    }
    expect(readdirSync(join(s.out, 'r1')).length).toBeLessThan(readdirSync(join(s.out, 'r2')).length);
    // No segments left behind by any rank.
    expect(readdirSync(s.stagingDir).filter((n) => n.endsWith('.seg'))).toEqual([]);
  });

  it('catches a corrupted staged byte on one rank; that rank stages nothing and names the item', async () => {
    const s = setup('corrupt', () => [0, 1, 2]);
    const results = await runRanks(3, RANK_SCRIPT, (r) => [
      s.planPath,
      s.rendezvous,
      String(r),
      '3',
      s.out,
      '2',
    ]);
    const bad = JSON.parse((results[2] as { stdout: string }).stdout);
    expect(bad.ok).toBe(false);
    expect(bad.name).toBe('VerificationError');
    expect(bad.error).toMatch(/^rank 2: item .+ does not match its hash/);
    expect(bad.staged).toBe(0);
  });
});
