/**
 * Waits for file names to appear in one directory (inotify plus a polling safety net), and calls
 * `liveness` every LIVENESS_MS while anything waits, so callers can fail at once when the peer
 * that should write a file has died. Transports that meet their peers through a rendezvous
 * directory on this host (local, cuda-ipc) share it.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

function reasonOf(signal: AbortSignal): Error {
  const r = signal.reason as unknown;
  return r instanceof Error ? r : new Error(`aborted: ${String(r)}`);
}

const POLL_MS = 20;
const LIVENESS_MS = 200;

export class DirectoryWaiter {
  private readonly waiters = new Map<string, Set<() => void>>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private lastLiveness = 0;

  constructor(
    private readonly dir: string,
    private readonly liveness: () => void,
  ) {}

  wait(name: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let set = this.waiters.get(name);
      if (!set) {
        set = new Set();
        this.waiters.set(name, set);
      }
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiters.get(name)?.delete(done);
        if (this.waiters.get(name)?.size === 0) this.waiters.delete(name);
        this.stopIfIdle();
        reject(reasonOf(signal as AbortSignal));
      };
      set.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.start();
      void this.scan();
    });
  }

  private start(): void {
    if (this.timer) return;
    try {
      this.watcher = watch(this.dir, () => void this.scan());
      this.watcher.on('error', () => {});
    } catch {
      // Polling alone still works.
    }
    this.timer = setInterval(() => void this.scan(), POLL_MS);
  }

  private stopIfIdle(): void {
    if (this.waiters.size > 0) return;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async scan(): Promise<void> {
    if (this.scanning || this.waiters.size === 0) return;
    this.scanning = true;
    try {
      const names = new Set(await readdir(this.dir).catch(() => [] as string[]));
      for (const [name, set] of [...this.waiters]) {
        if (!names.has(name)) continue;
        this.waiters.delete(name);
        for (const w of set) w();
      }
      const now = Date.now();
      if (this.waiters.size > 0 && now - this.lastLiveness >= LIVENESS_MS) {
        this.lastLiveness = now;
        this.liveness();
      }
    } finally {
      this.scanning = false;
      this.stopIfIdle();
    }
  }
}

/**
 * Registers `rank` in a rendezvous directory (`rank.<r>.pid`) and waits, up to `timeoutS`, for
 * every rank of the world to do the same. Returns each rank's pid, for liveness checks.
 */
export async function joinRendezvous(
  dir: string,
  waiter: DirectoryWaiter,
  o: {
    readonly rank: number;
    readonly worldSize: number;
    readonly timeoutS: number;
    readonly timeoutError: (message: string) => Error;
  },
): Promise<Map<number, number>> {
  const tmp = join(dir, `rank.${o.rank}.pid.tmp${process.pid}`);
  await writeFile(tmp, String(process.pid));
  await rename(tmp, join(dir, `rank.${o.rank}.pid`));
  const ctrl = new AbortController();
  const timer = setTimeout(
    () => ctrl.abort(o.timeoutError(`not every rank joined ${dir} within ${o.timeoutS} s`)),
    o.timeoutS * 1000,
  );
  const peers = new Map<number, number>();
  try {
    for (let r = 0; r < o.worldSize; r++) {
      await waiter.wait(`rank.${r}.pid`, ctrl.signal);
      peers.set(r, Number(await readFile(join(dir, `rank.${r}.pid`), 'utf8')));
    }
  } finally {
    clearTimeout(timer);
  }
  return peers;
}
