/**
 * Control-plane benchmark, in one run on one machine:
 *  1. RPC round trip (sequential `ping`, `status`, `heartbeat` through CoordinatorClient) beside a
 *     raw ZeroMQ DEALER -> ROUTER echo of the same request bytes, server in another process.
 *     Rounds alternate between the two so machine noise hits both alike. Target: within 2x raw.
 *  2. begin -> commit with W simulated workers (default 64) spread over P processes (default 4):
 *     time from sending `begin` to receiving the `commit` event (every worker fetched the plan and
 *     precommitted; auto-commit on quorum). No bytes move: this is the control plane's own cost.
 * Prints a table and writes bench/results/control-plane.json (control-plane-redis.json with --redis).
 *
 * Usage: npx tsx --conditions=@hotweights/source bench/control-plane/run.ts
 *          [--rpcs 2000] [--rounds 5] [--workers 64] [--procs 4] [--updates 10] [--redis]
 * With --redis the coordinator uses a redis-server started here (127.0.0.1, free port, no
 * persistence): every state change is written to Redis before the reply.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CoordEvent, CoordinatorClient, EventSubscriber } from '@hotweights/coordinator';
import type { Plan, PlanBucket } from '@hotweights/core';
import { computePlanDigest } from '@hotweights/manifest';
import { Dealer } from 'zeromq';

const root = fileURLToPath(new URL('../../', import.meta.url));
const here = fileURLToPath(new URL('.', import.meta.url));
const NODE_ARGS = ['--conditions=@hotweights/source', '--import', 'tsx'];

function arg(name: string, fallback: string): number {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback);
}
const RPCS = arg('rpcs', '2000');
const ROUNDS = arg('rounds', '5');
const WORKERS = arg('workers', '64');
const PROCS = arg('procs', '4');
const UPDATES = arg('updates', '10');
const REDIS = process.argv.includes('--redis');

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

function startChild(script: string, args: string[]): Promise<{ child: ChildProcess; firstLine: string }> {
  const child = spawn(process.execPath, [...NODE_ARGS, join(here, script), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve({ child, firstLine: buf.slice(0, nl) });
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

function plan(version: string): Plan {
  const buckets: PlanBucket[] = Array.from({ length: WORKERS }, (_, i) => ({
    bucket_id: i,
    size: 256,
    consumer_ranks: [i],
    items: [
      {
        key: `layer.${i}.weight:0`,
        tensor: `layer.${i}.weight`,
        shard_rank: 0,
        kind: 'tensor' as const,
        nbytes: 256,
        hash: `xxh3-64:${i.toString(16).padStart(16, '0')}`,
        uri: 'model.safetensors',
        file_offset: i * 256,
        dtype: 'F32',
        shape: [64],
        offset: 0,
      },
    ],
  }));
  const body: Omit<Plan, 'digest'> = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version,
    prev_version: null,
    model_id: null,
    created_at: new Date().toISOString(),
    hash_algo: 'xxh3-64',
    source: { root: '/nonexistent', rank: 0 },
    next_manifest: { digest: 'sha256:00', path: null },
    bucket_bytes: 256,
    alignment: 256,
    total_bytes: WORKERS * 256,
    checkpoint_bytes: WORKERS * 256,
    world_size: WORKERS,
    buckets,
    removed: [],
  };
  return { ...body, digest: computePlanDigest(body) };
}

async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  await new Promise((r) => setTimeout(r, 300));
  return { url: `redis://127.0.0.1:${port}/0`, child };
}

const redis = REDIS ? await startRedis() : undefined;
const { child: serverChild, firstLine } = await startChild('servers.ts', redis ? [redis.url] : []);
const eps = JSON.parse(firstLine) as { endpoint: string; pubEndpoint: string; raw: string };
const children: ChildProcess[] = [serverChild, ...(redis ? [redis.child] : [])];
const results: Record<string, unknown> = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg_at_start: loadavg(), shared: true },
  node: process.version,
  params: {
    rpcs: RPCS,
    rounds: ROUNDS,
    workers: WORKERS,
    procs: PROCS,
    updates: UPDATES,
    backend: REDIS ? 'redis' : 'memory',
  },
};
try {
  // ---- 1. RPC round trips ---------------------------------------------------------------------
  const client = new CoordinatorClient(eps.endpoint, { timeoutMs: 10_000 });
  const reg = await client.call<{ worker_id: string; lease_key: string }>('register', {
    rank: 0,
    world_size: 1,
  });
  const raw = new Dealer({ linger: 0 });
  raw.connect(eps.raw);
  const request = JSON.stringify({ id: 'bench.1', method: 'ping', params: {} });
  const lat: Record<string, number[]> = { raw: [], ping: [], heartbeat: [], status: [] };
  const time = async (into: number[], fn: () => Promise<unknown>) => {
    for (let i = 0; i < RPCS; i++) {
      const t0 = process.hrtime.bigint();
      await fn();
      into.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  };
  // Warm-up: connections, JIT.
  for (let i = 0; i < 500; i++) {
    await raw.send(request);
    await raw.receive();
    await client.ping();
  }
  for (let r = 0; r < ROUNDS; r++) {
    await time(lat.raw as number[], async () => {
      await raw.send(request);
      await raw.receive();
    });
    await time(lat.ping as number[], () => client.ping());
    await time(lat.heartbeat as number[], () =>
      client.call('heartbeat', { worker_id: reg.worker_id, lease_key: reg.lease_key }),
    );
    await time(lat.status as number[], () => client.status());
  }
  raw.close();
  client.close();
  const rawP50 = pct(lat.raw as number[], 50);
  const rpc = Object.fromEntries(
    Object.entries(lat).map(([k, xs]) => [
      k,
      { p50_us: pct(xs, 50), p99_us: pct(xs, 99), n: xs.length, p50_vs_raw: pct(xs, 50) / rawP50 },
    ]),
  );
  results.rpc = rpc;

  // ---- 2. begin -> commit with simulated workers ------------------------------------------
  // A fresh coordinator for the fleet: the RPC client above holds rank 0 of a world of 1, and a
  // coordinator refuses workers of another world size while it is live.
  const fleetServer = await startChild('servers.ts', redis ? [redis.url] : []);
  children.push(fleetServer.child);
  const fleet = JSON.parse(fleetServer.firstLine) as { endpoint: string; pubEndpoint: string };
  const per = Math.ceil(WORKERS / PROCS);
  for (let p = 0; p < PROCS; p++) {
    const first = p * per;
    const n = Math.min(per, WORKERS - first);
    if (n <= 0) break;
    const { child } = await startChild('sim-workers.ts', [
      fleet.endpoint,
      fleet.pubEndpoint,
      String(first),
      String(n),
      String(WORKERS),
    ]);
    children.push(child);
  }
  const driver = new CoordinatorClient(fleet.endpoint, { timeoutMs: 30_000 });
  const commits = new Map<string, () => void>();
  const sub = new EventSubscriber(fleet.pubEndpoint, (e: CoordEvent) => {
    if (e.event === 'commit' || e.event === 'abort') commits.get(String(e.version))?.();
  });
  // Let every SUB socket finish joining before the first begin.
  await new Promise((r) => setTimeout(r, 1000));
  const durations: number[] = [];
  for (let u = 0; u < UPDATES + 1; u++) {
    const version = `bench-${u}`;
    await driver.submitPlan(plan(version));
    const done = new Promise<void>((resolve) => commits.set(version, resolve));
    const t0 = performance.now();
    await driver.begin(version);
    await done;
    const ms = performance.now() - t0;
    if (u > 0) durations.push(ms); // the first update warms every worker's code paths
    const final = (await driver.status()).updates.find((x) => x.version === version);
    if (final?.state !== 'committed')
      throw new Error(`update ${version} ended ${final?.state}: ${final?.reason}`);
  }
  sub.close();
  driver.close();
  results.begin_to_commit = {
    workers: WORKERS,
    processes: PROCS,
    updates: durations.length,
    p50_ms: pct(durations, 50),
    max_ms: Math.max(...durations),
    all_ms: durations.map((d) => Math.round(d * 10) / 10),
  };
  results.loadavg_at_end = loadavg();

  const fmt = (n: number) => n.toFixed(1);
  console.log(
    `RPC round trip (sequential, loopback, server in another process, ${REDIS ? 'redis' : 'memory'} backend)`,
  );
  console.log('what        p50 µs   p99 µs   p50 / raw');
  for (const [k, v] of Object.entries(rpc)) {
    console.log(
      `${k.padEnd(10)} ${fmt(v.p50_us).padStart(7)} ${fmt(v.p99_us).padStart(8)} ${v.p50_vs_raw.toFixed(2).padStart(10)}`,
    );
  }
  const b = results.begin_to_commit as { p50_ms: number; max_ms: number };
  console.log(
    `\nbegin -> commit, ${WORKERS} simulated workers in ${PROCS} processes, ${UPDATES} updates: p50 ${fmt(b.p50_ms)} ms, max ${fmt(b.max_ms)} ms`,
  );
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const out = `bench/results/control-plane${REDIS ? '-redis' : ''}.json`;
  writeFileSync(join(root, out), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${out}`);
} finally {
  for (const c of children) c.kill('SIGTERM');
}
