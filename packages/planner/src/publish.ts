/**
 * publish: turns a checkpoint directory into a manifest. safetensors files become one header entry
 * plus one entry per tensor (their byte ranges cover the file), every other file one whole-file
 * entry; every entry gets a content hash computed on every core (hash-pool.ts).
 */
// Synchronous file calls before and after hashing: each is a few microseconds, while an async one
// is an event-loop and thread-pool round trip (~1 ms apiece measured while the workers boot), all of
// it on the critical path of a publish.
import {
  closeSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { CheckpointError, type ManifestEntry, type ManifestFile } from '@hotweights/core';
import { buildManifest, type ColumnarManifest, type HashAlgorithm } from '@hotweights/manifest';
import { isInside } from './atomic-write.js';
import {
  checkHashAlgo,
  type HashIo,
  type HashRange,
  type HashTask,
  hashRanges,
  type StartedHashWorkers,
  startHashWorkers,
} from './hash-pool.js';
import { readSafetensorsHeaderSync } from './safetensors.js';

export interface PublishProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface PublishOptions {
  /** The checkpoint directory. */
  readonly checkpoint: string;
  readonly version: string;
  readonly modelId?: string | null;
  /** `blake3` (default), `xxh3-64` or `sha256`. */
  readonly hash?: string;
  /** Hashing threads, the main thread included (default: every core). */
  readonly threads?: number;
  readonly onProgress?: (p: PublishProgress) => void;
  /** Absolute paths to leave out (e.g. the manifest being written). */
  readonly exclude?: readonly string[];
  /** Include hotweights manifests/plans found in the directory (normally skipped). */
  readonly includeHotweightsFiles?: boolean;
  /**
   * Split files into hashing tasks of about this many bytes (at entry boundaries) so every core
   * stays busy to the end. Default: 1/16 of each thread's share, between 4 and 64 MiB.
   */
  readonly taskBytes?: number;
  /** How hashing reads files: 'mmap' (default when the shm addon loads) or 'read'. */
  readonly io?: HashIo;
  /** created_at override (tests, reproducible builds). */
  readonly createdAt?: string;
  /**
   * Follow symlinks that lead out of the checkpoint (each is passed to `onFollowedLink`). Without
   * it such a link is refused: publishing must not hash whatever a link happens to point to.
   */
  readonly followSymlinks?: boolean;
  readonly onFollowedLink?: (link: string, target: string) => void;
}

/** Shard rank from a path such as `rank1/…`, `tp_2.safetensors` or `mp_rank_03/…`; else 0. */
export function shardRankOfPath(path: string): number {
  const re = /(?:^|[/_.-])(?:tp|rank)[_-]?(\d+)(?=[/_.-]|$)/gi;
  let rank = 0;
  for (const m of path.matchAll(re)) rank = Number(m[1]);
  return rank;
}

interface FoundFile {
  readonly rel: string;
  readonly abs: string;
  readonly size: number;
}

/**
 * Regular files under root, relative `/` paths. Symlinks inside the checkpoint are followed (once
 * per real directory); one leading out of it is refused unless `follow` says otherwise.
 */
async function walk(
  root: string,
  exclude: ReadonlySet<string>,
  follow: Pick<PublishOptions, 'followSymlinks' | 'onFollowedLink'>,
): Promise<FoundFile[]> {
  const out: FoundFile[] = [];
  const seenDirs = new Set<string>();
  const rootReal = realpathSync(root);
  const visit = async (dir: string): Promise<void> => {
    const real = realpathSync(dir);
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    const names = readdirSync(dir).sort();
    for (const name of names) {
      const abs = join(dir, name);
      let st: Stats;
      try {
        st = statSync(abs);
      } catch (err) {
        throw new CheckpointError(
          `${abs}: cannot stat (${(err as NodeJS.ErrnoException).code}; a dangling symlink?)`,
          {
            cause: err,
          },
        );
      }
      if (lstatSync(abs).isSymbolicLink()) {
        const target = realpathSync(abs);
        if (!(await isInside(target, rootReal))) {
          if (!follow.followSymlinks) {
            throw new CheckpointError(
              `${abs} is a symlink to ${target}, outside the checkpoint ${root}: refusing to publish what it points to (copy it into the checkpoint, or pass --follow-symlinks to follow and record it)`,
              { details: { link: abs, target } },
            );
          }
          follow.onFollowedLink?.(relative(root, abs).split(sep).join('/'), target);
        }
      }
      if (st.isDirectory()) await visit(abs);
      else if (st.isFile()) {
        if (exclude.has(abs) || exclude.has(realpathSync(abs))) continue;
        out.push({ rel: relative(root, abs).split(sep).join('/'), abs, size: st.size });
      }
    }
  };
  await visit(root);
  return out;
}

/** True when a JSON file is a hotweights manifest or plan (never part of a checkpoint). */
function isHotweightsDocument(f: FoundFile): boolean {
  if (!f.rel.endsWith('.json') || f.size < 20) return false;
  const fd = openSync(f.abs, 'r');
  try {
    const buf = Buffer.alloc(Math.min(256, f.size));
    readSync(fd, buf, 0, buf.length, 0);
    return /"schema"\s*:\s*"hotweights\.(manifest|plan)"/.test(buf.toString('utf8'));
  } finally {
    closeSync(fd);
  }
}

interface IndexFile {
  readonly rel: string;
  readonly weightMap: ReadonlyMap<string, string>;
}

function readIndex(f: FoundFile): IndexFile {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(f.abs, 'utf8'));
  } catch (err) {
    throw new CheckpointError(`${f.abs}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const wm = (doc as { weight_map?: unknown } | null)?.weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm))
    throw new CheckpointError(`${f.abs}: weight_map: expected an object {tensor: file}`);
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string')
      throw new CheckpointError(`${f.abs}: weight_map.${tensor}: expected a file name string`);
    map.set(tensor, file);
  }
  return { rel: f.rel, weightMap: map };
}

/** Builds the manifest of a checkpoint directory. */
export async function publish(options: PublishOptions): Promise<ColumnarManifest> {
  const algo = checkHashAlgo(options.hash ?? 'blake3');
  const root = resolve(options.checkpoint);
  let rootStat: Awaited<ReturnType<typeof stat>>;
  try {
    rootStat = await stat(root);
  } catch (err) {
    throw new CheckpointError(`checkpoint ${root}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      cause: err,
    });
  }
  if (!rootStat.isDirectory()) throw new CheckpointError(`checkpoint ${root} is not a directory`);
  if (options.version.length === 0) throw new CheckpointError('version must not be empty');
  const threads = options.threads ?? availableParallelism();
  // The hash workers boot while the files are listed and their headers read.
  const started = startHashWorkers({ algo, threads, io: options.io });
  try {
    return await publishWith(options, algo, root, threads, started);
  } finally {
    await started.close();
  }
}

