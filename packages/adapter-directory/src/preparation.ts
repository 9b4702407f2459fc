/**
 * One version being prepared beside the live one. The files are laid out as soon as the update
 * starts: hard links for files that did not change, kernel copies of live files with the same
 * layout but for the entries this rank will write (started in the order buckets will need them),
 * new files for the rest (their unchanged entries kernel-copied from the live version in
 * `finish`). Each
 * verified bucket is then written straight from staging into place while later buckets still
 * land, and `finish` fills what staging did not carry (unchanged entries of rebuilt files), checks
 * that every entry is accounted for, and renames the directory into `versions/`.
 *
 * A rank holds its share of a version: under tensor parallelism, the files with its shards (and
 * the whole files every rank gets), as a serving engine loads them. A file none of whose entries
 * this rank consumes, and that its live version does not hold, is left out; the version's record
 * then lists the files it holds.
 *
 * Files keep the source's mode bits: read from the checkpoint when it is on this host (the plan's
 * source root), else the live version's file's, else the default (0644 under the usual umask).
 */
import { constants } from 'node:fs';
import { copyFile, type FileHandle, link, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  AdapterError,
  type AdapterPreparation,
  type ItemSource,
  isErrorKind,
  type LandedRange,
  type Manifest,
  type ManifestEntry,
  type Plan,
  type PlanBucket,
  type PlanItem,
} from '@hotweights/core';
import { serializeManifest } from '@hotweights/manifest';
import { copyFileRange, writeAllAt } from '@hotweights/runtime';
import type { TargetLayout } from './layout.js';

/** Concurrent kernel copies of live files (each is CPU-bound in the kernel: one per core). */
const COPY_CONCURRENCY = 2;

type Mode = 'link' | 'patch' | 'build';

interface FileJob {
  readonly path: string;
  readonly size: number;
  readonly mode: Mode;
  /** Permission bits the file gets, when known (the source's, else the live file's). */
  readonly fileMode: number | undefined;
  /** The open file, once it can take writes (a patched file after its copy); not for links. */
  handle?: Promise<FileHandle>;
  /** Entries of a patched file its copy left out, for this rank's buckets to write. */
  left?: ReadonlySet<string>;
  /**
   * Last write queued on this file. Writes to one file go one at a time: ext4 serialises them on
   * the inode lock anyway, and concurrent writers only spin on it (measured: 13% of all CPU).
   */
  tail: Promise<void>;
}

export interface PreparationInput {
  readonly who: string;
  readonly layout: TargetLayout;
  readonly plan: Plan;
  readonly manifest: Manifest;
  /** Directory name (under versions/) the prepared version gets. */
  readonly dirName: string;
  /**
   * Live version's directory name and manifest, when something is live, and the files it holds
   * when it holds only part of its manifest (null: all of them).
   */
  readonly live: {
    readonly dirName: string;
    readonly manifest: Manifest;
    readonly held: ReadonlySet<string> | null;
  } | null;
  /** This rank: only the plan's buckets it consumes land here (undefined: every bucket). */
  readonly rank?: number | undefined;
}

/** Permission bits of a regular file (of `size` bytes, when given), or undefined. */
async function modeOf(path: string, size?: number): Promise<number | undefined> {
  const s = await stat(path).catch(() => null);
  if (!s?.isFile() || (size !== undefined && s.size !== size)) return undefined;
  return s.mode & 0o777;
}

/**
 * A new file `dest` of `size` bytes holding `src`'s bytes outside the `skip` entries (left for
 * their writers), copied in the kernel. Measured: `fs.copyFile` of a 256 MiB file took 1.6-2x
 * `cp` on ext4, `copy_file_range` in 16 MiB calls (copyFileRange) as long as `cp`. Entries start
 * anywhere in a block (after the safetensors header), so each gap is copied in pieces split at
 * block boundaries (copyFileRange): on XFS or Btrfs the aligned interior is a clone sharing the
 * live file's extents (copy-on-write: writing the new file never changes the live one) and only
 * the changed entries and the blocks around them take new space; elsewhere every byte is copied.
 */
async function copyAllBut(
  src: string,
  dest: string,
  size: number,
  skip: readonly ManifestEntry[],
  mode: number,
): Promise<FileHandle> {
  const gaps = [...skip].sort((a, b) => a.file_offset - b.file_offset);
  const from = await open(src, 'r');
  try {
    const to = await open(dest, 'wx+', mode);
    try {
      await to.truncate(size);
      let at = 0;
      for (const e of [...gaps, { file_offset: size, nbytes: 0 }]) {
        if (e.file_offset > at) await copyFileRange(from, at, to, at, e.file_offset - at);
        at = Math.max(at, e.file_offset + e.nbytes);
      }
      return to;
    } catch (err) {
      await to.close();
      throw err;
    }
  } finally {
    await from.close();
  }
}

