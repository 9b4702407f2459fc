/**
 * What a process loading from DIR/current relies on: the switch never leaves `current` missing or
 * dangling, old versions are pruned (only the live and the previous one are kept), and a crashed
 * preparation of ours goes away while other tools' entries stay.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import type { Manifest, Plan } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, writeCheckpoint } from './checkpoints.js';
import { deployScratch } from './deploy.js';

const { work, deploy } = deployScratch('hw-dir-switch-');

/**
 * A separate process that reads DIR/current/config.json in a loop until told to stop (stdin
 * closes) and then prints how many reads it made and how many found no file. A switch that
 * removed `current` and then linked it again would show up as misses.
 */
const READER = `
const fs = require('node:fs');
const file = process.argv[1];
let reads = 0, misses = 0, stop = false;
process.stdin.on('end', () => { stop = true; });
process.stdin.resume();
process.stdout.write('ready\\n');
(function loop() {
  for (let i = 0; i < 200; i++) {
    reads++;
    try { fs.readFileSync(file); } catch { misses++; }
  }
  if (stop) process.stdout.write(JSON.stringify({ reads, misses }) + '\\n');
  else setImmediate(loop);
})();
`;

describe('DirectoryAdapter: switch and prune', { timeout: 180_000 }, () => {
  const ckpt = (v: number) => join(work, `ckpt-v${v}`);
  const manifests: Manifest[] = [];
  const plans: Plan[] = [];

  beforeAll(async () => {
    const w = randomTensors(['w'], 16);
    for (let v = 0; v < 3; v++) {
      await writeCheckpoint(
        ckpt(v),
        { 'model.safetensors': { ...w, b: randomTensors(['b'], 16).b as (typeof w)[string] } },
        { 'config.json': `{"v":${v}}` },
      );
      manifests.push(await publish({ checkpoint: ckpt(v), version: `v${v}`, modelId: 'switch/model' }));
      plans.push(
        createPlan({
          prev: v === 0 ? null : (manifests[v - 1] as Manifest),
          next: manifests[v] as Manifest,
          checkpointRoot: ckpt(v),
          nextManifestPath: null,
          bucketBytes: 8192,
        }),
      );
    }
  });

  it('a reader of current/ never finds it missing while versions are switched', async () => {
    const target = join(work, 'switch');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, plans[0] as Plan, manifests[0] as Manifest);
    await deploy(adapter, plans[1] as Plan, manifests[1] as Manifest);
    const reader = spawn(process.execPath, ['-e', READER, join(target, 'current/config.json')], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    reader.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        reader.stdout.on('data', () => out.includes('ready') && resolve());
        reader.on('exit', (code) => reject(new Error(`reader exited (${code}) before it started`)));
      });
      // Each rollback flips current between v1 and v0 (and previous the other way).
      const seen = new Set<string>();
      for (let i = 0; i < 400; i++) {
        await adapter.rollback();
        seen.add(readFileSync(join(target, 'current/config.json'), 'utf8'));
      }
      expect([...seen].sort()).toEqual(['{"v":0}', '{"v":1}']);
      reader.stdin.end();
      await new Promise((resolve) => reader.on('exit', resolve));
    } finally {
      reader.kill();
    }
    const result = JSON.parse(out.split('\n')[1] as string) as { reads: number; misses: number };
    expect(result.reads).toBeGreaterThan(0);
    expect(result.misses).toBe(0);
    // The temporary links of the switch are gone.
    expect(readdirSync(target).sort()).toEqual(['.hotweights', 'current', 'previous', 'versions']);
  });

  it('keeps only the live and the previous version: older ones and their records are pruned', async () => {
    const target = join(work, 'prune');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, plans[0] as Plan, manifests[0] as Manifest);
    await deploy(adapter, plans[1] as Plan, manifests[1] as Manifest);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
    // Someone else's file in the meta folder and folder in versions/: never ours to remove.
    mkdirSync(join(target, 'versions/notes'));
    writeFileSync(join(target, '.hotweights/README'), 'theirs');
    await deploy(adapter, plans[2] as Plan, manifests[2] as Manifest);
    expect(await adapter.currentVersion()).toBe('v2');
    expect(await adapter.previousVersion()).toBe('v1');
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['notes', 'v1', 'v2']);
    expect(await adapter.hasVersion('v0')).toBe(false);
    expect(readdirSync(join(target, '.hotweights')).sort()).toEqual([
      'README',
      'partials',
      'v1.json',
      'v1.manifest.json',
      'v2.json',
      'v2.manifest.json',
    ]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(readFileSync(join(target, 'current/config.json'), 'utf8')).toBe('{"v":2}');
    expect(readFileSync(join(target, 'previous/config.json'), 'utf8')).toBe('{"v":1}');
  });

  it('after a crash, removes the preparation it recorded and keeps an unrecorded look-alike', async () => {
    const target = join(work, 'crash');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, plans[0] as Plan, manifests[0] as Manifest);
    // What a process killed while preparing v1 leaves: the half-written folder and its record.
    const ours = 'v1.partial-4242-0c0ffe';
    mkdirSync(join(target, 'versions', ours, 'sub'), { recursive: true });
    writeFileSync(join(target, 'versions', ours, 'sub/model.safetensors'), 'half');
    writeFileSync(join(target, '.hotweights/partials', ours), '4242\n');
    // Same shape of name, no record: not ours.
    const theirs = 'v1.partial-4243-0d0d0d';
    mkdirSync(join(target, 'versions', theirs));
    // This process's own partial name (another preparation here may be running): kept.
    const running = `v1.partial-${process.pid}-0e0e0e`;
    mkdirSync(join(target, 'versions', running));
    writeFileSync(join(target, '.hotweights/partials', running), `${process.pid}\n`);
    await deploy(adapter, plans[1] as Plan, manifests[1] as Manifest);
    expect(existsSync(join(target, 'versions', ours))).toBe(false);
    expect(existsSync(join(target, '.hotweights/partials', ours))).toBe(false);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual([running, theirs, 'v0', 'v1'].sort());
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([running]);
  });
});
