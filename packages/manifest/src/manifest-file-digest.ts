/**
 * The content digest of a binary manifest file, streamed from the file in 1 MiB reads: the same
 * value computeManifestDigest gives for its decoded columns, without decoding them (no column is
 * built and nothing large is kept). The file is not validated here: this is for a file already
 * loaded and validated elsewhere (the background check of a mapped load, whose caller checks that
 * the file is still the one it validated). Returns null when the shortcut does not apply (names
 * that are not ASCII, whose digest needs their UTF-16 lengths; a big-endian machine) and the
 * caller decodes the file instead.
 */
import { Buffer, isAscii } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { BINARY_MANIFEST_MAGIC } from './manifest-binary.js';
import { LITTLE_ENDIAN } from './manifest-columns.js';
import { DIGEST_COLUMNS, digestHead } from './manifest-digest.js';

const PIECE = 1 << 20;

interface BinaryHeader {
  readonly version: string;
  readonly model_id: string | null;
  readonly hash_algo: string;
  readonly files: readonly { path: string; size: number; kind: 'safetensors' | 'file'; entries: number }[];
  readonly dtypes: readonly string[];
  readonly columns: Readonly<Record<string, readonly [number, number]>>;
}

export function binaryManifestFileDigest(path: string): string | null {
  if (!LITTLE_ENDIAN) return null;
  const fd = openSync(path, 'r');
  try {
    const pre = Buffer.alloc(16);
    if (readSync(fd, pre, 0, 16, 0) !== 16 || !pre.subarray(0, 8).equals(BINARY_MANIFEST_MAGIC)) return null;
    const headBytes = Buffer.alloc(pre.readUInt32LE(8));
    readSync(fd, headBytes, 0, headBytes.length, 16);
    const header = JSON.parse(headBytes.toString('utf8')) as BinaryHeader;
    const h = createHash('sha256');
    h.update(
      digestHead(
        header,
        header.files.map((f) => f.entries),
      ),
    );
    const buf = Buffer.from(new ArrayBuffer(PIECE));
    /** Feeds [offset, offset + length) of the file to `each`, piece by piece. */
    const stream = (span: readonly [number, number], each: (piece: Buffer) => boolean): boolean => {
      const [offset, length] = span;
      for (let done = 0; done < length; ) {
        const n = readSync(fd, buf, 0, Math.min(PIECE, length - done), offset + done);
        if (n <= 0) throw new Error(`${path} ends inside its column at byte ${offset + done}`);
        if (!each(buf.subarray(0, n))) return false;
        done += n;
      }
      return true;
    };
    const hashAll = (piece: Buffer) => {
      h.update(piece);
      return true;
    };
    const col = (name: string) => {
      const span = header.columns[name];
      if (!span) throw new Error(`${path}: no column ${name}`);
      return span;
    };
    for (const name of DIGEST_COLUMNS) {
      h.update('\n');
      if (name !== 'tensor') {
        stream(col(name), hashAll);
        continue;
      }
      // ASCII names hash as their bytes, then their lengths (u32) from the byte offsets.
      if (!stream(col('tensor'), (piece) => isAscii(piece) && hashAll(piece))) return null;
      hashLengths(h, fd, col('tensor_offsets'), buf);
    }
    return `sha256:${h.digest('hex')}`;
  } finally {
    closeSync(fd);
  }
}

/** u32 name lengths (differences of the u32 offsets column) into `h`. */
function hashLengths(h: Hash, fd: number, [offset, length]: readonly [number, number], buf: Buffer): void {
  const lengths = new Uint32Array(PIECE / 4);
  // The offsets read as u32 words in place (a little-endian machine: see the caller); `buf` is
  // its own ArrayBuffer, so 4-byte aligned.
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
  let prev: number | undefined;
  for (let done = 0; done < length; ) {
    const n = readSync(fd, buf, 0, Math.min(PIECE, length - done), offset + done);
    if (n <= 0 || n % 4 !== 0) throw new Error(`short read of name offsets at byte ${offset + done}`);
    let k = 0;
    for (let w = 0; w < n >> 2; w++) {
      const o = words[w] as number;
      if (prev !== undefined) lengths[k++] = o - prev;
      prev = o;
    }
    h.update(new Uint8Array(lengths.buffer, 0, k * 4));
    done += n;
  }
}