/** Runs at most `limit` tasks at once, in the order they were queued. */
function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  return (task) =>
    new Promise((resolve, reject) => {
      const start = () => {
        running++;
        task()
          .then(resolve, reject)
          .finally(() => {
            running--;
            queue.shift()?.();
          });
      };
      if (running < limit) start();
      else queue.push(start);
    });
}

export class DirectoryPreparation implements AdapterPreparation {
  readonly partial: string;
  private readonly jobs = new Map<string, FileJob>();
  /** Bytes written from staging, by entry key. */
  private readonly received = new Map<string, number>();
  /** Links and copies started up front. */
  private readonly background: Promise<unknown>[] = [];
  /** Every operation still running, so `discard` never removes files under a writer. */
  private readonly running = new Set<Promise<unknown>>();
  private state: 'open' | 'finished' | 'discarded' = 'open';
  /** Files of the manifest this rank does not hold (other ranks' shards). */
  private readonly skipped: string[] = [];

  private constructor(
    private readonly input: PreparationInput,
    partial: string,
    /** The adapter's record that `partial` is its own (removed with it). */
    private readonly partialRecord: string,
  ) {
    this.partial = partial;
  }

  static async start(
    input: PreparationInput,
    partial: string,
    partialRecord: string,
  ): Promise<DirectoryPreparation> {
    const p = new DirectoryPreparation(input, partial, partialRecord);
    await mkdir(partial, { recursive: true });
    try {
      await p.layOut();
    } catch (err) {
      await p.discard();
      throw err;
    }
    return p;
  }

  private get liveDir(): string | null {
    const live = this.input.live;
    return live ? this.input.layout.versionDir(live.dirName) : null;
  }

  /** Whether the live version holds `file` on this rank. */
  private liveHolds(file: string): boolean {
    const live = this.input.live;
    return live !== null && (live.held === null || live.held.has(file));
  }

  private sameAsLive(e: ManifestEntry): boolean {
    const old = this.input.live?.manifest.get(e.key);
    return (
      old !== undefined &&
      this.liveHolds(old.file) &&
      old.hash === e.hash &&
      old.nbytes === e.nbytes &&
      old.file === e.file &&
      old.file_offset === e.file_offset
    );
  }

  /** Chooses how each file of the version is made and starts the work that needs no staging. */
  private async layOut(): Promise<void> {
    const { plan, manifest, live, rank } = this.input;
    const planned = new Set<string>();
    /** Entries that land on this rank. */
    const mine = new Set<string>();
    // Files in the order the plan's buckets first touch them: copies the next bucket needs go first.
    const order = new Map<string, number>();
    for (const b of plan.buckets) {
      const consumed = rank === undefined || b.consumer_ranks.includes(rank);
      for (const item of b.items) {
        planned.add(item.key);
        if (consumed) mine.add(item.key);
        const file = manifest.get(item.key)?.file;
        if (file !== undefined && !order.has(file)) order.set(file, order.size);
      }
    }
    const files = [...manifest.files].sort(
      (a, b) => (order.get(a.path) ?? order.size) - (order.get(b.path) ?? order.size),
    );
    const copies = limiter(COPY_CONCURRENCY);
    const liveDir = this.liveDir;
    for (const file of files) {
      const entries = manifest.entriesOfFile(file.path);
      // Another rank's shard: nothing of it lands here, and this rank never held it.
      if (entries.length > 0 && !entries.some((e) => mine.has(e.key)) && !this.liveHolds(file.path)) {
        this.skipped.push(file.path);
        continue;
      }
      const liveFile = this.liveHolds(file.path)
        ? live?.manifest.files.find((f) => f.path === file.path)
        : undefined;
      const sameLayout = liveDir !== null && liveFile !== undefined && liveFile.size === file.size;
      const dest = join(this.partial, file.path);
      await mkdir(dirname(dest), { recursive: true });
      const src = liveDir ? join(liveDir, file.path) : '';
      const liveMode = liveFile && src ? await modeOf(src) : undefined;
      const sourceMode = await modeOf(join(plan.source.root, file.path), file.size);
      let mode: Mode = 'build';
      if (sameLayout && entries.every((e) => !planned.has(e.key) && this.sameAsLive(e))) {
        // A hard link shares the live file's mode: copy instead when the source's differs.
        mode = sourceMode === undefined || sourceMode === liveMode ? 'link' : 'patch';
      } else if (sameLayout && entries.every((e) => planned.has(e.key) || this.sameAsLive(e))) {
        // The live file's bytes but for the entries that land here, copied up front while the
        // buckets arrive (copyAllBut): every byte is written once, however much changed.
        mode = 'patch';
      }
      const fileMode = sourceMode ?? liveMode;
      const job: FileJob = { path: file.path, size: file.size, mode, fileMode, tail: Promise.resolve() };
      this.jobs.set(file.path, job);
      if (mode === 'link') {
        // Nothing in this file changed: share it with the live version.
        this.track(
          link(src, dest).catch(() => copyFile(src, dest, constants.COPYFILE_FICLONE)),
          true,
        );
      } else if (mode === 'patch') {
        // Same layout, some tensors changed: a kernel copy of the live file but for the entries
        // this rank will write (shared extents where the filesystem has reflinks), then those
        // entries land in place. Each byte is written at most once.
        const landing = entries.filter((e) => mine.has(e.key));
        job.left = new Set(landing.map((e) => e.key));
        const copied = copies(() => copyAllBut(src, dest, file.size, landing, liveMode ?? 0o644));
        this.track(copied, true);
        job.handle = copied;
      } else {
        job.handle = open(dest, 'wx', 0o644);
      }
      // Failures surface where the handle is awaited; never as an unhandled rejection.
      job.handle?.catch(() => {});
    }
  }

