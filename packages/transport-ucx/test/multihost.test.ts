/**
 * Three hosts on one machine (network namespaces on a bridge, see netns.ts), one `hotweights
 * replicate` rank per host started the torchrun way (MASTER_ADDR = host 0's address), each
 * committing into its own target over UCX on TCP. A full deployment and a delta land
 * byte-identical everywhere; a link pulled in the middle of an update fails it on every host,
 * naming the peer, with nothing committed; once the link is back the same update succeeds.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan, writeSafetensors } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_PORT, NetnsLab } from './netns.js';
import { jsonLines, REPO_ROOT } from './ranks.js';

// The built CLI: it discovers this package through its dist/ anyway (build first), and starts in
// a fraction of the time tsx needs on a loaded machine (9 rank processes per test).
const CLI = join(REPO_ROOT, 'packages/cli/bin/hotweights.js');
const HOSTS = 3;
const MIB = 1 << 20;
const FILES = ['model-00001.safetensors', 'model-00002.safetensors', 'config.json'];

const work = mkdtempSync(join(tmpdir(), 'hw-ucx-multihost-'));
let lab: NetnsLab;
const plans: Record<'full' | 'delta1' | 'delta2', string> = { full: '', delta1: '', delta2: '' };
const checkpoints: string[] = [];

/** 1 MiB tensors (256 x 1024 F32). */
const tensor = () => ({ dtype: 'F32', shape: [256, 1024], data: randomBytes(MIB) });

/** v0, v1 (one tensor changed) and v2 (four of five changed), their manifests and three plans. */
async function makeVersions(): Promise<void> {
  const first: Record<string, ReturnType<typeof tensor>> = {};
  for (let i = 0; i < 4; i++) first[`layers.${i}.w`] = tensor();
  const second = { embed: tensor() };
  const versions = [
    { first, second },
    { first: { ...first, 'layers.1.w': tensor() }, second },
  ];
  const v1 = versions[1] as (typeof versions)[number];
  versions.push({
    first: { ...v1.first, 'layers.0.w': tensor(), 'layers.2.w': tensor(), 'layers.3.w': tensor() },
    second: { embed: tensor() },
  });
  const manifests = [];
  for (const [v, parts] of versions.entries()) {
    const dir = join(work, `v${v}`);
    mkdirSync(dir);
    await writeSafetensors(join(dir, FILES[0] as string), parts.first);
    await writeSafetensors(join(dir, FILES[1] as string), parts.second);
    writeFileSync(join(dir, 'config.json'), '{"layers":4}\n');
    const m = await publish({ checkpoint: dir, version: `v${v}`, modelId: 'test/multihost' });
    await writeManifest(m, join(work, `m${v}.json`));
    manifests.push(m);
    checkpoints.push(dir);
  }
  const common = { bucketBytes: MIB, worldSize: HOSTS };
  const plan = async (name: keyof typeof plans, prev: number | null, next: number) => {
    plans[name] = join(work, `${name}.json`);
    await writePlan(
      createPlan({
        prev: prev === null ? null : (manifests[prev] ?? null),
        next: manifests[next] as (typeof manifests)[number],
        checkpointRoot: checkpoints[next] as string,
        nextManifestPath: join(work, `m${next}.json`),
        ...common,
      }),
      plans[name],
    );
  };
  await plan('full', null, 0);
  await plan('delta1', 0, 1);
  await plan('delta2', 1, 2);
}

interface RankOutcome {
  rank: number;
  code: number | null;
  events: { type: string; [k: string]: unknown }[];
  stderr: string;
}

