/**
 * Writes output documents atomically (a temp file beside the target, then rename), so a failure
 * never leaves a partial manifest or plan behind, and refuses targets inside a checkpoint.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, mkdirSync, openSync, write } from 'node:fs';
import { mkdir, realpath, rename, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { finished } from 'node:stream/promises';
import { HotweightsError } from '@hotweights/core';

/** Real path of p, resolving the longest existing prefix (p itself may not exist yet). */
async function realpathLoose(p: string): Promise<string> {
  const abs = resolve(p);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    if (parent === abs) return abs;
    return join(await realpathLoose(parent), basename(abs));
  }
}

/** True when `path` is inside directory `dir` (after resolving symlinks). */
export async function isInside(path: string, dir: string): Promise<boolean> {
  const [p, d] = await Promise.all([realpathLoose(path), realpathLoose(dir)]);
  const rel = relative(d, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Throws unless `allow` when `path` lies inside `checkpoint`. */
export async function refuseInsideCheckpoint(
  path: string,
  checkpoint: string | undefined,
  allow: boolean | undefined,
) {
  if (!checkpoint || allow) return;
  if (await isInside(path, checkpoint))
    throw new HotweightsError(
      'HW_OUTPUT_IN_CHECKPOINT',
      `refusing to write ${path} inside the checkpoint directory ${checkpoint} (it would become part of the next publish); choose another --output`,
      { details: { path, checkpoint } },
    );
}

/** A fresh temp file name beside `target` (same directory, so the rename is atomic). */
function tempBeside(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

function writeError(target: string, err: unknown): HotweightsError {
  return new HotweightsError('HW_WRITE', `cannot write ${target}: ${(err as Error).message}`, { cause: err });
}

/** Writes chunks to a temp file and renames it over `path`. */
export async function writeAtomically(path: string, chunks: Iterable<string | Uint8Array>): Promise<void> {
  const target = resolve(path);
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempBeside(target);
  const out = createWriteStream(tmp);
  try {
    for (const chunk of chunks) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    out.end();
    await finished(out);
    await rename(tmp, target);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw writeError(target, err);
  }
}

/** A file being written beside its target by stageAtomically: commit or discard it, once. */
export interface StagedFile {
  /** Waits for the bytes to be written, then renames the file over its target. */
  commit(): Promise<void>;
  /** Waits for the write to end and removes the file; the target is left as it was. */
  discard(): Promise<void>;
}

/** All chunks written to fd in order, by the thread pool (the first write is queued at once). */
function writeAll(fd: number, chunks: readonly Uint8Array[]): Promise<void> {
  return new Promise((done, fail) => {
    let k = 0;
    let at = 0;
    const next = (): void => {
      while (k < chunks.length && at >= (chunks[k] as Uint8Array).length) {
        k++;
        at = 0;
      }
      const chunk = chunks[k];
      if (!chunk) {
        done();
        return;
      }
      write(fd, chunk, at, chunk.length - at, null, (err, n) => {
        if (err) fail(err);
        else {
          at += n;
          next();
        }
      });
    };
    next();
  });
}

/**
 * Starts writing `chunks` to a temp file beside `path` and returns at once: the bytes go out on
 * the thread pool while the caller goes on (even synchronously), and reach `path` only at commit,
 * by rename. A failure never leaves a partial file at `path`, and discard leaves no temp file.
 */
export function stageAtomically(path: string, chunks: readonly Uint8Array[]): StagedFile {
  const target = resolve(path);
  let tmp: string;
  let fd: number;
  try {
    mkdirSync(dirname(target), { recursive: true });
    tmp = tempBeside(target);
    fd = openSync(tmp, 'w');
  } catch (err) {
    throw writeError(target, err);
  }
  const written = writeAll(fd, chunks);
  written.catch(() => {});
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      closeSync(fd);
    }
  };
  return {
    async commit() {
      try {
        await written;
        close();
        await rename(tmp, target);
      } catch (err) {
        try {
          close();
        } finally {
          await rm(tmp, { force: true });
        }
        throw writeError(target, err);
      }
    },
    async discard() {
      await written.catch(() => {});
      try {
        close();
      } finally {
        await rm(tmp, { force: true });
      }
    },
  };
}