  /** Remembers a running operation (and, for links and copies, awaits it in `finish`). */
  private track(p: Promise<unknown>, background = false): void {
    this.running.add(p);
    const forget = () => {
      this.running.delete(p);
    };
    p.then(forget, forget);
    if (background) this.background.push(p);
  }

  async bucket(bucket: PlanBucket, bytes: Uint8Array): Promise<void> {
    if (this.state !== 'open') throw new AdapterError(`${this.input.who}: the preparation is ${this.state}`);
    const writing = Promise.all(bucket.items.map((item) => this.writeItem(item, bytes)));
    this.track(writing);
    await writing;
  }

  async copyItem(item: PlanItem, source: ItemSource): Promise<LandedRange> {
    if (this.state !== 'open') throw new AdapterError(`${this.input.who}: the preparation is ${this.state}`);
    const place = this.placeOf(item);
    const copying = this.queueOnFile(place, item, (fh) =>
      copyFileRange(source.file, source.offset, fh, place.at, item.nbytes),
    );
    this.track(copying);
    await copying;
    return { path: join(this.partial, place.entry.file), offset: place.at };
  }

  private async writeItem(item: PlanItem, bytes: Uint8Array): Promise<void> {
    const place = this.placeOf(item);
    const view = bytes.subarray(item.offset, item.offset + item.nbytes);
    await this.queueOnFile(place, item, (fh) => writeAllAt(fh, view, place.at));
  }

  /** The manifest entry of a plan item, the file being prepared for it, and where its bytes go. */
  private placeOf(item: PlanItem): { entry: ManifestEntry; job: FileJob; at: number } {
    const { manifest, who, plan } = this.input;
    const e = manifest.get(item.key);
    if (!e) {
      throw new AdapterError(
        `${who}: plan item ${item.key} is not in the manifest of ${plan.version} (${manifest.digest})`,
        { details: { key: item.key } },
      );
    }
    const whole = item.part?.tensor_nbytes ?? item.nbytes;
    if (whole !== e.nbytes) {
      throw new AdapterError(
        `${who}: staged item ${e.key} has ${whole} bytes, the manifest says ${e.nbytes}`,
        {
          details: { key: e.key },
        },
      );
    }
    const job = this.jobs.get(e.file);
    if (!job?.handle) throw new AdapterError(`${who}: no file ${e.file} is being prepared for ${e.key}`);
    return { entry: e, job, at: e.file_offset + (item.part?.tensor_offset ?? 0) };
  }

  /** Runs `write` on the item's file after the writes queued before it, then counts the bytes. */
  private async queueOnFile(
    place: { entry: ManifestEntry; job: FileJob },
    item: PlanItem,
    write: (fh: FileHandle) => Promise<void>,
  ): Promise<void> {
    const { job, entry } = place;
    const handle = job.handle as Promise<FileHandle>;
    const done = job.tail.then(async () => write(await handle));
    job.tail = done.catch(() => {});
    await done;
    this.received.set(entry.key, (this.received.get(entry.key) ?? 0) + item.nbytes);
  }

