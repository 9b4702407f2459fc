/** Starts `hotweights coord-serve` as a real child process on free ports and waits until it listens. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { CLI_SOURCE, REPO_ROOT, SOURCE_NODE_ARGS } from './run-cli.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export interface CoordProcess {
  readonly endpoint: string;
  readonly pubEndpoint: string;
  readonly child: ChildProcess;
  output(): string;
  /** Resolves once the output holds `text`; the process prints each line in its own write. */
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
  /** SIGKILL (a crash) or SIGTERM (a clean stop); resolves when the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startCoordProcess(
  env: NodeJS.ProcessEnv = {},
  ports?: { port: number; pubPort: number },
): Promise<CoordProcess> {
  const port = ports?.port ?? (await freePort());
  const pubPort = ports?.pubPort ?? (await freePort());
  const endpoint = `tcp://127.0.0.1:${port}`;
  const pubEndpoint = `tcp://127.0.0.1:${pubPort}`;
  const child = spawn(
    process.execPath,
    [
      ...SOURCE_NODE_ARGS,
      CLI_SOURCE,
      'coord-serve',
      '--endpoint',
      endpoint,
      '--pub-endpoint',
      pubEndpoint,
      '--metrics-port',
      '0',
    ],
    { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const waitFor = async (text: string | RegExp, ms = 30_000) => {
    const deadline = Date.now() + ms;
    const seen = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
    while (!seen()) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`coord-serve never printed ${String(text)}; output:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // The whole line, so callers can read the metrics address from it.
  await waitFor(/coordinator listening on .*\n/);
  return {
    endpoint,
    pubEndpoint,
    child,
    output: () => out,
    waitFor,
    stop: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}
