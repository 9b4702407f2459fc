/**
 * Writes output documents atomically (a temp file beside the target, then rename), so a failure
 * never leaves a partial manifest or plan behind, and refuses targets inside a checkpoint.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
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

/** Writes chunks to a temp file and renames it over `path`. */
export async function writeAtomically(path: string, chunks: Iterable<string | Uint8Array>): Promise<void> {
  const target = resolve(path);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(
    dirname(target),
    `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
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
    throw new HotweightsError('HW_WRITE', `cannot write ${target}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
