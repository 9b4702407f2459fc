/**
 * The TCP template transport (templates/transport-template) against the machine's limit measured
 * in the same run: a raw loopback TCP stream between two processes, one socket, the same bytes.
 * The template relays everything through rank 0, so with 3 ranks rank 0's link carries each
 * bucket twice; the table shows that as well.
 *
 * Usage: node --conditions=@hotweights/source --import tsx bench/transport-tcp/run.ts [MIB] [REPS]
 * Prints a table and writes bench/results/transport-tcp.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const RESULTS = fileURLToPath(new URL('../results/transport-tcp.json', import.meta.url));
const NODE_ARGS = ['--conditions=@hotweights/source', '--import', 'tsx'];
const BUCKET_MIB = 16;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Runs this file as a child in `role`; resolves with its last stdout line, parsed. */
function child(role: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...NODE_ARGS, SELF, role, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${role} exited with ${code}`));
      const last = out.trim().split('\n').at(-1) || '{}'; // only rank 0 reports
      resolve(JSON.parse(last) as Record<string, number>);
    });
  });
}

/** Raw limit, receiving side: counts bytes into a reused buffer (onread), times first to last. */
async function rawReceive(port: number, bytes: number): Promise<void> {
  const buffer = Buffer.alloc(1 << 20);
  await new Promise<void>((resolve) => {
    let got = 0;
    let start = 0;
    const sock = connect({
      host: '127.0.0.1',
      port,
      onread: {
        buffer,
        callback: (n: number) => {
          if (got === 0) start = performance.now();
          got += n;
          if (got >= bytes) {
            process.stdout.write(`${JSON.stringify({ seconds: (performance.now() - start) / 1000 })}\n`);
            sock.end();
            resolve();
          }
          return true;
        },
      },
    });
  });
}

/** Raw limit, sending side: listens, then writes `bytes` from one touched buffer. */
async function rawSend(bytes: number): Promise<void> {
  const chunk = Buffer.alloc(4 << 20, 0xab);
  const srv = createServer((sock) => {
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
          return void sock.once('drain', pump);
      }
      sock.end();
      srv.close();
    };
    pump();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${JSON.stringify({ port: (srv.address() as { port: number }).port })}\n`);
}

/** One rank of the template transport: rank 0 broadcasts `mib` in 16 MiB buckets, `window` at a time. */
async function rank(mib: number, window: number): Promise<void> {
  const { loadConfig, readLaunchContext } = await import('@hotweights/core');
  const { provider } = await import('../../templates/transport-template/src/index.js');
  const { rank: me, worldSize } = readLaunchContext();
  const t = await provider.create({ rank: me, worldSize, config: loadConfig() });
  const ranks = Array.from({ length: worldSize }, (_, i) => i);
  const count = mib / BUCKET_MIB;
  // Buffers touched before timing (first-touch memory is several times slower than reused).
  const buffers = Array.from({ length: window }, () =>
    new Uint8Array(BUCKET_MIB << 20).fill(me === 0 ? 0xcd : 1),
  );
  const once = async (base: number) => {
    for (let b = 0; b < count; b += window) {
      await Promise.all(
        buffers
          .slice(0, Math.min(window, count - b))
          .map((data, i) => t.broadcast({ bucketId: base + b + i, root: 0, ranks, data })),
      );
    }
  };
  await once(0); // warm-up: connections, allocations
  const start = performance.now();
  await once(100_000);
  const seconds = (performance.now() - start) / 1000;
  if (buffers.some((b) => b[b.length - 1] !== 0xcd)) throw new Error(`rank ${me}: wrong bytes`);
  if (me === 0) process.stdout.write(`${JSON.stringify({ seconds })}\n`);
  await t.close();
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 256);
  const reps = Number(process.argv[3] ?? 3);
  const bytes = mib * 1024 * 1024;
  const rows: { case: string; seconds: number[]; gbps: number; ratio?: number }[] = [];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

  const raw: number[] = [];
  const tcp: Record<string, number[]> = {
    'template, 2 ranks, 1 in flight': [],
    'template, 2 ranks, 4 in flight': [],
    'template, 3 ranks, 4 in flight': [],
  };
  // Alternate the limit and the product in every repetition, so both see the same machine.
  for (let r = 0; r < reps; r++) {
    const sender = spawn(process.execPath, [...NODE_ARGS, SELF, 'raw-send', String(bytes)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const senderDone = new Promise((resolve) => sender.once('close', resolve));
    const port = await new Promise<number>((resolve) => {
      sender.stdout
        .setEncoding('utf8')
        .once('data', (d: string) => resolve((JSON.parse(d) as { port: number }).port));
    });
    raw.push((await child('raw-receive', [String(port), String(bytes)])).seconds ?? Number.NaN);
    await senderDone;

    for (const [name, world, window] of [
      ['template, 2 ranks, 1 in flight', 2, 1],
      ['template, 2 ranks, 4 in flight', 2, 4],
      ['template, 3 ranks, 4 in flight', 3, 4],
    ] as const) {
      const env = {
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(await freePort()),
        WORLD_SIZE: String(world),
      };
      const results = await Promise.all(
        Array.from({ length: world }, (_, i) =>
          child('rank', [String(mib), String(window)], { ...env, RANK: String(i) }),
        ),
      );
      tcp[name]?.push(results[0]?.seconds ?? Number.NaN);
    }
  }
  const rawGbps = bytes / median(raw) / 1e9;
  rows.push({ case: 'limit: raw loopback TCP, 1 stream', seconds: raw, gbps: rawGbps });
  for (const [name, secs] of Object.entries(tcp)) {
    const gbps = bytes / median(secs) / 1e9;
    rows.push({ case: name, seconds: secs, gbps, ratio: gbps / rawGbps });
  }

  const header = `| case (${mib} MiB, ${BUCKET_MIB} MiB buckets, median of ${reps}) | GB/s per receiver | vs limit |`;
  console.log(header);
  console.log('| --- | --- | --- |');
  for (const row of rows)
    console.log(
      `| ${row.case} | ${row.gbps.toFixed(2)} | ${row.ratio === undefined ? '1.00' : row.ratio.toFixed(2)} |`,
    );
  mkdirSync(fileURLToPath(new URL('../results/', import.meta.url)), { recursive: true });
  writeFileSync(
    RESULTS,
    `${JSON.stringify({ machine: { cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version }, mib, bucketMib: BUCKET_MIB, reps, rows }, null, 2)}\n`,
  );
  console.log(`wrote ${RESULTS}`);
}

const [role, a, b] = process.argv.slice(2);
if (role === 'raw-send') await rawSend(Number(a));
else if (role === 'raw-receive') await rawReceive(Number(a), Number(b));
else if (role === 'rank') await rank(Number(a), Number(b));
else await main();
