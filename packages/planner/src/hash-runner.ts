/**
 * The hashing itself, shared by the hash pool's worker threads (hash-worker.ts) and its main
 * thread: `runTask` hashes a task's contiguous ranges, yielding the bytes hashed after every slice
 * and returning the hex digests. Bytes come through read-only memory maps of at most `pieceBytes`
 * (huge ranges piece by piece, consecutive small ranges sharing a mapping) or positional reads
 * into one reused buffer.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  type HashAlgorithm,
  hashAlgorithmInfo,
  unknownHashAlgorithmMessage,
} from '@hotweights/manifest/hash-algorithms';

/** How workers get file bytes: memory maps (default when the shm addon loads) or read() copies. */
export type HashIo = 'mmap' | 'read';

export interface HashRange {
  readonly offset: number;
  readonly length: number;
}

/**
 * read() buffer size: small enough to stay in a core's L2 cache between the read's copy and the
 * hash (as `cat`'s 128 KiB buffer does), large enough that syscalls cost nothing measurable.
 */
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
/** Most bytes a hasher keeps mapped at once. */
export const DEFAULT_PIECE_BYTES = 32 * 1024 * 1024;

/** The settings every hasher of one hashRanges call shares (a worker's `workerData`). */
export interface HashRunnerConfig {
  /** read() buffer size (io 'read'). */
  readonly chunkBytes: number;
  /** Most bytes mapped at once (io 'mmap'); a multiple of 2 MiB. */
  readonly pieceBytes: number;
  /** True when the shm addon loads here (io 'mmap' possible). */
  readonly shm: boolean;
}

/** One file's ranges, as a hasher hashes them. */
export interface WireTask {
  readonly id: number;
  readonly path: string;
  readonly ranges: readonly HashRange[];
  readonly algo: HashAlgorithm;
  readonly io: HashIo;
}

/**
 * Every task of a hashRanges call, posted once to each worker: in shared memory, so posting costs
 * the same however many ranges there are, and with one shared counter from which every hasher
 * (the main thread too) claims the next task itself, with no round trip through the main thread.
 */
export interface WireBatch {
  readonly algo: HashAlgorithm;
  readonly io: HashIo;
  readonly paths: readonly string[];
  /** Per task, in the order they are claimed: [id, path index, first range, end range]. */
  readonly table: SharedArrayBuffer;
  /** [offset, length] of every range, the tasks' one after the other. */
  readonly ranges: SharedArrayBuffer;
  /** One Int32: the next task to claim (Atomics.add); set past the end to stop everyone. */
  readonly next: SharedArrayBuffer;
}

/** A batch of `tasks`, to be claimed in the given order. */
export function wireBatch(
  tasks: readonly { readonly path: string; readonly ranges: readonly HashRange[] }[],
  order: readonly number[],
  algo: HashAlgorithm,
  io: HashIo,
): WireBatch {
  const paths: string[] = [];
  const pathIndex = new Map<string, number>();
  const rangeCount = tasks.reduce((n, t) => n + t.ranges.length, 0);
  const table = new SharedArrayBuffer(4 * 4 * order.length);
  const ranges = new SharedArrayBuffer(8 * 2 * rangeCount);
  const t32 = new Int32Array(table);
  const r64 = new Float64Array(ranges);
  let r = 0;
  for (const [k, id] of order.entries()) {
    const task = tasks[id] as (typeof tasks)[number];
    let p = pathIndex.get(task.path);
    if (p === undefined) {
      p = paths.push(task.path) - 1;
      pathIndex.set(task.path, p);
    }
    t32.set([id, p, r, r + task.ranges.length], 4 * k);
    for (const range of task.ranges) {
      r64[2 * r] = range.offset;
      r64[2 * r + 1] = range.length;
      r++;
    }
  }
  return { algo, io, paths, table, ranges, next: new SharedArrayBuffer(4) };
}

/** Claims the batch's next task, or undefined once every task is claimed (or the batch stopped). */
export function claimTask(batch: WireBatch): WireTask | undefined {
  const t32 = new Int32Array(batch.table);
  const k = Atomics.add(new Int32Array(batch.next), 0, 1);
  if (k >= t32.length / 4) return undefined;
  const r64 = new Float64Array(batch.ranges);
  const [id, p, from, end] = t32.subarray(4 * k, 4 * k + 4) as unknown as [number, number, number, number];
  const ranges: HashRange[] = [];
  for (let r = from; r < end; r++)
    ranges.push({ offset: r64[2 * r] as number, length: r64[2 * r + 1] as number });
  return { id, path: batch.paths[p] as string, ranges, algo: batch.algo, io: batch.io };
}

/** Stops every hasher claiming more tasks of the batch (a task failed). */
export function stopBatch(batch: WireBatch): void {
  Atomics.store(new Int32Array(batch.next), 0, new Int32Array(batch.table).length / 4);
}