async function publishWith(
  options: PublishOptions,
  algo: HashAlgorithm,
  root: string,
  threads: number,
  started: StartedHashWorkers,
): Promise<ColumnarManifest> {
  const exclude = new Set((options.exclude ?? []).map((p) => resolve(p)));
  let found = await walk(root, exclude, options);
  if (!options.includeHotweightsFiles) {
    const keep: FoundFile[] = [];
    for (const f of found) if (!isHotweightsDocument(f)) keep.push(f);
    found = keep;
  }
  if (found.length === 0) throw new CheckpointError(`checkpoint ${root} contains no files`);

  const files: ManifestFile[] = [];
  const entries: Omit<ManifestEntry, 'hash'>[] = [];
  const tasks: HashTask[] = [];
  /** Entry indexes hashed by each task, in range order. */
  const taskEntries: number[][] = [];
  const bytesTotal = found.reduce((s, f) => s + f.size, 0);
  const MIB = 1024 * 1024;
  const taskBytes =
    options.taskBytes ?? Math.min(64 * MIB, Math.max(4 * MIB, Math.floor(bytesTotal / (threads * 16))));
  const tensorsByFile = new Map<string, Set<string>>();

  for (const f of found) {
    const rank = shardRankOfPath(f.rel);
    const first = entries.length;
    if (f.rel.endsWith('.safetensors')) {
      const h = readSafetensorsHeaderSync(f.abs);
      files.push({ path: f.rel, size: f.size, kind: 'safetensors' });
      entries.push({
        key: `${f.rel}:${rank}`,
        tensor: f.rel,
        shard_rank: rank,
        kind: 'header',
        file: f.rel,
        file_offset: 0,
        nbytes: h.headerBytes,
        dtype: null,
        shape: null,
      });
      const names = new Set<string>();
      for (const t of h.tensors) {
        names.add(t.name);
        entries.push({
          key: `${t.name}:${rank}`,
          tensor: t.name,
          shard_rank: rank,
          kind: 'tensor',
          file: f.rel,
          file_offset: t.fileOffset,
          nbytes: t.nbytes,
          dtype: t.dtype,
          shape: t.shape,
        });
      }
      tensorsByFile.set(f.rel, names);
    } else {
      files.push({ path: f.rel, size: f.size, kind: 'file' });
      entries.push({
        key: `${f.rel}:${rank}`,
        tensor: f.rel,
        shard_rank: rank,
        kind: 'file',
        file: f.rel,
        file_offset: 0,
        nbytes: f.size,
        dtype: null,
        shape: null,
      });
    }
    // Split the file's entries into tasks of about taskBytes (at entry boundaries).
    let ranges: { offset: number; length: number }[] = [];
    let idx: number[] = [];
    let bytes = 0;
    for (let i = first; i < entries.length; i++) {
      const e = entries[i] as Omit<ManifestEntry, 'hash'>;
      ranges.push({ offset: e.file_offset, length: e.nbytes });
      idx.push(i);
      bytes += e.nbytes;
      if (bytes >= taskBytes) {
        tasks.push({ path: f.abs, ranges });
        taskEntries.push(idx);
        ranges = [];
        idx = [];
        bytes = 0;
      }
    }
    if (ranges.length) {
      tasks.push({ path: f.abs, ranges });
      taskEntries.push(idx);
    }
  }

  splitTail(tasks, taskEntries, threads * taskBytes, Math.max(MIB, taskBytes / 4));
  checkIndexes(root, found, tensorsByFile);

  // Duplicate keys (the same tensor in two shards of the same rank) fail before hashing.
  const seen = new Map<string, string>();
  for (const e of entries) {
    const other = seen.get(e.key);
    if (other !== undefined)
      throw new CheckpointError(
        `${root}: ${e.kind === 'tensor' ? 'tensor' : 'entry'} ${JSON.stringify(e.tensor)} (shard rank ${e.shard_rank}) appears in both ${other} and ${e.file}`,
      );
    seen.set(e.key, e.file);
  }

  let bytesDone = 0;
  options.onProgress?.({ bytesDone, bytesTotal });
  const hexes = await hashRanges(tasks, {
    algo,
    threads,
    io: options.io,
    started,
    onBytes: (n) => {
      bytesDone += n;
      options.onProgress?.({ bytesDone, bytesTotal });
    },
  });
  const hashed: ManifestEntry[] = new Array(entries.length);
  for (const [t, idx] of taskEntries.entries()) {
    const hs = hexes[t] as string[];
    for (const [k, i] of idx.entries()) {
      hashed[i] = { ...(entries[i] as Omit<ManifestEntry, 'hash'>), hash: `${algo}:${hs[k]}` };
    }
  }
  // A file that changed size between listing and hashing would make a wrong manifest.
  for (const f of found) {
    const now = statSync(f.abs);
    if (now.size !== f.size)
      throw new CheckpointError(`${f.abs} changed size while publishing (${f.size} -> ${now.size})`);
  }
  return buildManifest(
    {
      version: options.version,
      model_id: options.modelId ?? null,
      created_at: options.createdAt ?? new Date().toISOString(),
      checkpoint_root: root,
      hash_algo: algo,
      files,
    },
    hashed,
  );
}