  async finish(): Promise<void> {
    if (this.state !== 'open') throw new AdapterError(`${this.input.who}: the preparation is ${this.state}`);
    const { layout, manifest, plan, dirName } = this.input;
    try {
      await Promise.all(this.background);
      for (const job of this.jobs.values()) {
        if (!job.handle) continue;
        const fh = await job.handle;
        await this.complete(job, fh);
        if (job.fileMode !== undefined) await fh.chmod(job.fileMode);
      }
      await mkdir(layout.metaDir, { recursive: true });
      await writeFile(layout.manifestFile(dirName), serializeManifest(manifest));
      const meta = {
        version: plan.version,
        manifest_digest: manifest.digest,
        // Only part of the manifest (this rank's shards): which files are here.
        ...(this.skipped.length ? { files: [...this.jobs.keys()].sort() } : {}),
        // Until it goes live, a version whose process is gone is reclaimed by the next prepare.
        prepared_by: process.pid,
      };
      await writeFile(layout.metaFile(dirName), `${JSON.stringify(meta)}\n`);
      const final = layout.versionDir(dirName);
      // A leftover from an aborted attempt of the same version (never live) is replaced.
      await rm(final, { recursive: true, force: true });
      await this.closeAll();
      await rename(this.partial, final);
      await rm(this.partialRecord, { force: true });
      this.state = 'finished';
    } catch (err) {
      await this.discard();
      if (isErrorKind(err, 'AdapterError')) throw err;
      throw new AdapterError(`${this.input.who}: cannot prepare ${plan.version}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Fills what staging did not carry into a patched or rebuilt file and checks every entry. */
  private async complete(job: FileJob, fh: FileHandle): Promise<void> {
    const { manifest, who, plan, live } = this.input;
    let sources: Map<string, FileHandle> | undefined;
    try {
      for (const e of manifest.entriesOfFile(job.path)) {
        const got = this.received.get(e.key) ?? 0;
        if (got === e.nbytes) continue;
        if (got > 0) {
          throw new AdapterError(
            `${who}: item ${e.key} of ${plan.version}: only ${got} of ${e.nbytes} bytes are staged (a part is missing)`,
            { details: { key: e.key } },
          );
        }
        if (job.mode === 'patch' && !job.left?.has(e.key) && this.sameAsLive(e)) continue;
        const old = live?.manifest.get(e.key);
        const liveDir = this.liveDir;
        if (
          job.mode === 'link' ||
          !liveDir ||
          !old ||
          !this.liveHolds(old.file) ||
          old.hash !== e.hash ||
          old.nbytes !== e.nbytes
        ) {
          throw new AdapterError(
            `${who}: entry ${e.key} of ${job.path} is neither in this rank's staged buckets nor unchanged in the live version ${live?.manifest.version ?? '(none)'}`,
            { details: { key: e.key, file: job.path } },
          );
        }
        sources ??= new Map();
        let src = sources.get(old.file);
        if (!src) {
          src = await open(join(liveDir, old.file), 'r');
          sources.set(old.file, src);
        }
        // A kernel copy (shared extents where the filesystem has reflinks and both offsets sit
        // alike within a block: copyFileRange); never through memory.
        try {
          await copyFileRange(src, old.file_offset, fh, e.file_offset, e.nbytes);
        } catch (err) {
          if ((err as NodeJS.ErrnoException)?.code !== 'ESHORT') throw err;
          throw new AdapterError(`${who}: live file ${old.file} is shorter than its manifest says`, {
            cause: err,
          });
        }
      }
      // Entries cover the file; a trailing empty tensor still leaves the size to set.
      // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator,StringLiteral: equivalent: a loaded manifest's entries cover each file exactly (manifest-validate), so once they are all written the file has its size and this never truncates
      if (job.mode === 'build' && (await fh.stat()).size !== job.size) await fh.truncate(job.size);
    } finally {
      for (const s of sources?.values() ?? []) await s.close();
    }
  }

  private async closeAll(): Promise<void> {
    for (const job of this.jobs.values()) {
      const fh = await job.handle?.catch(() => undefined);
      job.handle = undefined;
      await fh?.close().catch(() => {});
    }
  }

  async discard(): Promise<void> {
    if (this.state === 'discarded') return;
    const wasFinished = this.state === 'finished';
    this.state = 'discarded';
    await Promise.allSettled([...this.running]);
    await this.closeAll();
    if (!wasFinished) {
      await rm(this.partial, { recursive: true, force: true });
      await rm(this.partialRecord, { force: true });
    }
  }
}