/** What a hash worker posts back. */
export type HashWorkerReply =
  | { readonly ready: true }
  | { readonly id: number; readonly progress: number; readonly hexes?: string[] }
  | { readonly id: number; readonly error: string; readonly code?: string };

type Shm = typeof import('@hotweights/shm');

// One update() call hashes at most this much, so a thread that yields between slices (the main
// thread) stays responsive even inside a multi-GB tensor.
const SLICE = 8 * 1024 * 1024;
// A small file (config, tokenizer) costs less to read than to map, fault in and unmap.
const SMALL = 256 * 1024;

interface Reader {
  view(lo: number, hi: number): Uint8Array;
  sliceEnd(pos: number, rangeEnd: number): number;
  release(): void;
}

function shrank(size: number, end: number): Error {
  return new Error(`file is ${size} bytes but entries end at byte ${end} (file changed while hashing?)`);
}

/** The hasher of one thread: `runTask` with its settings, its shm module and its read buffer. */
export class HashRunner {
  private buf: Buffer | undefined;

  constructor(
    private readonly config: HashRunnerConfig,
    /** The shm addon's module, or null (then every task reads). */
    private readonly shm: Shm | null,
  ) {}

  /**
   * Views of [lo, hi) through one mapping that runs to the next piece boundary (or the task's
   * end), so consecutive small ranges share a mapping and a huge range is hashed piece by piece.
   */
  private mappedReader(shm: Shm, fd: number, end: number): Reader {
    const piece = this.config.pieceBytes;
    let mapped: { unmap(): void; view: Uint8Array } | null = null;
    let mapLo = 0;
    let mapHi = 0;
    const release = () => {
      mapped?.unmap();
      mapped = null;
    };
    return {
      view(lo, hi) {
        if (mapped === null || lo < mapLo || hi > mapHi) {
          release();
          // A file that shrank under a mapping would raise SIGBUS on access: check before mapping.
          const size = fstatSync(fd).size;
          mapHi = Math.min(end, (Math.floor(lo / piece) + 1) * piece);
          if (size < mapHi) throw shrank(size, mapHi);
          mapLo = lo;
          // Fault pages in on first touch: the kernel's fault-around maps a warm large folio's
          // pages in batches, measured cheaper here than MAP_POPULATE, which walks page by page.
          mapped = shm.mapRangeFd(fd, mapLo, mapHi - mapLo, { advice: 'none' });
        }
        return mapped.view.subarray(lo - mapLo, hi - mapLo);
      },
      sliceEnd(pos, rangeEnd) {
        return Math.min(rangeEnd, pos + SLICE, (Math.floor(pos / piece) + 1) * piece);
      },
      release,
    };
  }

  private readReader(fd: number): Reader {
    this.buf ??= Buffer.allocUnsafe(this.config.chunkBytes);
    const buf = this.buf;
    return {
      view(lo, hi) {
        const n = readSync(fd, buf, 0, hi - lo, lo);
        if (n !== hi - lo) throw shrank(fstatSync(fd).size, hi);
        return buf.subarray(0, n);
      },
      sliceEnd: (pos, rangeEnd) => Math.min(rangeEnd, pos + buf.length),
      release() {},
    };
  }

  /** Hashes a task's ranges; yields bytes hashed after every slice, returns the hex digests. */
  *runTask(task: WireTask): Generator<number, string[], void> {
    const info = hashAlgorithmInfo(task.algo);
    if (!info) throw new Error(unknownHashAlgorithmMessage(task.algo));
    const fd = openSync(task.path, 'r');
    let reader: Reader | undefined;
    try {
      const ranges = task.ranges;
      const first = ranges[0];
      const last = ranges[ranges.length - 1];
      const start = first ? first.offset : 0;
      const end = last ? last.offset + last.length : 0;
      reader =
        task.io === 'mmap' && this.shm && end - start >= SMALL
          ? this.mappedReader(this.shm, fd, end)
          : this.readReader(fd);
      const hexes: string[] = [];
      let pos = start;
      for (const r of ranges) {
        if (r.offset !== pos) throw new Error(`ranges are not contiguous at offset ${r.offset}`);
        const h = info.createHasher();
        const rangeEnd = r.offset + r.length;
        while (pos < rangeEnd) {
          const stop = reader.sliceEnd(pos, rangeEnd);
          h.update(reader.view(pos, stop));
          yield stop - pos;
          pos = stop;
        }
        hexes.push(h.digestHex());
      }
      return hexes;
    } finally {
      reader?.release();
      closeSync(fd);
    }
  }
}

/** The shm module when `wanted`, or null; loaded once per thread. */
export async function loadRunnerShm(wanted: boolean): Promise<Shm | null> {
  return wanted ? await import('@hotweights/shm') : null;
}