/**
 * Splits tasks into pieces of about `piece` bytes (at entry boundaries) until about `bytes` are in
 * such pieces. hashRanges hands out the largest task first, so these come last, and the threads
 * finish within about one piece of each other instead of one whole task (64 MiB, ~12 ms here,
 * twice that on a busy machine).
 */
function splitTail(tasks: HashTask[], taskEntries: number[][], bytes: number, piece: number): void {
  let split = 0;
  for (let t = tasks.length - 1; t >= 0 && split < bytes; t--) {
    const task = tasks[t] as HashTask;
    const idx = taskEntries[t] as number[];
    const pieces: HashTask[] = [];
    const pieceEntries: number[][] = [];
    let from = 0;
    let size = 0;
    for (let k = 0; k < task.ranges.length; k++) {
      size += (task.ranges[k] as HashRange).length;
      if (size >= piece || k === task.ranges.length - 1) {
        pieces.push({ path: task.path, ranges: task.ranges.slice(from, k + 1) });
        pieceEntries.push(idx.slice(from, k + 1));
        split += size;
        from = k + 1;
        size = 0;
      }
    }
    if (pieces.length < 2) continue;
    tasks.splice(t, 1, ...pieces);
    taskEntries.splice(t, 1, ...pieceEntries);
  }
}

/** Checks every `*.safetensors.index.json` against the shards it names. */
function checkIndexes(
  root: string,
  found: readonly FoundFile[],
  tensorsByFile: ReadonlyMap<string, ReadonlySet<string>>,
): void {
  for (const f of found) {
    if (!f.rel.endsWith('.safetensors.index.json')) continue;
    const index = readIndex(f);
    const dir = f.rel.includes('/') ? f.rel.slice(0, f.rel.lastIndexOf('/') + 1) : '';
    const named = new Set<string>();
    for (const [tensor, file] of index.weightMap) {
      const rel = `${dir}${file}`;
      named.add(rel);
      const names = tensorsByFile.get(rel);
      if (!names)
        throw new CheckpointError(
          `${join(root, f.rel)}: weight_map.${tensor} names ${JSON.stringify(file)}, which is not a safetensors file of the checkpoint`,
        );
      if (!names.has(tensor))
        throw new CheckpointError(
          `${join(root, f.rel)}: weight_map.${tensor} names ${JSON.stringify(file)}, which does not contain that tensor`,
        );
    }
    for (const rel of named) {
      for (const t of tensorsByFile.get(rel) ?? []) {
        if (!index.weightMap.has(t))
          throw new CheckpointError(
            `${join(root, f.rel)}: tensor ${JSON.stringify(t)} of ${rel} is missing from weight_map`,
          );
      }
    }
  }
}
