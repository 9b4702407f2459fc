/**
 * `hotweights demo` end to end: an embedded coordinator and real `hotweights worker` processes
 * commit v0 then v1, and the live files equal the fine-tune byte for byte.
 */
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const work = mkdtempSync(join(tmpdir(), 'hw-cli-demo-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-cli-demo-'));
const env = { HOTWEIGHTS_STAGING_DIR: staging, HOTWEIGHTS_STATE_DIR: join(work, 'state') };
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

/** Pids of live processes whose command line mentions `dir` (the demo's workers get --target inside it). */
function workersOf(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const state = /^State:\s+(\w)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1];
      if (cmd.includes('worker') && cmd.includes(dir) && state !== 'Z') pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('hotweights demo', { timeout: 180_000 }, () => {
  it('commits v0 then v1 through the coordinator with worker processes, byte-identical to the fine-tune', async () => {
    const dir = join(work, 'demo');
    const res = await runCli(['demo', '--dir', dir], { env, timeoutMs: 170_000 });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('starting an embedded coordinator and 2 `hotweights worker` process(es)');
    expect(res.stdout).toMatch(
      /deploy v0 \(full\) : 28\.0 MiB of 28\.0 MiB \(100\.0%\) to 2 worker processes/,
    );
    expect(res.stdout).toMatch(
      /update v1 \(delta\): 6\.0 MiB of 28\.0 MiB \(21\.4%\) to 2 worker processes, .*committed; commit to live on all ranks \d+ ms/,
    );
    expect(res.stdout).toContain(`everything is in ${dir}`);

    // The coordinator saw both ranks precommit each version, in order, and committed both.
    const coordLog = readFileSync(join(dir, 'logs/coordinator.log'), 'utf8');
    const events = coordLog
      .split('\n')
      .map((l) => /^event (\w+) version=(v\d)(?: rank=(\d))?/.exec(l)?.slice(1, 4).filter(Boolean).join(' '))
      .filter(Boolean);
    expect(events).toEqual([
      'plan v0',
      'begin v0',
      expect.stringMatching(/^precommit v0 \d$/),
      expect.stringMatching(/^precommit v0 \d$/),
      'quorum v0',
      'commit v0',
      'plan v1',
      'begin v1',
      expect.stringMatching(/^precommit v1 \d$/),
      expect.stringMatching(/^precommit v1 \d$/),
      'quorum v1',
      'commit v1',
    ]);
    // Each rank was its own worker process that staged (the directory adapter preparing while
    // buckets landed), flipped and exited by itself.
    for (const r of [0, 1]) {
      const log = readFileSync(join(dir, `logs/worker-${r}.log`), 'utf8');
      expect(log).toContain(`worker rank ${r}/2 registered as`);
      expect(log).toMatch(
        /update v0: staged 8 bucket\(s\) \(28\.0 MiB landed, \d+ item\(s\), streaming\), verified, precommitted\nupdate v0: committed, live v0/,
      );
      expect(log).toMatch(
        /update v1: staged 2 bucket\(s\) \(6\.0 MiB landed, \d+ item\(s\), streaming\), verified, precommitted\nupdate v1: committed, live v1/,
      );
      expect(log).toContain(`worker rank ${r} stopped; live v1`);
    }

    const tuned = join(dir, 'checkpoints/finetune');
    const files = readdirSync(tuned).filter((f) => !f.startsWith('.'));
    expect(files).toHaveLength(3);
    for (const r of [0, 1]) {
      expect(readlinkSync(join(dir, `target/rank-${r}/current`))).toBe('versions/v1');
      expect(readlinkSync(join(dir, `target/rank-${r}/previous`))).toBe('versions/v0');
      for (const f of files) {
        const live = readFileSync(join(dir, `target/rank-${r}/current`, f));
        expect(Buffer.compare(live, readFileSync(join(tuned, f))), `rank ${r} ${f}`).toBe(0);
      }
    }
    // The printed next step works on what the demo left.
    const back = await runCli(['rollback', '--target', join(dir, 'target')], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(readlinkSync(join(dir, 'target/rank-0/current'))).toBe('versions/v0');
  });

  it('--no-coordinator keeps the one-host path; a foreign directory is refused', async () => {
    const dir = join(work, 'demo');
    const res = await runCli(['demo', '--dir', dir, '--world-size', '1', '--no-coordinator', '--json'], {
      env,
      timeoutMs: 170_000,
    });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      world_size: 1,
      coordinator: false,
      delta: { committed: true, live: 'v1', transport: 'local' },
    });
    expect(existsSync(join(dir, 'target/current'))).toBe(true);
    expect(existsSync(join(dir, 'logs'))).toBe(false); // replaced the earlier demo, no workers this time
    writeFileSync(join(work, 'not-a-demo.txt'), 'keep me');
    const refused = await runCli(['demo', '--dir', work], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is not an earlier demo/);
    expect(readFileSync(join(work, 'not-a-demo.txt'), 'utf8')).toBe('keep me');
  });

  it('a worker that cannot start fails the demo with its rank and log, and leaves no worker behind', async () => {
    const dir = join(work, 'broken');
    const notADir = join(work, 'staging-is-a-file');
    writeFileSync(notADir, '');
    const res = await runCli(['demo', '--dir', dir], {
      env: { ...env, HOTWEIGHTS_STAGING_DIR: notADir },
      timeoutMs: 170_000,
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/demo: the worker for rank \d exited \(1\); its log .*worker-\d\.log ends:/);
    expect(res.stderr).toContain('cannot create staging dir');
    // No `hotweights worker` of this demo is left running.
    const deadline = Date.now() + 10_000;
    while (workersOf(dir).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(workersOf(dir)).toEqual([]);
  });
});
