/**
 * Fleet truth with real processes (coord-serve, `hotweights worker` per rank with the directory
 * adapter, the CLI, a real redis-server): each fault and operator action that used to leave a
 * rank on an old version while the coordinator said "committed" now ends with every rank
 * byte-identical on the version the coordinator reports, and `coord-status` saying so.
 *
 * Faults are real where they can be: SIGKILL, an immutable target directory (chattr +i; chmod
 * for non-root), a second process, a deleted target. The one test hook is
 * HOTWEIGHTS_TEST_PRECOMMIT_DELAY_MS (the coordinator holds precommit replies past the worker's
 * call timeout), read in core's config.ts.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis } from '../../coordinator/test/redis-server.js';
import { type Fleet, makeFleet, startWorker, type WorkerProcess } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

const run = promisify(execFile);
const FAST = { HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' };
const A_FILES = ['a.bin', 'b.bin'];
const B_FILES = ['a.bin', 'b.bin', 'c.bin'];

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** Makes `dir` refuse new entries (the flip's symlink) even for root, or lifts that. */
async function setReadOnly(dir: string, on: boolean): Promise<void> {
  if (process.getuid?.() === 0) await run('chattr', [on ? '+i' : '-i', dir]);
  else await run('chmod', [on ? '0555' : '0755', dir]);
}

async function setup(worldSize: number, coordEnv: NodeJS.ProcessEnv = {}, workerEnv: NodeJS.ProcessEnv = {}) {
  const fleet = await makeFleet(worldSize);
  cleanups.push(() => fleet.cleanup());
  let coord = await startCoordProcess({ ...FAST, ...coordEnv });
  cleanups.push(() => coord.stop('SIGKILL'));
  const workers = new Map<number, WorkerProcess>();
  const spawnWorker = (rank: number) => {
    const w = startWorker({
      rank,
      worldSize,
      endpoint: coord.endpoint,
      pubEndpoint: coord.pubEndpoint,
      fleet,
      env: { ...FAST, ...workerEnv },
    });
    workers.set(rank, w);
    cleanups.push(() => w.kill('SIGKILL'));
    return w;
  };
  const cli = (args: string[]) =>
    runCli(args, { env: { HOTWEIGHTS_COORD: coord.endpoint, ...FAST }, timeoutMs: 120_000 });
  const restartCoord = async () => {
    const port = Number(coord.endpoint.split(':').pop());
    const pubPort = Number(coord.pubEndpoint.split(':').pop());
    await coord.stop('SIGKILL');
    coord = await startCoordProcess({ ...FAST, ...coordEnv }, { port, pubPort });
    cleanups.push(() => coord.stop('SIGKILL'));
  };
  const deploy = async (plan: string, version: string) => {
    await cli(['coord-submit-plan', '--plan', plan]);
    const r = await cli(['begin', '--version', version, '--wait', '--wait-timeout', '60']);
    expectOnlyUnservedWarnings(r.stderr);
    expect(r.stdout).toContain(`fleet converged: ${worldSize} of ${worldSize} live on ${version}`);
  };
  return { fleet, workers, spawnWorker, cli, deploy, restartCoord, coord: () => coord };
}

/**
 * A worker started just before (or a coordinator restarted just before) may not be registered
 * when `begin --wait` first looks: the warning that names that rank is the one line allowed.
 */
function expectOnlyUnservedWarnings(stderr: string): void {
  for (const line of stderr.split('\n').filter(Boolean))
    expect(line).toMatch(/^hotweights: warning: no worker serves rank\(s\) [\d, ]+ of update v\d+: /);
}

interface Status {
  current_version: string | null;
  fleet: { state: string; summary: string; behind: number[] };
}

async function status(cli: (args: string[]) => Promise<{ stdout: string }>): Promise<Status> {
  return JSON.parse((await cli(['coord-status', '--json'])).stdout) as Status;
}

