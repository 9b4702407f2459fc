/** Loading a manifest file, binary or JSON, read or mapped. */
import { Buffer } from 'node:buffer';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { HotweightsError } from '@hotweights/core';
import type { ColumnarManifest } from './columnar-manifest.js';
import { isBinaryManifest, parseManifestBinary } from './manifest-binary.js';
import { cutColumns, decodeText, parseManifest, validateManifest } from './manifest-json.js';
import type { ManifestLoadOptions } from './manifest-validate.js';

type ShmModule = typeof import('@hotweights/shm');
let shmModule: Promise<ShmModule | null> | undefined;

function shmOrNull(): Promise<ShmModule | null> {
  shmModule ??= import('@hotweights/shm').then(
    (m) => (m.shmUnavailableReason() === undefined ? m : null),
    () => null,
  );
  return shmModule;
}

/** Identity of a mapped manifest file when it was mapped (see checkManifestFileUnchanged). */
interface MappedFile {
  readonly path: string;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

const mappedFiles = new WeakMap<ColumnarManifest, MappedFile>();

/** A binary manifest file's bytes as a read-only mapping, or null (not binary, no shm, empty). */
async function mapManifest(path: string): Promise<{ bytes: Buffer; file: MappedFile } | null> {
  const shm = await shmOrNull();
  if (!shm) return null;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // the read that follows reports it
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size < 8n || st.size > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8 || !isBinaryManifest(head)) return null;
    const range = shm.mapRangeFd(fd, 0, Number(st.size), { advice: 'populate' });
    const { view } = range;
    return {
      bytes: Buffer.from(view.buffer, view.byteOffset, view.byteLength),
      file: { path, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs },
    };
  } finally {
    closeSync(fd);
  }
}

/**
 * For a manifest loaded with `map: true`: throws when its file was changed or replaced since it
 * was mapped (its bytes may then have changed under the validated columns). No-op otherwise.
 */
export function checkManifestFileUnchanged(manifest: ColumnarManifest): void {
  const m = mappedFiles.get(manifest);
  if (!m) return;
  let changed: string | undefined;
  try {
    const st = statSync(m.path, { bigint: true });
    if (st.dev !== m.dev || st.ino !== m.ino) changed = 'was replaced';
    else if (st.size !== m.size || st.mtimeNs !== m.mtimeNs || st.ctimeNs !== m.ctimeNs)
      changed = 'was modified';
  } catch (err) {
    changed = `can no longer be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (changed)
    throw new HotweightsError(
      'HW_SCHEMA',
      `manifest ${m.path} ${changed} while it was in use: run the command again`,
      { details: { file: m.path } },
    );
}

/** Reads, parses and validates a manifest file: binary (manifest_version 3) or JSON (2). */
export async function loadManifest(
  path: string,
  options: ManifestLoadOptions = {},
): Promise<ColumnarManifest> {
  if (options.map) {
    const mapped = await mapManifest(path);
    if (mapped) {
      const manifest = parseManifestBinary(mapped.bytes, path, options);
      mappedFiles.set(manifest, mapped.file);
      return manifest;
    }
  }
  let bytes: Buffer | null;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new HotweightsError(
      'HW_NOT_FOUND',
      `cannot read manifest ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err, details: { file: path } },
    );
  }
  if (isBinaryManifest(bytes)) return parseManifestBinary(bytes, path, options);
  const cut = cutColumns(bytes);
  if (cut) {
    bytes = null; // let the file's bytes go before the columns are decoded (lower peak memory)
    return validateManifest(cut.doc, path, options);
  }
  const text = decodeText(bytes);
  bytes = null;
  return parseManifest(text, path, options);
}
