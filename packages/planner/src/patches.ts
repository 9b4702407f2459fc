/**
 * Patch items (issue #16): where the previous version's bytes are readable (its checkpoint
 * directory on this host), each tensor that changed in place (same key, same size) is encoded as
 * a patch against them, and the patch kept when it is smaller than the tensor (and fits one
 * bucket). Both tensors are hashed as they are read and must match their manifests: a patch made
 * from bytes that changed after publish would fail on every rank. The patches go into one file
 * (the plan's `patches.path`), which the source rank reads instead of the tensor's bytes.
 */
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CheckpointError, type Manifest, type ManifestEntry, type PlanItemPatch } from '@hotweights/core';
import { encodePatch, type HashAlgorithm, hashItem, isHashAlgorithm } from '@hotweights/manifest';

export interface PatchCandidate {
  /** Bytes of the patch (what the item moves). */
  readonly nbytes: number;
  readonly patch: PlanItemPatch;
}

export interface WritePatchesOptions {
  readonly prev: Manifest;
  readonly next: Manifest;
  /** Checkpoint directory of `prev` (its bytes are the base every patch applies to). */
  readonly prevRoot: string;
  /** Checkpoint directory of `next`. */
  readonly nextRoot: string;
  /** The patch file to write (replaced). */
  readonly output: string;
  /** Largest patch kept (a patch is never split; the plan's bucket size). */
  readonly maxPatchBytes: number;
}

export interface WrittenPatches {
  /** By plan key: the patch chosen for that tensor (tensors absent here move whole). */
  readonly patches: ReadonlyMap<string, PatchCandidate>;
  /** The patch file as the plan records it. */
  readonly file: { readonly path: string; readonly bytes: number };
  /** Changed tensors that were encoded, and the bytes they would move whole. */
  readonly tried: number;
  readonly triedBytes: number;
}

async function readEntry(
  files: Map<string, Promise<FileHandle>>,
  root: string,
  e: ManifestEntry,
  algo: HashAlgorithm,
  version: string,
): Promise<Uint8Array> {
  let fh = files.get(e.file);
  if (!fh) {
    fh = open(join(root, e.file), 'r').catch((err: unknown) => {
      throw new CheckpointError(
        `--patches: cannot read ${e.file} of version ${version} in ${root} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): pass the directory it was published from (--prev-checkpoint for the previous version, --checkpoint for the next)`,
        { cause: err, details: { file: e.file } },
      );
    });
    fh.catch(() => {});
    files.set(e.file, fh);
  }
  const buf = new Uint8Array(e.nbytes);
  let done = 0;
  while (done < e.nbytes) {
    const { bytesRead } = await (await fh).read(buf, done, e.nbytes - done, e.file_offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  if (done !== e.nbytes || hashItem(algo, [buf]) !== e.hash)
    throw new CheckpointError(
      `${e.file} in ${root} no longer holds tensor ${e.key} of version ${version} as published (its bytes do not match the manifest's hash): publish it again, or plan without --patches`,
      { details: { file: e.file, key: e.key } },
    );
  return buf;
}

/** Encodes the patches of `next` against `prev` into `output` (see the file comment). */
export async function writePatches(o: WritePatchesOptions): Promise<WrittenPatches> {
  const { prev, next } = o;
  const algo = next.hash_algo;
  if (!isHashAlgorithm(algo) || prev.hash_algo !== algo)
    throw new CheckpointError(
      `patches need both manifests hashed with one known algorithm (prev ${prev.hash_algo}, next ${algo})`,
    );
  const prevFiles = new Map<string, Promise<FileHandle>>();
  const nextFiles = new Map<string, Promise<FileHandle>>();
  const path = resolve(o.output);
  const out = await open(path, 'w', 0o644);
  const patches = new Map<string, PatchCandidate>();
  let bytes = 0;
  let tried = 0;
  let triedBytes = 0;
  try {
    for (let i = 0; i < next.size; i++) {
      const e = next.entry(i);
      if (e.kind !== 'tensor' || e.nbytes === 0) continue;
      const old = prev.get(e.key);
      if (old?.kind !== 'tensor' || old.nbytes !== e.nbytes || old.hash === e.hash) continue;
      tried++;
      triedBytes += e.nbytes;
      const base = await readEntry(prevFiles, o.prevRoot, old, algo, prev.version);
      const now = await readEntry(nextFiles, o.nextRoot, e, algo, next.version);
      const { encoding, bytes: encoded } = encodePatch(base, now);
      if (encoded.length >= e.nbytes || encoded.length > o.maxPatchBytes) continue;
      await out.write(encoded, 0, encoded.length, bytes);
      patches.set(e.key, {
        nbytes: encoded.length,
        patch: {
          encoding,
          base_hash: old.hash,
          hash: hashItem(algo, [encoded]),
          file_offset: bytes,
          tensor_nbytes: e.nbytes,
        },
      });
      bytes += encoded.length;
    }
    await out.sync();
  } catch (err) {
    // No half-written patch file stays behind a failed plan.
    await out.close().catch(() => {});
    await rm(path, { force: true });
    throw err;
  } finally {
    await out.close().catch(() => {});
    for (const fh of [...prevFiles.values(), ...nextFiles.values()])
      await fh.then((h) => h.close()).catch(() => {});
  }
  return { patches, file: { path, bytes }, tried, triedBytes };
}
