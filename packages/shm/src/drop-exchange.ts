/**
 * The per-bucket file drop that transports among processes on one host (local, cuda-ipc) share.
 * For each broadcast the root publishes a header `hdr.<bucket>.<generation>` in the rendezvous
 * directory (written as `.tmp`, then renamed, so it appears whole); every other participant waits
 * for it, takes the payload it describes and drops `ack.<bucket>.<generation>.<rank>`; the root
 * waits for every ack, then removes the header and the acks. Participants issue broadcasts in the
 * same order, so per-bucket generations name the same broadcast on every rank and several can be
 * in flight at once.
 *
 * The exchange owns that naming, the waits (failing at once when an awaited peer's process has
 * exited), the caller's abort signal and close. The transport owns the payload (where it lives,
 * how it is copied), the header's fields and its errors, which it hands in as `DropErrors`.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DirectoryWaiter, joinRendezvous } from './directory-waiter.js';
import { processAlive } from './shared-bytes.js';

/** How the transport's errors are made (this package does not know its error classes). */
export interface DropErrors {
  /** The transport's error for a message that already starts with its name. */
  readonly make: (message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) => Error;
  /** True for an error that is already the transport's own: it reaches the caller unwrapped. */
  readonly isOwn: (err: unknown) => boolean;
  /** What a broadcast rejects with once its signal (the caller's, or the exchange's) aborted. */
  readonly aborted: (signal: AbortSignal) => Error;
  /** The message, after `<name>: `, when awaited rank `rank` (process `pid`) has exited. */
  readonly peerExited: (rank: number, pid: number) => string;
}

export interface DropExchangeOptions {
  /** The rendezvous directory every participant sees. */
  readonly dir: string;
  readonly rank: number;
  /** The transport's name, the prefix of its messages (`local: bucket 3: …`). */
  readonly name: string;
  /**
   * True when the payload lives in the root's process (a CUDA IPC handle): a receiver then fails
   * if the root exits before it acks. False when it is a file that outlives the root.
   */
  readonly rootHoldsPayload: boolean;
  readonly errors: DropErrors;
}

/** One broadcast's view of the exchange, handed to the transport's part. */
export interface BucketDrop {
  /** `<bucket>.<generation>`, as the files are named. */
  readonly name: string;
  /** Aborts when the caller's signal does, a peer process exits or the exchange closes. */
  readonly signal: AbortSignal;
  /** Root: publishes `header`, waits for every ack, then removes the header and the acks. */
  publish(header: object): Promise<void>;
  /** Receiver: waits for the root's header and returns it parsed. */
  readHeader<T>(): Promise<T>;
  /** Receiver: tells the root this rank has its payload. */
  ack(): Promise<void>;
}

interface Pending {
  /** Rank -> the file whose appearance shows that rank did its part; removed once seen. */
  readonly awaits: Map<number, string>;
  readonly reject: (err: Error) => void;
}

/** One per transport instance and rendezvous directory; see the module comment. */
export class DropExchange {
  private readonly waiter: DirectoryWaiter;
  private readonly generations = new Map<number, number>();
  private readonly pending = new Set<Pending>();
  private peers = new Map<number, number>();

  constructor(private readonly o: DropExchangeOptions) {
    this.waiter = new DirectoryWaiter(o.dir, () => this.checkPeers());
  }

  /** Registers this rank in the directory and waits for the others (`joinRendezvous`). */
  async join(o: {
    worldSize: number;
    timeoutS: number;
    timeoutError: (message: string) => Error;
  }): Promise<void> {
    this.peers = await joinRendezvous(this.o.dir, this.waiter, { rank: this.o.rank, ...o });
  }

  /**
   * Runs this rank's `part` of one broadcast (ranks.length > 1) on the bucket's next generation.
   * Errors that are not the transport's own come back as `<name>: bucket N: …`.
   */
  async run(
    request: { bucketId: number; root: number; ranks: readonly number[]; signal?: AbortSignal },
    part: (drop: BucketDrop) => Promise<void>,
  ): Promise<void> {
    const { bucketId, root, ranks, signal } = request;
    const { dir, rank, errors } = this.o;
    const gen = this.generations.get(bucketId) ?? 0;
    this.generations.set(bucketId, gen + 1);
    const name = `${bucketId}.${gen}`;
    // Rejects as soon as the signal fires or a participant's process dies.
    const ctrl = new AbortController();
    // Stryker disable next-line OptionalChaining: equivalent: only registered when there is a signal
    const onAbort = () => ctrl.abort(signal?.reason);
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent: removed once the broadcast ends, and a signal aborts once
    signal?.addEventListener('abort', onAbort, { once: true });
    const awaits = new Map<number, string>();
    if (rank !== root) awaits.set(root, `hdr.${name}`);
    else for (const r of ranks) if (r !== root) awaits.set(r, `ack.${name}.${r}`);
    const pending: Pending = { awaits, reject: (err) => ctrl.abort(err) };
    this.pending.add(pending);
    const hdr = join(dir, `hdr.${name}`);
    const drop: BucketDrop = {
      name,
      signal: ctrl.signal,
      publish: async (header) => {
        const acks = [...awaits];
        try {
          if (ctrl.signal.aborted) throw errors.aborted(ctrl.signal);
          await writeFile(`${hdr}.tmp`, JSON.stringify(header));
          await rename(`${hdr}.tmp`, hdr);
          await Promise.all(
            acks.map(async ([r, file]) => {
              await this.waiter.wait(file, ctrl.signal);
              awaits.delete(r);
            }),
          );
        } finally {
          await rm(hdr, { force: true });
          await Promise.all(acks.map(([, file]) => rm(join(dir, file), { force: true })));
        }
      },
      readHeader: async <T>() => {
        await this.waiter.wait(`hdr.${name}`, ctrl.signal);
        if (!this.o.rootHoldsPayload) awaits.clear();
        return JSON.parse(await readFile(hdr, 'utf8')) as T;
      },
      // Stryker disable next-line StringLiteral: equivalent: the root looks for the file, not its content
      ack: () => writeFile(join(dir, `ack.${name}.${rank}`), ''),
    };
    try {
      await part(drop);
    } catch (err) {
      if (ctrl.signal.aborted) throw errors.aborted(ctrl.signal);
      throw errors.isOwn(err)
        ? err
        : errors.make(`${this.o.name}: bucket ${bucketId}: ${(err as Error).message}`, { cause: err });
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.pending.delete(pending);
    }
  }

  /** Rejects every broadcast in flight (`<name>: transport closed`). */
  close(): void {
    for (const p of [...this.pending]) p.reject(this.o.errors.make(`${this.o.name}: transport closed`));
  }

  private checkPeers(): void {
    for (const p of [...this.pending]) {
      for (const [r, file] of p.awaits) {
        const pid = this.peers.get(r);
        // A peer that did its part and then exited is fine: look for its file once more.
        if (pid !== undefined && !processAlive(pid) && !existsSync(join(this.o.dir, file))) {
          p.reject(
            this.o.errors.make(`${this.o.name}: ${this.o.errors.peerExited(r, pid)}`, {
              details: { rank: r },
            }),
          );
        }
      }
    }
  }
}
