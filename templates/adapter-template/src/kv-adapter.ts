/**
 * A key-value adapter. Under its target directory:
 *
 *   STATE.json               {"live": "<v>", "previous": "<v-1>"}: replaced with one rename, so a
 *                            reader sees the old or the new version, never a mix
 *   versions/<v>.json        one index per prepared or kept version: item key -> blob
 *   blobs/<algo>-<hex>       item bytes, named by their (verified) plan hash, shared by versions
 *
 * prepare writes the new blobs and the index beside the live version; commit rewrites STATE.json;
 * abort drops the index; a commit prunes indexes and blobs that neither live nor previous uses,
 * and only names this adapter makes (anything else in the target is left alone).
 */
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Adapter, AdapterError, type AdapterUpdate, stagedItems } from '@hotweights/core';

interface State {
  readonly live: string | null;
  readonly previous: string | null;
}

export interface KvIndex {
  readonly version: string;
  readonly items: Record<string, { readonly blob: string; readonly nbytes: number }>;
}

const BLOB_NAME = /^[a-z0-9-]+-[0-9a-f]+$/;
const INDEX_NAME = /^[^.][^/]*\.json$/;

export class KvAdapter implements Adapter {
  readonly name = 'kv';

  constructor(readonly root: string) {}

  private indexFile(version: string): string {
    return join(this.root, 'versions', `${encodeURIComponent(version)}.json`);
  }

  /** Path of a blob (what a reader opens to get an item's bytes). */
  blobFile(blob: string): string {
    return join(this.root, 'blobs', blob);
  }

  private async state(): Promise<State> {
    try {
      return JSON.parse(await readFile(join(this.root, 'STATE.json'), 'utf8')) as State;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { live: null, previous: null };
      throw new AdapterError(`${this.root}: STATE.json is unreadable: ${(err as Error).message}`);
    }
  }

  /** Writes a file whole or not at all: readers never see half of it. */
  private async replace(path: string, data: string | Uint8Array): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, data);
    await rename(tmp, path);
  }

  async currentVersion(): Promise<string | null> {
    return (await this.state()).live;
  }

  async previousVersion(): Promise<string | null> {
    return (await this.state()).previous;
  }

  /** The index of a prepared or kept version. */
  async readIndex(version: string): Promise<KvIndex> {
    try {
      return JSON.parse(await readFile(this.indexFile(version), 'utf8')) as KvIndex;
    } catch (err) {
      throw new AdapterError(`${this.root}: version ${version} is not here: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async prepare(update: AdapterUpdate): Promise<void> {
    const { plan, staging } = update;
    const { live } = await this.state();
    if (plan.version === live)
      throw new AdapterError(`${this.root}: version ${plan.version} is already live`);
    if (plan.prev_version !== null && plan.prev_version !== live) {
      throw new AdapterError(
        `${this.root}: plan ${plan.version} is a delta from ${plan.prev_version}, but the live version is ${live ?? 'none'}`,
      );
    }
    const items = plan.prev_version === null ? {} : { ...(await this.readIndex(plan.prev_version)).items };
    for (const key of plan.removed) delete items[key];
    await mkdir(join(this.root, 'blobs'), { recursive: true });
    await mkdir(join(this.root, 'versions'), { recursive: true });
    for (const [key, staged] of stagedItems(plan, staging)) {
      const blob = staged.item.hash.replace(':', '-');
      if (!BLOB_NAME.test(blob))
        throw new AdapterError(`item ${key}: hash ${staged.item.hash} is not <algo>:<hex>`);
      const tmp = `${this.blobFile(blob)}.tmp-${process.pid}`;
      const fh = await open(tmp, 'w');
      try {
        for (const c of staged.chunks) await fh.write(c.bytes, 0, c.bytes.byteLength, c.at);
      } finally {
        await fh.close();
      }
      await rename(tmp, this.blobFile(blob));
      items[key] = { blob, nbytes: staged.nbytes };
    }
    const index: KvIndex = { version: plan.version, items };
    await this.replace(this.indexFile(plan.version), `${JSON.stringify(index)}\n`);
  }

  async commit(version: string): Promise<void> {
    const { live } = await this.state();
    if (version === live) return;
    await this.readIndex(version); // was it prepared?
    await this.replace(
      join(this.root, 'STATE.json'),
      `${JSON.stringify({ live: version, previous: live })}\n`,
    );
    await this.prune();
  }

  async abort(version: string): Promise<void> {
    const { live, previous } = await this.state();
    if (version !== live && version !== previous) await rm(this.indexFile(version), { force: true });
  }

  async rollback(): Promise<string> {
    const { live, previous } = await this.state();
    if (previous === null)
      throw new AdapterError(`${this.root}: nothing to roll back to: no previous version is kept`);
    await this.replace(
      join(this.root, 'STATE.json'),
      `${JSON.stringify({ live: previous, previous: live })}\n`,
    );
    return previous;
  }

  /** Removes indexes and blobs that neither the live nor the previous version uses. */
  private async prune(): Promise<void> {
    const { live, previous } = await this.state();
    const kept = new Set(
      [live, previous].filter((v): v is string => v !== null).map((v) => `${encodeURIComponent(v)}.json`),
    );
    const used = new Set<string>();
    for (const v of [live, previous]) {
      if (v !== null) for (const { blob } of Object.values((await this.readIndex(v)).items)) used.add(blob);
    }
    for (const name of await readdir(join(this.root, 'versions'))) {
      if (INDEX_NAME.test(name) && !kept.has(name))
        await rm(join(this.root, 'versions', name), { force: true });
    }
    for (const name of await readdir(join(this.root, 'blobs'))) {
      if (BLOB_NAME.test(name) && !used.has(name)) await rm(this.blobFile(name), { force: true });
    }
  }
}
