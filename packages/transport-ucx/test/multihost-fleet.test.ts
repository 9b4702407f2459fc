/**
 * A fleet of separately started workers on three hosts (network namespaces on a bridge, see
 * netns.ts): `hotweights coord-serve` in host 0 on its eth0 address, one `hotweights worker` per
 * host with its own node id, staging dir and target, meeting through the coordinator (no
 * MASTER_ADDR) and moving bytes over UCX on TCP between the hosts. A full deployment and a delta
 * commit byte-identical everywhere; a worker restarted after the broadcasts fetches its share
 * from its peers (the bytes they served add up to it, nothing read from the source); a link pulled
 * mid-update aborts it with nothing committed anywhere, and the update succeeds once it is back.
 *
 * The late joiner is killed after the broadcasts rather than before the update: every rank of the
 * world must reach an update's rendezvous, so a worker missing at `begin` holds the update until
 * it comes (within HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S) and then takes part in the broadcasts.
 */
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '@hotweights/core';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LabProcess, NetnsLab } from './netns.js';
import { REPO_ROOT } from './ranks.js';

// The built CLI (build first): it starts much faster than tsx on a loaded machine.
const CLI = join(REPO_ROOT, 'packages/cli/bin/hotweights.js');
const HOSTS = 3;
const MIB = 1 << 20;
const TOKEN = randomBytes(16).toString('hex');
const FLEET = {
  HOTWEIGHTS_COORD_TOKEN: TOKEN,
  HOTWEIGHTS_LEASE_S: '6',
  HOTWEIGHTS_HEARTBEAT_S: '0.5',
  HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S: '60',
  HOTWEIGHTS_TRANSFER_TIMEOUT_S: '60',
  HOTWEIGHTS_UCX_PEER_TIMEOUT_S: '5',
  HOTWEIGHTS_HASH_THREADS: '1',
};

const work = mkdtempSync(join(tmpdir(), 'hw-ucx-fleet-netns-'));
let lab: NetnsLab;
let endpoint = '';
const checkpoints: string[] = [];
const plans: string[] = [];
const workers: (Worker | undefined)[] = [];

/** A worker process and what it printed so far. */
interface Worker {
  readonly proc: LabProcess;
  output(): string;
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
}

/** Versions v0..v3 of a.bin, b.bin (and c.bin from v3), each published, and plans v0 (full), then deltas. */
async function makeVersions(): Promise<void> {
  const files = [{ 'a.bin': randomBytes(2 * MIB), 'b.bin': randomBytes(MIB) }] as Record<string, Buffer>[];
  const last = () => files[files.length - 1] as Record<string, Buffer>;
  files.push({ ...last(), 'b.bin': randomBytes(MIB) });
  files.push({ ...last(), 'a.bin': randomBytes(2 * MIB) });
  // The update the link is pulled in: ~7 MiB to host 2 at 4 Mbit/s, about 15 s.
  files.push({ ...last(), 'a.bin': randomBytes(2 * MIB), 'c.bin': randomBytes(5 * MIB) });
  let prev: Manifest | null = null;
  for (const [v, content] of files.entries()) {
    const dir = join(work, `v${v}`);
    mkdirSync(dir);
    for (const [name, bytes] of Object.entries(content)) writeFileSync(join(dir, name), bytes);
    const next = await publish({ checkpoint: dir, version: `v${v}`, hash: 'xxh3-64' });
    const manifestPath = join(work, `m${v}.json`);
    await writeManifest(next, manifestPath);
    const plan = join(work, `plan${v}.json`);
    await writePlan(
      createPlan({
        prev,
        next,
        checkpointRoot: dir,
        nextManifestPath: manifestPath,
        bucketBytes: MIB,
        worldSize: HOSTS,
      }),
      plan,
    );
    checkpoints.push(dir);
    plans.push(plan);
    prev = next;
  }
}

