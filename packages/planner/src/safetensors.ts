/**
 * Reading (validated) and writing safetensors files: an 8-byte little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`, then the data buffer.
 * The reader rejects everything the format forbids so that a bad shard fails at publish time with
 * a message naming the file, instead of corrupting an update later.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CheckpointError } from '@hotweights/core';

/** Bytes per element of every dtype the safetensors format defines with a whole-byte size. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
});

/** The format's own bound on the header (100 MB); anything larger is a corrupt length. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Offset of the tensor's bytes from the start of the file. */
  readonly fileOffset: number;
  readonly nbytes: number;
}

export interface SafetensorsHeader {
  /** Bytes of the header: 8 (length) + JSON. Tensor data starts here. */
  readonly headerBytes: number;
  readonly fileSize: number;
  /** Tensors ordered by offset. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly metadata: Readonly<Record<string, string>> | null;
}

export interface TensorData {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

function bad(path: string, problem: string, cause?: unknown): never {
  throw new CheckpointError(`${path}: not a valid safetensors file: ${problem}`, {
    cause,
    details: { file: path },
  });
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validates a parsed header against the file size; `path` names the file in errors. */
export function validateSafetensorsHeader(
  json: unknown,
  headerLen: number,
  fileSize: number,
  path: string,
): SafetensorsHeader {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    bad(path, 'header is not a JSON object');
  const headerBytes = 8 + headerLen;
  const dataSize = fileSize - headerBytes;
  let metadata: Record<string, string> | null = null;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
        bad(path, '__metadata__ is not an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') bad(path, `__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (name.length === 0) bad(path, 'a tensor has an empty name');
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad(path, `${where} is not an object`);
    const t = raw as Record<string, unknown>;
    if (typeof t.dtype !== 'string' || DTYPE_BYTES[t.dtype] === undefined)
      bad(
        path,
        `${where}: unknown dtype ${JSON.stringify(t.dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    const dtype = t.dtype;
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0))
      bad(path, `${where}: shape must be an array of integers >= 0`);
    const shape = t.shape as number[];
    const off = t.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      (off[0] as number) > (off[1] as number)
    )
      bad(path, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    const [begin, end] = off as [number, number];
    if (end > dataSize)
      bad(
        path,
        `${where}: data_offsets end ${end} is past the end of the data (${dataSize} bytes; file truncated?)`,
      );
    const expected = elementCount(shape) * (DTYPE_BYTES[dtype] as number);
    if (end - begin !== expected)
      bad(
        path,
        `${where}: shape [${shape.join(', ')}] × ${dtype} is ${expected} bytes but data_offsets span ${end - begin}`,
      );
    tensors.push({ name, dtype, shape, fileOffset: headerBytes + begin, nbytes: end - begin });
  }
  tensors.sort((a, b) => a.fileOffset - b.fileOffset || a.nbytes - b.nbytes);
  let cursor = headerBytes;
  for (const t of tensors) {
    if (t.fileOffset < cursor) bad(path, `tensor ${JSON.stringify(t.name)} overlaps the previous tensor`);
    if (t.fileOffset > cursor)
      bad(path, `${t.fileOffset - cursor} unused bytes before tensor ${JSON.stringify(t.name)}`);
    cursor = t.fileOffset + t.nbytes;
  }
  if (cursor !== fileSize) bad(path, `${fileSize - cursor} bytes after the last tensor`);
  return { headerBytes, fileSize, tensors, metadata };
}

/** Reads and validates the header of a safetensors file (only the header is read). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  return readSafetensorsHeaderSync(path);
}

/**
 * readSafetensorsHeader without the event loop: three small reads, each of which costs a thread
 * pool round trip when asynchronous (~1 ms apiece measured while publish's hash workers boot).
 */
export function readSafetensorsHeaderSync(path: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new CheckpointError(`cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      cause: err,
      details: { file: path },
    });
  }
  try {
    const { size } = fstatSync(fd);
    if (size < 8) bad(path, `file is ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const len = lenBuf.readBigUInt64LE(0);
    if (len > BigInt(MAX_HEADER_BYTES))
      bad(path, `header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const headerLen = Number(len);
    if (8 + headerLen > size)
      bad(path, `header length ${headerLen} is past the end of the ${size}-byte file (truncated?)`);
    const buf = Buffer.alloc(headerLen);
    const bytesRead = readSync(fd, buf, 0, headerLen, 8);
    if (bytesRead !== headerLen) bad(path, 'file shrank while reading the header');
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf));
    } catch (err) {
      bad(path, `header is not valid UTF-8 JSON (${(err as Error).message})`, err);
    }
    return validateSafetensorsHeader(json, headerLen, size, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a safetensors file that Python's `safetensors` loads: tensors in the given order, data
 * contiguous, header padded with spaces to a multiple of 8 bytes. Atomic (temp file + rename).
 */
export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorData>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const size = DTYPE_BYTES[t.dtype];
    if (size === undefined)
      throw new CheckpointError(`${path}: tensor ${JSON.stringify(name)}: unknown dtype ${t.dtype}`);
    const expected = elementCount(t.shape) * size;
    if (t.data.byteLength !== expected)
      throw new CheckpointError(
        `${path}: tensor ${JSON.stringify(name)}: shape [${t.shape.join(', ')}] × ${t.dtype} needs ${expected} bytes, got ${t.data.byteLength}`,
      );
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    // writeFile continues at the current position and loops until everything is written.
    await fh.writeFile(len);
    await fh.writeFile(json);
    for (const t of Object.values(tensors)) {
      if (t.data.byteLength > 0) await fh.writeFile(t.data);
    }
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
