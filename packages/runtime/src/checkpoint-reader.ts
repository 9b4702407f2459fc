/**
 * Reads plan items from the checkpoint on the source rank, straight into a bucket buffer. Every
 * path is resolved inside the checkpoint root; a plan can never make the source read elsewhere.
 */
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { PlanItem } from '@hotweights/core';
import { CheckpointError, PathEscapeError } from '@hotweights/core';

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

export class CheckpointReader {
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private rootReal: Promise<string> | undefined;

  private patchHandle: Promise<FileHandle> | undefined;

  /** `patchFile`: the plan's patch file (`plan.patches.path`), read for patch items. */
  constructor(
    readonly root: string,
    private readonly patchFile?: string,
  ) {}

  /** The open checkpoint file `uri`, confined to the root (opened once, shared by every caller). */
  async file(uri: string): Promise<FileHandle> {
    return this.handle(uri);
  }

  private async handle(uri: string): Promise<FileHandle> {
    let h = this.handles.get(uri);
    if (!h) {
      h = (async () => {
        this.rootReal ??= realpath(this.root).catch((err: unknown) => {
          throw new CheckpointError(
            `checkpoint root ${this.root} is not readable: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        });
        const root = await this.rootReal;
        const path = resolve(root, uri);
        if (!inside(root, path)) throw new PathEscapeError(uri, this.root);
        let real: string;
        try {
          real = await realpath(path);
        } catch (err) {
          throw new CheckpointError(
            `cannot open ${uri} in checkpoint ${this.root}: ${(err as NodeJS.ErrnoException).code}`,
            {
              cause: err,
              details: { file: uri },
            },
          );
        }
        // A symlink inside the checkpoint must not lead out of it either.
        if (!inside(root, real)) throw new PathEscapeError(uri, this.root);
        return open(real, 'r');
      })();
      this.handles.set(uri, h);
    }
    return h;
  }

  /** Reads `item` into `target` at `item.offset` (or at `at` when given). */
  async readItem(item: PlanItem, target: Uint8Array, at = item.offset): Promise<void> {
    if (item.patch) return this.readPatch(item, target, at);
    const fh = await this.handle(item.uri);
    let done = 0;
    while (done < item.nbytes) {
      const { bytesRead } = await fh.read(
        target,
        at + done,
        Math.min(item.nbytes - done, 1 << 30),
        item.file_offset + done,
      );
      if (bytesRead === 0) {
        throw new CheckpointError(
          `${item.uri} in ${this.root} ends before item ${item.key} (needs bytes ${item.file_offset}..${item.file_offset + item.nbytes}): the checkpoint changed after publish?`,
          { details: { file: item.uri, key: item.key } },
        );
      }
      done += bytesRead;
    }
  }

  /** A patch item's bytes, from the plan's patch file. */
  private async readPatch(item: PlanItem, target: Uint8Array, at: number): Promise<void> {
    const p = item.patch as NonNullable<PlanItem['patch']>;
    const path = this.patchFile;
    if (!path)
      throw new CheckpointError(`item ${item.key} is a patch, but the plan names no patch file`, {
        details: { key: item.key },
      });
    this.patchHandle ??= open(path, 'r').catch((err: unknown) => {
      throw new CheckpointError(
        `cannot open the plan's patch file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { cause: err },
      );
    });
    const fh = await this.patchHandle;
    let done = 0;
    while (done < item.nbytes) {
      const { bytesRead } = await fh.read(target, at + done, item.nbytes - done, p.file_offset + done);
      if (bytesRead === 0)
        throw new CheckpointError(
          `patch file ${path} ends before the patch of ${item.key} (needs bytes ${p.file_offset}..${p.file_offset + item.nbytes}): it changed after the plan was made?`,
          { details: { key: item.key } },
        );
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    const patch = this.patchHandle;
    this.patchHandle = undefined;
    await patch?.then((fh) => fh.close()).catch(() => {});
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((h) => h.then((fh) => fh.close()).catch(() => {})));
  }
}
