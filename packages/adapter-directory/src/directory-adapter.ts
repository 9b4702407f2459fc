/**
 * The directory adapter: materialises committed versions in a local directory (see layout.ts).
 * The first deployment is a full plan; later plans are deltas applied on top of the live version:
 * files whose entries did not change are hard-linked (or copied) from it, files with changed
 * tensors are rewritten entry by entry (header and tensors from staging when they changed, from
 * the live version's file when not), so the result is a plain safetensors file any reader loads.
 * `beginPrepare` builds the new version beside the live one while buckets land (preparation.ts);
 * `commit` flips `current` with one rename; the previous version stays until the next commit so
 * `rollback` is one rename too.
 *
 * Only its own files: the adapter removes only versions it recorded in `.hotweights/` (see
 * layout.ts), works beside anything else in `versions/` without touching it, refuses a
 * `versions/` that is a symlink (or a file) and a version name already taken by a foreign entry.
 */
import { randomBytes } from 'node:crypto';
import {
  access,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type Adapter, AdapterError, type AdapterUpdate, isErrorKind, type Manifest } from '@hotweights/core';
import { loadManifest, recordCommittedManifest } from '@hotweights/manifest';
import { processAlive } from '@hotweights/runtime';
import { safeVersion, TargetLayout } from './layout.js';
import { DirectoryPreparation } from './preparation.js';

export interface DirectoryAdapterOptions {
  /** The target directory (created when missing). */
  readonly target: string;
  /** When set, commit and rollback record the live manifest there (core's recordCommittedManifest). */
  readonly stateDir?: string;
  /** This process's rank: the buckets it consumes land here (all of them without), and errors name it. */
  readonly rank?: number;
}

interface VersionMeta {
  readonly version: string;
  readonly manifest_digest: string;
  /** The files this rank holds, when it holds only its share (tensor-parallel shards). */
  readonly files?: readonly string[];
  /** The process that prepared it: a version never made live whose process is gone is abandoned. */
  readonly prepared_by?: number;
}

