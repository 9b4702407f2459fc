/**
 * The local launcher: starts N rank processes on this host (what `hotweights replicate` does
 * when no mpirun/torchrun started it). Each child gets RANK / WORLD_SIZE / LOCAL_RANK (read by
 * readLaunchContext) and reports JSON event lines on stdout. When a rank fails, the others are
 * stopped (SIGTERM, which makes them abort cleanly); the rendezvous directory lives in the staging
 * dir under this process's name, so a crashed launcher's leftovers are reclaimed like segments.
 */
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { newRunTag, segmentName } from './shm-segment.js';

export interface RankEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface LocalRankExit {
  readonly rank: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly events: readonly RankEvent[];
  /** Everything the rank wrote to stderr. */
  readonly stderr: string;
  /** The launcher stopped it (SIGTERM) after another rank failed: its own error is fallout. */
  readonly stopped: boolean;
}

export interface LocalLaunchOptions {
  readonly worldSize: number;
  /** Executable and arguments of every rank (normally node + the CLI + `replicate …`). */
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly onEvent?: (rank: number, event: RankEvent) => void;
  /** Aborting stops every rank. */
  readonly signal?: AbortSignal;
  /** Grace before SIGKILL for ranks that ignore SIGTERM (default 10 s). */
  readonly killGraceMs?: number;
}

/** Makes a rendezvous directory in `stagingDir` named after this process. */
export async function createRendezvousDir(stagingDir: string): Promise<string> {
  const dir = join(stagingDir, segmentName(newRunTag(), 'rdv'));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export async function removeRendezvousDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function launchLocalRanks(o: LocalLaunchOptions): Promise<LocalRankExit[]> {
  const children = Array.from({ length: o.worldSize }, (_, rank) =>
    spawn(o.command, [...o.args], {
      env: {
        ...process.env,
        ...o.env,
        RANK: String(rank),
        WORLD_SIZE: String(o.worldSize),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(o.worldSize),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stopping = false;
  const stopped = new Set<number>();
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    children.forEach((c, rank) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      stopped.add(rank);
      c.kill('SIGTERM');
    });
    const t = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, o.killGraceMs ?? 10_000);
    t.unref();
  };
  o.signal?.addEventListener('abort', stopAll, { once: true });
  try {
    return await Promise.all(
      children.map(
        (child, rank) =>
          new Promise<LocalRankExit>((resolve, reject) => {
            const events: RankEvent[] = [];
            let stderr = '';
            let pending = '';
            child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
              pending += chunk;
              let nl = pending.indexOf('\n');
              while (nl >= 0) {
                const line = pending.slice(0, nl).trim();
                pending = pending.slice(nl + 1);
                nl = pending.indexOf('\n');
                if (!line) continue;
                let ev: RankEvent;
                try {
                  ev = JSON.parse(line) as RankEvent;
                } catch {
                  ev = { type: 'output', line };
                }
                events.push(ev);
                o.onEvent?.(rank, ev);
              }
            });
            child.stderr?.setEncoding('utf8').on('data', (d: string) => {
              stderr += d;
            });
            child.on('error', reject);
            child.on('close', (code, signal) => {
              if (code !== 0) stopAll();
              resolve({ rank, code, signal, events, stderr, stopped: stopped.has(rank) });
            });
          }),
      ),
    );
  } finally {
    o.signal?.removeEventListener('abort', stopAll);
  }
}