/** Waits until coord-status says the fleet is converged, then checks every rank's bytes. */
async function expectConverged(
  t: { fleet: Fleet; cli: (args: string[]) => Promise<{ stdout: string }> },
  version: string,
  worldSize: number,
  ckpt: string,
  files: string[],
): Promise<void> {
  const deadline = Date.now() + 60_000;
  let s = await status(t.cli);
  while (!(s.fleet.state === 'converged' && s.current_version === version)) {
    if (Date.now() > deadline)
      throw new Error(`fleet never converged on ${version}: ${JSON.stringify(s.fleet)}`);
    await new Promise((r) => setTimeout(r, 200));
    s = await status(t.cli);
  }
  const text = (await t.cli(['coord-status'])).stdout;
  expect(text).toContain(`current version: ${version}`);
  expect(text).toContain(`fleet: converged: ${worldSize} of ${worldSize} live on ${version}`);
  for (let rank = 0; rank < worldSize; rank++) {
    for (const f of files) {
      const want = await readFile(join(ckpt, f));
      expect((await t.fleet.live(rank, f))?.equals(want), `rank ${rank} ${f}`).toBe(true);
    }
  }
}

describe('fleet truth: every rank on the committed version, or a clear report', { timeout: 180_000 }, () => {
  it('precommit replies that arrive after the call timed out leave the rank in doubt, not discarded', async () => {
    const t = await setup(2, { HOTWEIGHTS_TEST_PRECOMMIT_DELAY_MS: '3000' });
    const w0 = t.spawnWorker(0);
    const w1 = t.spawnWorker(1);
    await t.deploy(t.fleet.planV0, 'v0');
    await t.cli(['coord-submit-plan', '--plan', t.fleet.planV1]);
    await t.cli(['begin', '--version', 'v1', '--no-auto-commit']);
    for (const w of [w0, w1]) await w.waitFor(/update v1: .*precommit reply lost .*in doubt/);
    // On main the worker marked the attempt failed and aborted the update here.
    const commit = await t.cli(['commit', '--version', 'v1']);
    expect(commit.stdout).toContain('update v1: committed');
    for (const w of [w0, w1]) await w.waitFor('update v1: committed, live v1');
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);
  });

  it('a worker killed right after precommit stays in doubt when restarted, finishes the flip after the commit; a second claimant of its rank is refused', async () => {
    // A lease far longer than the test: the killed worker still holds rank 1 when it restarts.
    const long = { HOTWEIGHTS_LEASE_S: '60' };
    const t = await setup(2, long, long);
    const w0 = t.spawnWorker(0);
    const w1 = t.spawnWorker(1);
    await t.deploy(t.fleet.planV0, 'v0');
    await t.cli(['coord-submit-plan', '--plan', t.fleet.planV1]);
    await t.cli(['begin', '--version', 'v1', '--no-auto-commit']);
    for (const w of [w0, w1]) await w.waitFor(/update v1: .*precommitted/);
    // The killed worker's lease key stays in its target, readable by its user only, never shown.
    const marker = join(t.fleet.target(1), '.hotweights', 'fleet.json');
    expect((await stat(marker)).mode & 0o777).toBe(0o600);
    const { lease_key: key } = JSON.parse(await readFile(marker, 'utf8')) as { lease_key: string };
    expect(key).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect((await t.cli(['coord-status', '--json'])).stdout).not.toContain(key);
    await w1.kill('SIGKILL');
    // Restarted before the decision: it proves the key and takes over at once; in doubt, it
    // keeps what it prepared (no new staging).
    const undecided = t.spawnWorker(1);
    await undecided.waitFor(
      /rank 1 is held by worker \S+, an earlier process on this host that is gone: taking over/,
    );
    await undecided.waitFor(
      'update v1: this rank voted yes before it restarted; in doubt, keeping the prepared version',
    );
    expect(undecided.output()).not.toMatch(/update v1: (staged|broadcasts are over)/);
    // Killed again; the coordinator commits; restarted after the decision: it finishes the flip.
    await undecided.kill('SIGKILL');
    expect((await t.cli(['commit', '--version', 'v1'])).stdout).toContain('update v1: committed');
    await w0.waitFor('update v1: committed, live v1');
    const again = t.spawnWorker(1);
    await again.waitFor(/taking over/);
    await again.waitFor(/converged: live v1 \(was v0; finished the flip from what this rank prepared/);
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);

    // A second worker for rank 1 while the first lives: refused, naming the holder.
    const dup = startWorker({
      rank: 1,
      worldSize: 2,
      endpoint: t.coord().endpoint,
      pubEndpoint: t.coord().pubEndpoint,
      fleet: t.fleet,
      env: { ...FAST, ...long },
    });
    cleanups.push(() => dup.kill('SIGKILL'));
    const code = await new Promise<number | null>((resolve) => dup.child.once('close', resolve));
    expect(code).toBe(1);
    expect(dup.output()).toMatch(
      new RegExp(
        `\\[HW_COORD_RANK_HELD\\]: register: rank 1 is held by worker \\S+ on host \\S+ \\(pid ${again.child.pid},`,
      ),
    );
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);
  });

  it('a hung holder of a rank (SIGSTOP) is waited out: a new worker takes the rank once its lease expires', async () => {
    // A lease longer than a worker's start: the silent holder still holds rank 0 when the next asks.
    const lease = { HOTWEIGHTS_LEASE_S: '10' };
    const t = await setup(1, lease, lease);
    const w0 = t.spawnWorker(0);
    await t.deploy(t.fleet.planV0, 'v0');
    w0.child.kill('SIGSTOP'); // alive, but silent: no heartbeat, no answer
    cleanups.push(async () => w0.child.kill('SIGCONT'));
    // A holder counts as hung once silent for three heartbeats (0.75 s here); until then a second
    // claimant is refused. A new worker can start faster than that on an idle machine.
    await new Promise((r) => setTimeout(r, 1500));
    const next = t.spawnWorker(0);
    await next.waitFor(
      /rank 0 is held by worker \S+ on host \S+ \(pid \d+\), silent for [\d.]+ s: waiting [\d.]+ s for its lease to expire/,
    );
    await next.waitFor('registered as');
    await expectConverged(t, 'v0', 1, t.fleet.ckptA, A_FILES);
  });

  it('a target read-only at commit is reported as divergence, --wait names the rank, and the flip is retried until it succeeds', async () => {
    const t = await setup(2);
    const w0 = t.spawnWorker(0);
    const w1 = t.spawnWorker(1);
    await t.deploy(t.fleet.planV0, 'v0');
    await t.cli(['coord-submit-plan', '--plan', t.fleet.planV1]);
    await t.cli(['begin', '--version', 'v1', '--no-auto-commit']);
    for (const w of [w0, w1]) await w.waitFor(/update v1: .*precommitted/);
    await setReadOnly(t.fleet.target(1), true);
    cleanups.push(() => setReadOnly(t.fleet.target(1), false));
    await t.cli(['commit', '--version', 'v1']);
    await w1.waitFor('update v1: adapter commit failed');
    await w1.waitFor(/rank 1 cannot make v1 live: .*retrying in/);
    const deadline = Date.now() + 30_000;
    let s = await status(t.cli);
    while (s.fleet.state !== 'diverged' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      s = await status(t.cli);
    }
    expect(s.fleet.summary).toMatch(/^diverged: rank 1 on v0 \(.*v1.*\)$/);
    expect((await t.cli(['coord-status'])).stdout).toMatch(/rank 1\/2 .* live v0 {2}BEHIND/);
    await setReadOnly(t.fleet.target(1), false);
    await w1.waitFor(/converged: live v1 \(was v0; finished the flip/);
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);

    // The same fault under a fleet rollback: --wait fails naming the rank, then the retry lands.
    await setReadOnly(t.fleet.target(1), true);
    const rb = await t.cli(['rollback', '--wait', '--wait-timeout', '3']);
    expect(rb.code).toBe(1);
    expect(rb.stdout).toContain('rollback to v0 from v1: committed, precommitted 2/2');
    expect(rb.stderr).toMatch(
      /\[HW_FLEET_BEHIND\]: update v0 is committed but the fleet is not live on it after 3 s: .*rank 1 on v1/,
    );
    await setReadOnly(t.fleet.target(1), false);
    await expectConverged(t, 'v0', 2, t.fleet.ckptA, A_FILES);
  });

  it('a host-local rollback of a fleet rank is refused (forced, the rank converges back); a replacement worker with an empty target catches up, also to a fleet rollback', async () => {
    // A lease long enough that the replacement worker (a fresh node process, slow to start on a
    // loaded machine) always finds its predecessor's lease still running.
    const LONG_LEASE = { HOTWEIGHTS_LEASE_S: '10' };
    const t = await setup(2, LONG_LEASE, LONG_LEASE);
    t.spawnWorker(0);
    const w1 = t.spawnWorker(1);
    await t.deploy(t.fleet.planV0, 'v0');
    await t.deploy(t.fleet.planV1, 'v1');

    const local = await t.cli(['rollback', '--target', t.fleet.target(1)]);
    expect(local.code).toBe(1);
    expect(local.stderr).toContain(
      `is rank 1 of the fleet at ${t.coord().endpoint}: rolling back one host would split the fleet; run \`hotweights rollback --endpoint ${t.coord().endpoint}\``,
    );
    const forced = await t.cli(['rollback', '--target', t.fleet.target(1), '--force']);
    expect(forced.stdout).toContain('switched from v1 to the previous version v0');
    await w1.waitFor(/converged: live v1 \(was v0; finished the flip/);
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);

    // The host of rank 1 is replaced: a new worker with nothing in its target (so no lease key
    // of its predecessor): it waits for the old lease to run out.
    await w1.kill('SIGKILL');
    await rm(t.fleet.target(1), { recursive: true, force: true });
    const fresh = t.spawnWorker(1);
    await fresh.waitFor(
      /rank 1 is held by worker \S+ on host \S+ \(pid \d+\), .*: waiting [\d.]+ s for its lease to expire/,
    );
    await fresh.waitFor(/converged: live v1 \(was none; caught up from the source\)/);
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);

    // A fleet rollback: the replaced rank keeps no v0, so it fetches v0 again before it votes.
    const rb = await t.cli(['rollback', '--wait']);
    expectOnlyUnservedWarnings(rb.stderr);
    expect(rb.stdout).toContain('fleet converged: 2 of 2 live on v0');
    await fresh.waitFor(/catching up to v0: staging the whole version from the source/);
    await expectConverged(t, 'v0', 2, t.fleet.ckptA, A_FILES);
  });

  it('a fleet rollback moves every rank and the current manifest back, survives a Redis coordinator restart, and a delta applies on top', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const t = await setup(2, { HOTWEIGHTS_COORD_BACKEND: 'redis', HOTWEIGHTS_REDIS_URL: redis.url });
    t.spawnWorker(0);
    t.spawnWorker(1);
    await t.deploy(t.fleet.planV0, 'v0');
    await t.deploy(t.fleet.planV1, 'v1');

    const rb = await t.cli(['rollback', '--wait']);
    expectOnlyUnservedWarnings(rb.stderr);
    expect(rb.stdout).toContain('rollback to v0 from v1: committed, precommitted 2/2');
    expect(rb.stdout).toContain('fleet converged: 2 of 2 live on v0');
    await expectConverged(t, 'v0', 2, t.fleet.ckptA, A_FILES);
    expect(await t.fleet.live(0, 'c.bin')).toBeNull();

    // The decision is durable: a coordinator restarted on the same Redis still says v0.
    await t.restartCoord();
    const restarted = await status(t.cli);
    expect(restarted.current_version).toBe('v0');
    await expectConverged(t, 'v0', 2, t.fleet.ckptA, A_FILES);

    // The delta v0 -> v1 applies on top of the rolled-back fleet.
    await t.deploy(t.fleet.planV1, 'v1');
    await expectConverged(t, 'v1', 2, t.fleet.ckptB, B_FILES);
  });
});
