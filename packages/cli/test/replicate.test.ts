import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan, writeSafetensors } from '@hotweights/planner';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI_SOURCE, REPO_ROOT, runCli, SOURCE_NODE_ARGS } from './run-cli.js';
import { cliWorkspace } from './workspace.js';

const { work, staging, env: workspaceEnv } = cliWorkspace('hw-cli-replicate-');
const env = {
  ...workspaceEnv,
  // Checkpoints are published in-process here (nothing recorded under the state dir).
  HOTWEIGHTS_SOURCE_ROOTS: work,
  HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30',
};

const tensor = (rows: number, cols = 256) => ({
  dtype: 'F32',
  shape: [rows, cols],
  data: randomBytes(rows * cols * 4),
});
const FILES = ['model-00001.safetensors', 'model-00002.safetensors', 'config.json'];

/** Base and fine-tune checkpoints, their manifests, a full plan of the base and a delta plan. */
async function makeVersions(name: string, rows: number, bucketBytes: number) {
  const dir = join(work, name);
  const base = join(dir, 'base');
  const ft = join(dir, 'ft');
  mkdirSync(base, { recursive: true });
  mkdirSync(ft, { recursive: true });
  const first = { 'layers.0.w': tensor(rows), 'layers.0.b': tensor(8), 'layers.1.w': tensor(rows) };
  const second = { embed: tensor(rows), head: tensor(rows / 2) };
  await writeSafetensors(join(base, FILES[0] as string), first);
  await writeSafetensors(join(base, FILES[1] as string), second);
  writeFileSync(join(base, 'config.json'), '{"layers":2}\n');
  await writeSafetensors(join(ft, FILES[0] as string), { ...first, 'layers.1.w': tensor(rows) });
  await writeSafetensors(join(ft, FILES[1] as string), second);
  writeFileSync(join(ft, 'config.json'), '{"layers":2}\n');
  const m0 = await publish({ checkpoint: base, version: 'v0', modelId: `test/${name}` });
  const m1 = await publish({ checkpoint: ft, version: 'v1', modelId: `test/${name}` });
  await writeManifest(m0, join(dir, 'm0.json'));
  await writeManifest(m1, join(dir, 'm1.json'));
  const common = { bucketBytes, worldSize: 3 };
  await writePlan(
    createPlan({
      prev: null,
      next: m0,
      checkpointRoot: base,
      nextManifestPath: join(dir, 'm0.json'),
      ...common,
    }),
    join(dir, 'full.json'),
  );
  await writePlan(
    createPlan({ prev: m0, next: m1, checkpointRoot: ft, nextManifestPath: join(dir, 'm1.json'), ...common }),
    join(dir, 'delta.json'),
  );
  return { dir, base, ft, target: join(dir, 'target') };
}

function expectTree(dir: string, checkpoint: string) {
  for (const f of FILES)
    expect(Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(checkpoint, f))), `${dir}/${f}`).toBe(
      0,
    );
}

