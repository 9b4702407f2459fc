import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { checkProviderContract } from '@hotweights/compliance';
import { loadConfig, type ProbeContext } from '@hotweights/core';
import { afterEach, describe, expect, it } from 'vitest';
import { provider } from '../src/index.js';

const RANK_MAIN = fileURLToPath(new URL('./rank-main.ts', import.meta.url));
const ctx: ProbeContext = { rank: 0, worldSize: 1, launcher: 'none', config: loadConfig({}) };

/** A port nobody listens on right now (the kernel picks it). */
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

interface RankResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runRank(env: NodeJS.ProcessEnv): Promise<RankResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RANK_MAIN], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('hotweights-transport-tcp', () => {
  const saved = { addr: process.env.MASTER_ADDR, port: process.env.MASTER_PORT };
  afterEach(() => {
    for (const [name, value] of [
      ['MASTER_ADDR', saved.addr],
      ['MASTER_PORT', saved.port],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('without a rendezvous: keeps the provider contract and says why it is unavailable', async () => {
    delete process.env.MASTER_ADDR;
    delete process.env.MASTER_PORT;
    expect(await provider.probe(ctx)).toEqual({
      available: false,
      reason: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)',
    });
    const report = await checkProviderContract(provider, ctx);
    expect(report.failures).toEqual([]);
    expect(report.passed).toContain('probe resolves to {available} and does not throw');
  });

  it('rejects a MASTER_PORT that is not a port, naming it', async () => {
    process.env.MASTER_ADDR = '127.0.0.1';
    process.env.MASTER_PORT = 'http';
    expect(await provider.probe(ctx)).toEqual({
      available: false,
      reason: 'MASTER_PORT="http" is not a TCP port (1..65535)',
    });
  });

  it('with a rendezvous: available, creates a transport and closes it twice', async () => {
    process.env.MASTER_ADDR = '127.0.0.1';
    process.env.MASTER_PORT = String(await freePort());
    expect(await provider.probe(ctx)).toMatchObject({ available: true });
    const report = await checkProviderContract(provider, ctx, { rank: 0, worldSize: 1, config: ctx.config });
    expect(report.passed).toContain('create() returns a transport and close() is idempotent');
  });

  it('passes the rank compliance suite in 3 processes on 127.0.0.1', async () => {
    const port = String(await freePort());
    const results = await Promise.all(
      [0, 1, 2].map((rank) =>
        runRank({
          RANK: String(rank),
          WORLD_SIZE: '3',
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: port,
          HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30',
        }),
      ),
    );
    for (const [rank, r] of results.entries()) {
      expect(r.stderr, `rank ${rank} stderr`).toBe('');
      expect(r.code, `rank ${rank} exit code`).toBe(0);
      const summary = JSON.parse(r.stdout) as { rank: number; worldSize: number; passed: string[] };
      expect(summary).toMatchObject({ rank, worldSize: 3 });
      expect(summary.passed).toContain('6 broadcasts in flight at once');
      expect(summary.passed).toContain('a bucket id used again by a later broadcast carries the new bytes');
      expect(summary.passed).toContain('a broadcast whose signal is already aborted rejects');
      expect(summary.passed).toContain('transport still works after an aborted request');
    }
  });
});