/** One `hotweights replicate --commit` rank per host; `onEvent` sees every rank's events live. */
async function replicate(
  plan: string,
  env: NodeJS.ProcessEnv = {},
  onEvent?: (rank: number, event: { type: string; [k: string]: unknown }) => void,
): Promise<RankOutcome[]> {
  const ranks = lab.hosts.map((h) => {
    const p = lab.spawn(
      h.index,
      process.execPath,
      [CLI, 'replicate', '--plan', plan, '--commit', '--target', h.target, '--no-metrics', '--rank-events'],
      {
        RANK: String(h.index),
        WORLD_SIZE: String(HOSTS),
        MASTER_ADDR: lab.host(0).address,
        MASTER_PORT: String(LAB_PORT),
        HOTWEIGHTS_SOURCE_ROOTS: work,
        HOTWEIGHTS_HASH_THREADS: '1',
        ...env,
      },
    );
    p.onLine((line) => {
      if (line.startsWith('{')) onEvent?.(h.index, JSON.parse(line));
    });
    return p.done.then((r) => ({
      rank: h.index,
      code: r.code,
      events: jsonLines(r.stdout),
      stderr: r.stderr,
    }));
  });
  return Promise.all(ranks);
}

function expectLive(version: number): void {
  for (const h of lab.hosts) {
    for (const f of FILES) {
      const live = readFileSync(join(h.target, `rank-${h.index}`, 'current', f));
      expect(
        Buffer.compare(live, readFileSync(join(checkpoints[version] as string, f))),
        `${h.nodeId} ${f}`,
      ).toBe(0);
    }
  }
}

function expectSucceeded(outcomes: RankOutcome[]): void {
  // Every rank's error in one message: the first rank's alone rarely says what went wrong.
  const errors = outcomes
    .map(
      (o) =>
        `rank ${o.rank} (exit ${o.code}): ${String(o.events.find((e) => e.type === 'error')?.message ?? '')} ${o.stderr}`,
    )
    .join('\n');
  for (const o of outcomes) {
    const done = o.events.find((e) => e.type === 'done');
    expect(done, errors).toBeDefined();
    expect(done?.transport).toBe('ucx');
    expect((done?.result as { committed?: boolean } | undefined)?.committed).toBe(true);
    expect(o.code).toBe(0);
  }
}

describe('three hosts over UCX (network namespaces)', () => {
  beforeAll(async () => {
    lab = NetnsLab.create(HOSTS);
    await makeVersions();
  });
  afterAll(async () => {
    await lab?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('lands a full deployment then a delta, byte-identical on every host', async () => {
    expectSucceeded(await replicate(plans.full));
    expectLive(0);
    expectSucceeded(await replicate(plans.delta1));
    expectLive(1);
  });

  it('a link pulled mid-update fails it on every host naming the peer, commits nothing, and the update succeeds once the link is back', async () => {
    // Host 2's link runs at 4 Mbit/s and buckets move one at a time: its first bucket lands about
    // 2 s in and 3 more are still to come when the link goes down (no timing guess: the pull
    // happens on host 2's own progress report).
    lab.limitRate(2, '4mbit');
    let pulled = false;
    const outcomes = await replicate(
      plans.delta2,
      {
        HOTWEIGHTS_INFLIGHT_BUCKETS: '1',
        HOTWEIGHTS_UCX_PEER_TIMEOUT_S: '5',
        HOTWEIGHTS_TRANSFER_TIMEOUT_S: '60',
      },
      (rank, event) => {
        if (rank === 2 && event.type === 'progress' && Number(event.bytesDone) > 0 && !pulled) {
          expect(Number(event.bytesDone)).toBeLessThan(Number(event.bytesTotal));
          lab.linkDown(2);
          pulled = true;
        }
      },
    );
    expect(pulled).toBe(true);
    for (const o of outcomes) {
      const error = o.events.find((e) => e.type === 'error');
      expect(
        o.events.find((e) => e.type === 'done'),
        `rank ${o.rank} finished`,
      ).toBeUndefined();
      expect(o.code).toBe(1);
      // Each side names the other: the hub (rank 0) lost host 2, and host 2 lost the hub.
      const peer = o.rank === 2 ? 0 : 2;
      expect(String(error?.message)).toMatch(new RegExp(`rank ${peer} was lost \\(nothing heard from it`));
      expect(String(error?.message)).not.toContain('HOTWEIGHTS_TRANSFER_TIMEOUT_S');
    }
    expectLive(1);

    await lab.linkUp(2);
    lab.unlimitRate(2);
    expectSucceeded(await replicate(plans.delta2));
    expectLive(2);
  });
});