async function readLink(path: string): Promise<string | null> {
  try {
    return await readlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Points `linkPath` at `text` atomically (a temporary symlink renamed over it). */
async function flipLink(linkPath: string, text: string): Promise<void> {
  const tmp = `${linkPath}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  await symlink(text, tmp);
  try {
    await rename(tmp, linkPath);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export class DirectoryAdapter implements Adapter {
  readonly name = 'directory';
  readonly layout: TargetLayout;
  private readonly stateDir: string | undefined;
  private readonly who: string;
  /** Under tensor parallelism a rank holds only its share of a version (see preparation.ts). */
  private readonly rank: number | undefined;
  /** Seconds the last commit or rollback took to flip `current` (the serving pause). */
  lastSwitchSeconds = 0;

  constructor(options: DirectoryAdapterOptions) {
    this.layout = new TargetLayout(options.target);
    this.stateDir = options.stateDir;
    this.rank = options.rank;
    this.who = options.rank === undefined ? options.target : `${options.target} (rank ${options.rank})`;
  }

  private async linked(
    which: 'current' | 'previous',
  ): Promise<{ dirName: string; meta: VersionMeta } | null> {
    const text = await readLink(which === 'current' ? this.layout.current : this.layout.previous);
    if (text === null) return null;
    const dirName = basename(text);
    try {
      const meta = JSON.parse(await readFile(this.layout.metaFile(dirName), 'utf8')) as VersionMeta;
      return { dirName, meta };
    } catch (err) {
      throw new AdapterError(
        `${this.who}: ${which} points at ${text} but its record is unreadable: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  async currentVersion(): Promise<string | null> {
    return (await this.linked('current'))?.meta.version ?? null;
  }

  async previousVersion(): Promise<string | null> {
    return (await this.linked('previous'))?.meta.version ?? null;
  }

  /** The live version's manifest, loaded once per live version (for liveItem). */
  private liveManifest: { dirName: string; manifest: Promise<Manifest> } | undefined;

  /**
   * The live version's bytes of one entry, read from its file (what patch items apply to), into
   * `into` when it has the entry's size; null when nothing is live or the live version has no
   * such entry.
   */
  async liveItem(key: string, into?: Uint8Array): Promise<Uint8Array | null> {
    // Which version is live is read for every item (it may change between two), its record and
    // manifest only when it did: a patch plan asks for every tensor of the model in turn.
    const text = await readLink(this.layout.current);
    if (text === null) return null;
    let dirName = basename(text);
    if (this.liveManifest?.dirName !== dirName) {
      const live = await this.linked('current');
      if (!live) return null;
      dirName = live.dirName;
      this.liveManifest = { dirName, manifest: loadManifest(this.layout.manifestFile(dirName)) };
    }
    const e = (await this.liveManifest.manifest).get(key);
    if (!e) return null;
    const fh = await open(join(this.layout.versionDir(dirName), e.file), 'r');
    try {
      const buf = into?.byteLength === e.nbytes ? into : new Uint8Array(e.nbytes);
      let done = 0;
      while (done < e.nbytes) {
        const { bytesRead } = await fh.read(buf, done, e.nbytes - done, e.file_offset + done);
        if (bytesRead === 0)
          throw new AdapterError(`${this.who}: live file ${e.file} is shorter than its manifest says`);
        done += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  /** Directory holding the live version's files (DIR/current resolved), or null. */
  async currentPath(): Promise<string | null> {
    const text = await readLink(this.layout.current);
    return text === null ? null : join(this.layout.root, text);
  }

  /** Checks the update against the target and starts laying out the new version beside the live one. */
  async beginPrepare(update: Omit<AdapterUpdate, 'staging'>): Promise<DirectoryPreparation> {
    const { plan } = update;
    const manifest = update.manifest;
    if (!manifest) {
      throw new AdapterError(
        `${this.who}: the directory adapter needs the next version's manifest (--manifest-next, or a plan whose next_manifest.path exists)`,
      );
    }
    if (
      manifest.version !== plan.version ||
      (plan.next_manifest.digest && manifest.digest !== plan.next_manifest.digest)
    ) {
      throw new AdapterError(
        `${this.who}: manifest ${manifest.version} (${manifest.digest}) is not the one plan ${plan.version} was made for (${plan.next_manifest.digest})`,
      );
    }
    const live = await this.linked('current');
    if (plan.prev_version !== null) {
      if (!live || live.meta.version !== plan.prev_version) {
        throw new AdapterError(
          `${this.who}: plan ${plan.version} is a delta from ${plan.prev_version}, but the target holds ${live?.meta.version ?? 'nothing'}; make a full plan (no --prev) or deploy ${plan.prev_version} first`,
        );
      }
    }
    const dirName = safeVersion(plan.version);
    if (live && live.dirName === dirName) {
      throw new AdapterError(`${this.who}: version ${plan.version} is already live`);
    }
    await this.checkVersionsDir();
    if ((await lstat(this.layout.versionDir(dirName)).catch(() => null)) && !(await this.owns(dirName))) {
      throw new AdapterError(
        `${this.who}: ${this.layout.versionDir(dirName)} exists but was not made by hotweights (no record in ${this.layout.metaDir}); move it away or use another --target`,
        { code: 'HW_ADAPTER_FOREIGN', details: { entry: this.layout.versionDir(dirName) } },
      );
    }
    await this.reclaimAbandoned(live?.dirName);
    const liveManifest = live ? await loadManifest(this.layout.manifestFile(live.dirName)) : null;
    const final = this.layout.versionDir(dirName);
    const partial = `${final}.partial-${process.pid}-${randomBytes(3).toString('hex')}`;
    const partialRecord = this.layout.partialRecord(basename(partial));
    try {
      // Recorded before it exists, so a crash leaves nothing of ours that we would not recognise.
      await mkdir(this.layout.partialsDir, { recursive: true });
      await writeFile(partialRecord, `${process.pid}\n`);
      return await DirectoryPreparation.start(
        {
          who: this.who,
          layout: this.layout,
          plan,
          manifest,
          dirName,
          live:
            live && liveManifest
              ? {
                  dirName: live.dirName,
                  manifest: liveManifest,
                  held: live.meta.files ? new Set(live.meta.files) : null,
                }
              : null,
          rank: this.rank,
        },
        partial,
        partialRecord,
      );
    } catch (err) {
      if (isErrorKind(err, 'AdapterError')) throw err;
      throw new AdapterError(`${this.who}: cannot prepare ${plan.version}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Prepares from buckets already staged (callers without the streaming form). */
  async prepare(update: AdapterUpdate): Promise<void> {
    const { plan, staging } = update;
    const preparation = await this.beginPrepare(update);
    try {
      for (const bucket of plan.buckets) {
        const staged = staging.get(plan.version, bucket.bucket_id);
        if (staged) await preparation.bucket(bucket, staged.bytes);
      }
    } catch (err) {
      await preparation.discard();
      throw err;
    }
    await preparation.finish();
  }

  /** A version is here when its record and its directory are (prepared, live or previous). */
  async hasVersion(version: string): Promise<boolean> {
    const dirName = safeVersion(version);
    const meta = await readFile(this.layout.metaFile(dirName), 'utf8').catch(() => null);
    if (meta === null) return false;
    try {
      if ((JSON.parse(meta) as VersionMeta).version !== version) return false;
    } catch {
      return false;
    }
    return stat(this.layout.versionDir(dirName)).then(
      (st) => st.isDirectory(),
      () => false,
    );
  }

  async commit(version: string): Promise<void> {
    const dirName = safeVersion(version);
    const meta = await readFile(this.layout.metaFile(dirName), 'utf8').catch(() => null);
    if (meta === null) throw new AdapterError(`${this.who}: version ${version} was not prepared`);
    await this.checkVersionsDir();
    const live = await this.linked('current');
    if (live?.dirName === dirName) return;
    const t0 = performance.now();
    await flipLink(this.layout.current, this.layout.linkText(dirName));
    this.lastSwitchSeconds = (performance.now() - t0) / 1000;
    if (live) await flipLink(this.layout.previous, this.layout.linkText(live.dirName));
    else if ((await lstat(this.layout.previous).catch(() => null))?.isSymbolicLink())
      await rm(this.layout.previous);
    await this.prune([dirName, live?.dirName]);
    if (this.stateDir) await recordCommittedManifest(this.stateDir, this.layout.manifestFile(dirName));
  }

  async abort(version: string): Promise<void> {
    const dirName = safeVersion(version);
    const kept = [(await this.linked('current'))?.dirName, (await this.linked('previous'))?.dirName];
    if (kept.includes(dirName) || !(await this.owns(dirName))) return;
    await this.checkVersionsDir();
    await this.removeVersion(dirName);
  }

  async rollback(): Promise<string> {
    const live = await this.linked('current');
    const prev = await this.linked('previous');
    if (!prev) throw new AdapterError(`${this.who}: nothing to roll back to: no previous version is kept`);
    const t0 = performance.now();
    await flipLink(this.layout.current, this.layout.linkText(prev.dirName));
    this.lastSwitchSeconds = (performance.now() - t0) / 1000;
    if (live) await flipLink(this.layout.previous, this.layout.linkText(live.dirName));
    if (this.stateDir) await recordCommittedManifest(this.stateDir, this.layout.manifestFile(prev.dirName));
    return prev.meta.version;
  }

  /**
   * Removes what a process killed mid-update left: its preparation, or the version it finished
   * preparing but never made live (a stop that ended in SIGKILL before its discard). Only entries
   * it recorded, whose process is gone, other than the live and the previous version.
   */
  private async reclaimAbandoned(liveDir: string | undefined): Promise<void> {
    // The link alone: a dangling previous (its record gone) is replaced by the next commit.
    const previous = await readLink(this.layout.previous);
    const kept = [liveDir, previous === null ? undefined : basename(previous)];
    for (const name of await readdir(this.layout.versionsDir).catch(() => [] as string[])) {
      if (kept.includes(name) || !(await this.owns(name))) continue;
      const partial = /\.partial-(\d+)-/.exec(name);
      if (partial) {
        if (processAlive(Number(partial[1]))) continue;
        await rm(this.layout.versionDir(name), { recursive: true, force: true });
        await rm(this.layout.partialRecord(name), { force: true });
        continue;
      }
      const meta = await readFile(this.layout.metaFile(name), 'utf8').then(
        (t) => JSON.parse(t) as VersionMeta,
        () => null,
      );
      const by = meta?.prepared_by;
      if (by === undefined || by === process.pid || processAlive(by)) continue;
      await this.removeVersion(name);
    }
  }

  private async removeVersion(name: string): Promise<void> {
    await rm(this.layout.versionDir(name), { recursive: true, force: true });
    await rm(this.layout.metaFile(name), { force: true });
    await rm(this.layout.manifestFile(name), { force: true });
  }

  /** Whether `versions/<name>` is the adapter's: a version or a preparation it recorded. */
  private async owns(name: string): Promise<boolean> {
    if (name.includes('.partial-')) return exists(this.layout.partialRecord(name));
    return exists(this.layout.metaFile(name));
  }

  /** Refuses a `versions` that is a symlink or not a folder: what lies behind it is not ours. */
  private async checkVersionsDir(): Promise<void> {
    const s = await lstat(this.layout.versionsDir).catch(() => null);
    if (s === null || s.isDirectory()) return;
    const what = s.isSymbolicLink()
      ? `a symlink (to ${await readlink(this.layout.versionsDir)})`
      : 'not a directory';
    throw new AdapterError(
      `${this.who}: ${this.layout.versionsDir} is ${what}; the directory adapter keeps versions only in a folder of its own and never writes or prunes through a link: use a new --target, or make versions a real folder`,
      { code: 'HW_ADAPTER_FOREIGN', details: { entry: this.layout.versionsDir } },
    );
  }

  /**
   * Removes the versions it made other than `keep`, and preparations it recorded that another
   * (crashed) process left. Entries without a record are another tool's: left alone.
   */
  private async prune(keep: readonly (string | undefined)[]): Promise<void> {
    for (const name of await readdir(this.layout.versionsDir).catch(() => [] as string[])) {
      if (keep.includes(name) || !(await this.owns(name))) continue;
      if (name.includes('.partial-')) {
        // One process prepares into a target at a time; this one's own may still be running.
        if (name.includes(`.partial-${process.pid}-`)) continue;
        await rm(this.layout.versionDir(name), { recursive: true, force: true });
        await rm(this.layout.partialRecord(name), { force: true });
        continue;
      }
      await this.removeVersion(name);
    }
  }
}
