/**
 * Which checkpoint directories a source rank may read. A plan names its `source.root`, and a plan
 * can come from anyone who can submit one: reading (and hashing) whatever directory it names
 * would leak files that belong to no checkpoint. The operator allows roots with
 * HOTWEIGHTS_SOURCE_ROOTS; by default `publish` records each checkpoint it publishes under the
 * state dir, and those are the roots allowed.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, realpath, rename, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ConfigError } from '@hotweights/core';

const RECORD = 'source-roots.txt';

/** The roots `publish` recorded under `stateDir` (none when nothing was published here). */
export function recordedSourceRoots(stateDir: string): string[] {
  try {
    return parseRecord(readFileSync(join(stateDir, RECORD), 'utf8'));
  } catch {
    return [];
  }
}

/** Adds `root` (resolved through symlinks) to the roots recorded under `stateDir`. */
export async function recordSourceRoot(stateDir: string, root: string): Promise<void> {
  const real = await realpath(root);
  const file = join(stateDir, RECORD);
  const known = parseRecord(await readFile(file, 'utf8').catch(() => ''));
  if (known.includes(real)) return;
  await mkdir(stateDir, { recursive: true });
  const tmp = `${file}.tmp${process.pid}`;
  await writeFile(tmp, [...known, real].map((r) => `${r}\n`).join(''));
  await rename(tmp, file);
}

/**
 * Throws ConfigError unless `root` is (inside) one of `allowed`. Nothing under `root` is read
 * before this passes, so a refused plan learns nothing about the files there.
 */
export async function checkSourceRoot(root: string, allowed: readonly string[]): Promise<void> {
  const real = await realpath(resolve(root)).catch(() => resolve(root));
  for (const a of allowed) {
    const base = await realpath(resolve(a)).catch(() => resolve(a));
    const rel = relative(base, real);
    if (rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))) return;
  }
  throw new ConfigError(
    `plan source.root ${root} is not an allowed checkpoint root (${allowed.length} allowed): refusing to read it. Publish that checkpoint on this host, or add it to HOTWEIGHTS_SOURCE_ROOTS`,
    { details: { root } },
  );
}

function parseRecord(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