describe('hotweights replicate / rollback / status', { timeout: 180_000 }, () => {
  let v: Awaited<ReturnType<typeof makeVersions>>;
  beforeAll(async () => {
    v = await makeVersions('main', 64, 64 * 1024);
  }, 120_000);

  it('deploys a full plan then a delta to 3 local ranks, byte-exact at every rank, and rolls back', async () => {
    const full = await runCli(
      ['replicate', '--plan', join(v.dir, 'full.json'), '--commit', '--target', v.target, '--no-metrics'],
      { env },
    );
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    expect(full.stdout).toMatch(/replicated v0 to 3 rank\(s\) over local/);
    expect(full.stdout).toMatch(/committed v0 on every rank; pause [\d.]+ ms/);
    for (const r of [0, 1, 2]) expectTree(join(v.target, `rank-${r}`, 'current'), v.base);

    const delta = await runCli(
      [
        'replicate',
        '--plan',
        join(v.dir, 'delta.json'),
        '--commit',
        '--target',
        v.target,
        '--no-metrics',
        '--json',
      ],
      { env },
    );
    expect(delta.code, delta.stderr).toBe(0);
    const summary = JSON.parse(delta.stdout);
    expect(summary).toMatchObject({
      version: 'v1',
      prev_version: 'v0',
      world_size: 3,
      transport: 'local',
      committed: true,
      live: 'v1',
    });
    expect(summary.bytes_planned).toBeLessThan(summary.checkpoint_bytes / 2);
    for (const r of [0, 1, 2]) expectTree(join(v.target, `rank-${r}`, 'current'), v.ft);

    const status = await runCli(['status', '--json', '--target', v.target], { env });
    expect(status.code, status.stderr).toBe(0);
    const st = JSON.parse(status.stdout);
    expect(st.targets.map((t: { current: string; previous: string }) => [t.current, t.previous])).toEqual([
      ['v1', 'v0'],
      ['v1', 'v0'],
      ['v1', 'v0'],
    ]);
    expect(st.committed).toEqual([expect.objectContaining({ model: 'test/main', version: 'v1' })]);
    expect(st.segments).toBe(0);

    const back = await runCli(['rollback', '--target', v.target], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(
      /rank-2: switched from v1 to the previous version v0 \(pause [\d.]+ ms\); rollback again switches back to v1/,
    );
    for (const r of [0, 1, 2]) expectTree(join(v.target, `rank-${r}`, 'current'), v.base);
    const after = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(after.committed).toEqual([expect.objectContaining({ model: 'test/main', version: 'v0' })]);
  });

  it('with one rank (the source alone consumes every bucket, so items are copied straight into the target): full then delta, byte-exact, rollback kept', async () => {
    const target = join(v.dir, 'target-one');
    const m = (n: string) => join(v.dir, n);
    // A state dir of its own: the full plan must not diff against what other tests committed.
    const oneEnv = { ...env, HOTWEIGHTS_STATE_DIR: join(v.dir, 'state-one') };
    for (const args of [
      ['--next', m('m0.json'), '--checkpoint', v.base, '--output', m('one-full.json')],
      ['--prev', m('m0.json'), '--next', m('m1.json'), '--checkpoint', v.ft, '--output', m('one-delta.json')],
    ]) {
      const planned = await runCli(['plan', ...args, '--world-size', '1', '--bucket-mb', '1'], {
        env: oneEnv,
      });
      expect(planned.code, planned.stderr).toBe(0);
    }
    for (const [plan, want, version] of [
      ['one-full.json', v.base, 'v0'],
      ['one-delta.json', v.ft, 'v1'],
    ] as const) {
      const r = await runCli(
        [
          'replicate',
          '--plan',
          join(v.dir, plan),
          '--world-size',
          '1',
          '--commit',
          '--target',
          target,
          '--no-metrics',
          '--json',
        ],
        { env: oneEnv },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ version, world_size: 1, committed: true, live: version });
      expectTree(join(target, 'current'), want);
    }
    expectTree(join(target, 'previous'), v.base);
  });

  it('catches bytes that do not match the plan: names item and rank, commits nothing anywhere', async () => {
    const c = await makeVersions('corrupt', 64, 64 * 1024);
    expect(
      (
        await runCli(
          ['replicate', '--plan', join(c.dir, 'full.json'), '--commit', '--target', c.target, '--no-metrics'],
          { env },
        )
      ).code,
    ).toBe(0);
    // One byte of a changed tensor flips on the source after the plan was made.
    const file = join(c.ft, FILES[0] as string);
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 0xff;
    writeFileSync(file, bytes);
    const res = await runCli(
      ['replicate', '--plan', join(c.dir, 'delta.json'), '--commit', '--target', c.target, '--no-metrics'],
      { env },
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /^hotweights: error \[HW_COMMIT\]: update v1 failed: rank \d: item layers\.1\.w:0 .* does not match its hash.*nothing was committed, the live version is unchanged \(v0\)/,
    );
    for (const r of [0, 1, 2]) expectTree(join(c.target, `rank-${r}`, 'current'), c.base);
    expect(readdirSync(join(c.target, 'rank-0', 'versions'))).toEqual(['v0']);
  });

  it('a rank killed mid-update leaves every rank on the old version; its segments are reclaimed', async () => {
    const k = await makeVersions('killed', 2048, 32 * 1024);
    expect(
      (
        await runCli(
          ['replicate', '--plan', join(k.dir, 'full.json'), '--commit', '--target', k.target, '--no-metrics'],
          { env },
        )
      ).code,
    ).toBe(0);
    // Only segments this update makes count (an earlier test's leftovers would name other pids).
    const before = new Set(readdirSync(staging));
    const child = spawn(
      process.execPath,
      [
        ...SOURCE_NODE_ARGS,
        CLI_SOURCE,
        'replicate',
        '--plan',
        join(k.dir, 'delta.json'),
        '--commit',
        '--target',
        k.target,
        '--no-metrics',
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...env, HOTWEIGHTS_INFLIGHT_BUCKETS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Rank 1's staging segments carry its pid: kill it as soon as it has landed a bucket.
    let victim: number | undefined;
    for (let i = 0; i < 3000 && victim === undefined; i++) {
      const seg = readdirSync(staging).find((n) => !before.has(n) && /\.v1\.r1\.b\d+\.seg$/.test(n));
      if (seg) victim = Number(/^hotweights\.p(\d+)\./.exec(seg)?.[1]);
      else await new Promise((r) => setTimeout(r, 5));
    }
    expect(victim).toBeDefined();
    process.kill(victim as number, 'SIGKILL');
    expect(await exited).toBe(1);
    expect(stderr).toMatch(
      /update v1 failed: rank 1 died \(SIGKILL\) during the update; nothing was committed, the live version is unchanged \(v0\)/,
    );
    for (const r of [0, 1, 2]) expectTree(join(k.target, `rank-${r}`, 'current'), k.base);
    // The killed rank could not clean up; the others did, unless the launcher had to kill one that
    // did not stop within its grace (a loaded machine), which the error then names. The next start
    // reclaims what is left.
    const killed = (/rank\(s\) ([\d, ]+) did not stop within/.exec(stderr)?.[1] ?? '')
      .split(',')
      .filter((r) => r.trim())
      .map(Number);
    const left = readdirSync(staging).filter((n) => n.endsWith('.seg'));
    expect(left.length).toBeGreaterThan(0);
    for (const n of left) {
      const rank = Number(/\.r(\d+)\.b\d+\.seg$/.exec(n)?.[1]);
      expect(n.startsWith(`hotweights.p${victim}.`) || killed.includes(rank), n).toBe(true);
    }
    const status = await runCli(['status', '--reclaim', '--json'], { env });
    expect(JSON.parse(status.stdout).reclaimed).toBeGreaterThan(0);
    expect(readdirSync(staging).filter((n) => n.endsWith('.seg'))).toEqual([]);
    expect(existsSync(join(k.target, 'rank-1', 'versions', 'v1'))).toBe(false);
  });

  it('runs as one rank of a launched job with RANK/WORLD_SIZE from the environment (torchrun-style)', async () => {
    const l = await makeVersions('launched', 64, 64 * 1024);
    const rdv = mkdtempSync(join(staging, 'rdv-'));
    const ranks = await Promise.all(
      [0, 1, 2].map((rank) =>
        runCli(
          [
            'replicate',
            '--plan',
            join(l.dir, 'full.json'),
            '--commit',
            '--target',
            l.target,
            '--rendezvous',
            rdv,
            '--transport',
            'local',
            '--no-metrics',
          ],
          {
            env: { ...env, RANK: String(rank), WORLD_SIZE: '3' },
          },
        ),
      ),
    );
    for (const r of ranks) expect(r.code, r.stderr).toBe(0);
    // Rank 0 prints the summary; every rank committed its own target dir.
    expect(ranks[0]?.stdout).toMatch(/committed v0 on every rank/);
    expect(ranks[1]?.stdout).toBe('');
    for (const r of [0, 1, 2]) expectTree(join(l.target, `rank-${r}`, 'current'), l.base);
  });

  it('without --target verifies on every rank and says nothing on disk changed', async () => {
    const res = await runCli(['replicate', '--plan', join(v.dir, 'full.json'), '--commit', '--no-metrics'], {
      env,
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/replicated v0 to 3 rank\(s\) over local/);
    expect(res.stdout).toMatch(/verified v0 on every rank; no --target, so nothing on disk changed/);
    const tooSmall = await runCli(
      ['replicate', '--plan', join(v.dir, 'full.json'), '--world-size', '2', '--no-metrics'],
      { env },
    );
    expect(tooSmall.code).toBe(1);
    expect(tooSmall.stderr).toMatch(
      /full\.json was made for world size 3, but this job has 2 rank\(s\): re-plan with `hotweights plan … --world-size 2`/,
    );
  });

  it('rejects --no-verify with --commit and explains a missing target', async () => {
    const res = await runCli(['replicate', '--plan', join(v.dir, 'delta.json'), '--commit', '--no-verify'], {
      env,
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/--commit needs verification/);
    const rb = await runCli(['rollback', '--target', join(work, 'nothing-here')], { env });
    expect(rb.code).toBe(1);
    expect(rb.stderr).toMatch(/no hotweights target here/);
  });
});