function startWorker(i: number): Worker {
  const h = lab.host(i);
  const proc = lab.spawn(
    i,
    process.execPath,
    [CLI, 'worker', '--endpoint', endpoint, '--target', h.target, '--metrics-port', '0'],
    { ...FLEET, RANK: String(i), WORLD_SIZE: String(HOSTS), HOTWEIGHTS_SOURCE_ROOTS: work },
  );
  let out = '';
  proc.onLine((line) => {
    out += `${line}\n`;
  });
  let exited = false;
  void proc.done.then((r) => {
    exited = true;
    out += r.stderr;
  });
  const w: Worker = {
    proc,
    output: () => out,
    waitFor: async (text, ms = 90_000) => {
      const deadline = Date.now() + ms;
      const seen = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      while (!seen()) {
        if (Date.now() > deadline || exited) {
          throw new Error(`${h.nodeId}'s worker never printed ${String(text)}; output:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  workers[i] = w;
  return w;
}

async function stopWorker(i: number): Promise<void> {
  const w = workers[i];
  if (!w) return;
  w.proc.child.kill('SIGKILL');
  await w.proc.done;
  workers[i] = undefined;
}

const logs = () => workers.map((w, i) => `--- host${i}\n${w?.output() ?? '(stopped)'}`).join('\n');

/** A `hotweights` command run in host 0 (beside the coordinator), against the fleet. */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return lab.spawn(0, process.execPath, [CLI, ...args], { ...FLEET, HOTWEIGHTS_COORD: endpoint }).done;
}

async function submit(v: number): Promise<void> {
  const r = await cli(['coord-submit-plan', '--plan', plans[v] as string]);
  expect(r.code, r.stderr).toBe(0);
}

/** Every host's live files equal version v's (workers flip just after the coordinator commits). */
async function expectLive(v: number): Promise<void> {
  const ckpt = checkpoints[v] as string;
  for (const h of lab.hosts) {
    await workers[h.index]?.waitFor(new RegExp(`live v${v}\\b`));
    for (const f of ['a.bin', 'b.bin', 'c.bin']) {
      // A file only some versions have (c.bin) is compared where the version has it.
      if (!existsSync(join(ckpt, f))) continue;
      const want = readFileSync(join(ckpt, f));
      const live = readFileSync(join(h.target, 'current', f));
      expect(Buffer.compare(live, want), `${h.nodeId} ${f} is v${v}'s`).toBe(0);
    }
  }
}

/** A worker's sample of a metric (with `label`), read from its Prometheus endpoint inside its host. */
function metric(i: number, name: string, label = ''): number {
  const url = /worker metrics on (\S+)/.exec(workers[i]?.output() ?? '')?.[1];
  if (!url) throw new Error(`host${i}'s worker printed no metrics URL:\n${workers[i]?.output()}`);
  const text = lab.exec(i, 'curl', ['-sf', '--max-time', '10', url]);
  const line = text.split('\n').find((l) => /^\w+/.exec(l)?.[0] === name && l.includes(label));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** The buckets of version v's plan that `rank` lands (its share). */
function shareOf(v: number, rank: number): { size: number }[] {
  const plan = JSON.parse(readFileSync(plans[v] as string, 'utf8')) as {
    buckets: { size: number; consumer_ranks: number[] }[];
  };
  return plan.buckets.filter((b) => b.consumer_ranks.includes(rank));
}

describe('a worker fleet on three hosts over UCX (network namespaces)', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    lab = NetnsLab.create(HOSTS);
    await makeVersions();
    endpoint = `tcp://${lab.host(0).address}:5555`;
    const coord = lab.spawn(
      0,
      process.execPath,
      [CLI, 'coord-serve', '--endpoint', endpoint, '--metrics-port', 'off'],
      FLEET,
    );
    let listening = false;
    coord.onLine((line) => {
      listening ||= line.startsWith('coordinator listening on');
    });
    const deadline = Date.now() + 60_000;
    while (!listening) {
      if (Date.now() > deadline || coord.child.exitCode !== null) {
        coord.child.kill('SIGKILL');
        throw new Error(`coord-serve did not start:\n${(await coord.done).stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; i < HOSTS; i++) startWorker(i);
    for (const w of workers) await w?.waitFor('registered as');
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('commits a full deployment then a delta, byte-identical on every host', async () => {
    const received = () =>
      [1, 2].map((i) => Number(lab.exec(i, 'cat', ['/sys/class/net/eth0/statistics/rx_bytes'])));
    const before = received();
    await submit(0);
    const v0 = await cli(['begin', '--version', 'v0', '--wait']);
    expect(v0.stdout, `${v0.stderr}\n${logs()}`).toContain('update v0: committed, precommitted 3/3');
    await expectLive(0);
    // The bytes came through the hosts' links (not the /dev/shm the namespaces share).
    const after = received();
    for (const [k, i] of [1, 2].entries()) {
      const share = shareOf(0, i).reduce((n, b) => n + b.size, 0);
      expect((after[k] as number) - (before[k] as number), `host${i} eth0 rx`).toBeGreaterThanOrEqual(share);
    }
    await submit(1);
    const v1 = await cli(['begin', '--version', 'v1', '--wait']);
    expect(v1.stdout, `${v1.stderr}\n${logs()}`).toContain('update v1: committed, precommitted 3/3');
    await expectLive(1);
    for (const w of workers) {
      expect(w?.output().match(/transport ucx: ranks on 3 nodes \(host0, host1, host2\)/g)?.length).toBe(2);
    }
  });

  it('a worker restarted after the broadcasts fetches its share from its peers, not the source', async () => {
    await submit(2);
    expect((await cli(['begin', '--version', 'v2', '--no-auto-commit'])).code).toBe(0);
    for (const w of workers) await w?.waitFor('update v2: staged');
    // Host 2's worker goes, and with it everything it staged and prepared for v2 (v1 stays live
    // there; the fleet marker stays too, so the new process takes over the rank at once).
    await stopWorker(2);
    const h2 = lab.host(2);
    const meta = join(h2.target, '.hotweights');
    const prepared = [join(h2.target, 'versions', 'v2'), join(meta, 'partials'), h2.staging];
    for (const f of readdirSync(meta)) if (f.startsWith('v2.')) prepared.push(join(meta, f));
    for (const p of prepared) rmSync(p, { recursive: true, force: true });
    mkdirSync(h2.staging);
    const again = startWorker(2);
    await again.waitFor(
      /update v2: broadcasts are over; fetching \d+ bucket\(s\) over ucx from rank\(s\) 0, 1, striped/,
    );
    await again.waitFor('update v2: fetched and verified');
    await again.waitFor('update v2: staged');
    expect(again.output()).not.toContain('from the source');
    const commit = await cli(['commit', '--version', 'v2']);
    expect(commit.stdout, `${commit.stderr}\n${logs()}`).toContain('update v2: committed');
    await expectLive(2);
    // What hosts 0 and 1 served over their links is exactly host 2's share of v2.
    const share = shareOf(2, 2).reduce((n, b) => n + b.size, 0);
    const served = async (i: number) => {
      const re = /update v2: stopped serving; (\d+) B served/;
      await workers[i]?.waitFor(re);
      return Number(re.exec(workers[i]?.output() ?? '')?.[1]);
    };
    const [fromSource, fromPeer] = [await served(0), await served(1)];
    expect(fromSource).toBeGreaterThan(0);
    expect(fromPeer).toBeGreaterThan(0);
    expect(fromSource + fromPeer).toBe(share);
    expect(metric(0, 'hotweights_worker_served_bytes_total')).toBe(fromSource);
    expect(metric(1, 'hotweights_worker_served_bytes_total')).toBe(fromPeer);
  });

  it('a link pulled mid-update aborts it with nothing committed anywhere; once it is back the update commits', async () => {
    // Host 2 receives at 4 Mbit/s: the update takes ~15 s there, and the link goes down once its
    // first bucket has landed (its own metric says so, no timing guess).
    lab.limitRate(2, '4mbit');
    const landed = () => metric(2, 'hotweights_buckets_total', 'role="land"');
    const before = landed();
    await submit(3);
    const begin = cli(['begin', '--version', 'v3', '--wait']);
    let now = landed();
    while (now <= before) {
      await new Promise((r) => setTimeout(r, 100));
      now = landed();
    }
    lab.linkDown(2);
    expect(now - before, 'buckets host 2 had landed when its link went down').toBeLessThan(
      shareOf(3, 2).length,
    );
    const failed = await begin;
    expect(failed.code, `${failed.stdout}\n${logs()}`).toBe(1);
    // Named by the coordinator (host 2's lease ran out) or by a survivor's transport (rank 2 lost).
    expect(failed.stderr, logs()).toMatch(
      /update v3 was aborted: (worker \S+ \(rank 2, node host2\) lost its lease|rank [01] \(host[01]\): .*rank 2 was lost \(nothing heard from it)/,
    );
    for (const i of [0, 1]) await workers[i]?.waitFor(/update v3: aborted .*live v2/);
    await expectLive(2);
    for (const h of lab.hosts) expect(existsSync(join(h.target, 'versions', 'v3')), h.nodeId).toBe(false);
    await expectLive(2);

    await lab.linkUp(2);
    lab.unlimitRate(2);
    await workers[2]?.waitFor(/update v3: aborted .*live v2/);
    await expectLive(2);
    await submit(3);
    const v3 = await cli(['begin', '--version', 'v3', '--wait']);
    expect(v3.stdout, `${v3.stderr}\n${logs()}`).toContain('update v3: committed, precommitted 3/3');
    await expectLive(3);
  });
});
