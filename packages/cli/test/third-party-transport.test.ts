/**
 * A transport published by a third party, end to end, as a user meets it: the CLI, core and the
 * template transport (which lives outside the workspace) are built and `npm pack`ed, installed
 * into a fresh application from their tarballs (their other dependencies come from the npm
 * registry), and the installed `hotweights` binary discovers, probes and selects the transport.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installedCli, installPackedApp, run, userEnv } from './packed-app.js';
import { REPO_ROOT } from './run-cli.js';

const TEMPLATE = join(REPO_ROOT, 'templates', 'transport-template');

interface Report {
  selected: string | null;
  forced: string | null;
  transports: {
    name: string;
    version: string | null;
    origin: string;
    priority: number;
    available: boolean;
    reason?: string;
    detail?: string | null;
  }[];
}

let work: string;
let app: string;

function hotweights(args: string[], env: NodeJS.ProcessEnv = {}) {
  return installedCli(app, args, env);
}

async function report(env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<Report> {
  const r = await hotweights(['transports', '--json', ...args], env);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hw-third-party-'));
  // Build what is packed: the CLI and every package it references, then the template against
  // core's built output (as a third party builds against the published core).
  await run('npx', ['tsc', '-b', 'packages/cli', 'packages/compliance'], { cwd: REPO_ROOT });
  await run('npx', ['tsc', '-p', 'templates/transport-template'], { cwd: REPO_ROOT });

  // A second copy of the template that claims a core API this hotweights does not provide.
  const future = join(work, 'future');
  cpSync(join(TEMPLATE, 'dist'), join(future, 'dist'), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(TEMPLATE, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(
    join(future, 'package.json'),
    JSON.stringify({
      ...pkg,
      name: 'hotweights-transport-tcp-next',
      version: '2.0.0',
      hotweights: { transport: './dist/index.js', coreApi: '>=2.0.0' },
    }),
  );

  // The compliance suite is what the application's ranks run, as a plugin author's tests would.
  app = await installPackedApp(work, [TEMPLATE, future, join(REPO_ROOT, 'packages', 'compliance')]);
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** One rank of a job in the application: select the transport by name, run the compliance suite. */
const RANK_SCRIPT = `
import { loadConfig, readLaunchContext, TransportManager } from '@hotweights/core';
import { runRankCompliance } from '@hotweights/compliance';
const config = loadConfig();
const { rank, worldSize, launcher } = readLaunchContext();
const manager = new TransportManager();
await manager.discover(process.cwd());
const { provider } = await manager.select({ rank, worldSize, launcher, config }, 'tcp');
const transport = await provider.create({ rank, worldSize, config });
const report = await runRankCompliance(transport);
await transport.close();
console.log(JSON.stringify({ rank, transport: transport.name, passed: report.passed.length }));
`;

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

describe('a third-party transport installed next to the CLI', { timeout: 60_000 }, () => {
  it("the workspace's own bin runs as a program (a fresh clone links it without npm's chmod)", async () => {
    const bin = join(REPO_ROOT, 'packages', 'cli', 'bin', 'hotweights.js');
    expect(statSync(bin).mode & 0o111).toBe(0o111);
    const { stdout } = await run(bin, ['--version'], { env: userEnv() });
    const cli = JSON.parse(readFileSync(join(REPO_ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(stdout.trim()).toBe(cli.version);
  });

  it('is discovered with its version and origin, and unavailable with a reason without a rendezvous', async () => {
    const rep = await report();
    const tcp = rep.transports.find((t) => t.name === 'tcp');
    expect(tcp).toEqual(
      expect.objectContaining({
        version: '0.1.0',
        origin: 'hotweights-transport-tcp',
        priority: 5,
        available: false,
        reason: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)',
      }),
    );
    expect(rep.transports.find((t) => t.name === 'local')).toMatchObject({
      origin: 'builtin',
      available: true,
    });
    expect(rep.selected).toBe('local');
  });

  it('is available with a rendezvous, and still does not beat the built-ins unless forced', async () => {
    const env = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29555' };
    const rep = await report(env);
    expect(rep.transports.find((t) => t.name === 'tcp')).toMatchObject({
      available: true,
      detail: 'rank 0 listens on 127.0.0.1:29555',
    });
    expect(rep.selected).toBe('local');

    expect(await report(env, ['--transport', 'tcp'])).toMatchObject({ selected: 'tcp', forced: 'tcp' });
    expect(await report({ ...env, HOTWEIGHTS_TRANSPORT: 'tcp' })).toMatchObject({ selected: 'tcp' });
    const table = await hotweights(['transports', '--transport', 'tcp'], env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(
      /^\* tcp\s+5\s+0\.1\.0\s+hotweights-transport-tcp\s+available \(rank 0 listens/m,
    );
    expect(table.stdout.trim().split('\n').at(-1)).toBe('selected: tcp (forced)');
  });

  it('forced without a rendezvous: one error line that says why', async () => {
    const r = await hotweights(['transports', '--transport', 'tcp']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^hotweights: error \[HW_NO_TRANSPORT\]: transport "tcp" is unavailable: no rendezvous: set MASTER_ADDR and MASTER_PORT/,
    );
  });

  it('reports a package written for an incompatible core API instead of crashing', async () => {
    const rep = await report();
    expect(rep.transports.find((t) => t.origin === 'hotweights-transport-tcp-next')).toEqual(
      expect.objectContaining({
        name: 'tcp-next',
        version: '2.0.0',
        available: false,
        reason: 'needs core API >=2.0.0, this hotweights provides 1.1.0',
      }),
    );
    // the compatible package of the same family is unaffected
    expect(rep.transports.find((t) => t.name === 'tcp')?.origin).toBe('hotweights-transport-tcp');
  });

  it('moves bytes between processes of the application, sharing one copy of core', async () => {
    const cores = readdirSync(join(app, 'node_modules'), { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith(join('@hotweights', 'core', 'package.json')),
    );
    expect(cores).toEqual([join('@hotweights', 'core', 'package.json')]);
    writeFileSync(join(app, 'rank.mjs'), RANK_SCRIPT);
    const env = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(await freePort()), WORLD_SIZE: '2' };
    const ranks = await Promise.all(
      [0, 1].map((rank) =>
        run(process.execPath, ['rank.mjs'], { cwd: app, env: userEnv({ ...env, RANK: String(rank) }) }),
      ),
    );
    for (const [rank, r] of ranks.entries()) {
      const out = JSON.parse(r.stdout) as { rank: number; transport: string; passed: number };
      expect(out).toMatchObject({ rank, transport: 'tcp' });
      expect(out.passed).toBeGreaterThan(5);
    }
  });
});
