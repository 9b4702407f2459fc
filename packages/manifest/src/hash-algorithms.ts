/**
 * The one table of content-hash algorithms: what a manifest may name in `hash_algo`, what publish
 * hashes with, and what verification checks. Every consumer reads it here, so they accept exactly
 * the same algorithms.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

type BlakeHash = typeof import('@napi-rs/blake-hash');
type XxHash = typeof import('@node-rs/xxhash');

/** A streaming hasher: fed part by part (split tensors, slices of a mapped file). */
export interface ItemHasher {
  update(bytes: Uint8Array): void;
  /** Lowercase hex digest. */
  digestHex(): string;
}

export interface HashAlgorithmInfo {
  readonly name: HashAlgorithm;
  /** Hex digits of a digest (twice its byte length). */
  readonly hexLength: number;
  /** The native addon package the hasher loads, or null for Node's own crypto. */
  readonly addon: '@napi-rs/blake-hash' | '@node-rs/xxhash' | null;
  /**
   * True when the hasher runs on a worker thread (publish's hash pool, verification's pool): it
   * streams in bounded memory and its addon loads in a worker.
   */
  readonly workerThreads: boolean;
  /** A fresh streaming hasher. */
  createHasher(): ItemHasher;
}

/**
 * The native hashers, loaded on first use: opening their addons is ~30 ms of every start, and
 * commands that hash nothing (`plan`, `status`) should not pay for it.
 */
const requireHere = createRequire(import.meta.url);
let blakeHash: BlakeHash | undefined;
let xxHash: XxHash | undefined;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export const HASH_ALGORITHMS = ['blake3', 'xxh3-64', 'sha256'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

const TABLE: Readonly<Record<HashAlgorithm, HashAlgorithmInfo>> = Object.freeze({
  blake3: {
    name: 'blake3',
    hexLength: 64,
    addon: '@napi-rs/blake-hash',
    workerThreads: true,
    createHasher(): ItemHasher {
      blakeHash ??= requireHere('@napi-rs/blake-hash') as BlakeHash;
      const h = new blakeHash.Blake3Hasher();
      return { update: (b) => void h.update(asBuffer(b)), digestHex: () => h.digest('hex') };
    },
  },
  'xxh3-64': {
    name: 'xxh3-64',
    hexLength: 16,
    addon: '@node-rs/xxhash',
    workerThreads: true,
    createHasher(): ItemHasher {
      xxHash ??= requireHere('@node-rs/xxhash') as XxHash;
      const h = xxHash.xxh3.Xxh3.withSeed();
      return { update: (b) => void h.update(b), digestHex: () => h.digest().toString(16).padStart(16, '0') };
    },
  },
  sha256: {
    name: 'sha256',
    hexLength: 64,
    addon: null,
    workerThreads: true,
    createHasher(): ItemHasher {
      const h = createHash('sha256');
      return { update: (b) => void h.update(b), digestHex: () => h.digest('hex') };
    },
  },
});

export function isHashAlgorithm(name: string): name is HashAlgorithm {
  return Object.hasOwn(TABLE, name);
}

/** The table's row for an algorithm, or undefined for one it does not list. */
export function hashAlgorithmInfo(name: string): HashAlgorithmInfo | undefined {
  return isHashAlgorithm(name) ? TABLE[name] : undefined;
}

/** The one wording for an algorithm outside the table: names it and lists the known ones. */
export function unknownHashAlgorithmMessage(name: string): string {
  return `unknown hash algorithm ${JSON.stringify(name)}: expected one of ${HASH_ALGORITHMS.join(', ')}`;
}

/** Hex digits of each algorithm's digest (twice its byte length). */
export const HASH_HEX_LENGTH: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(HASH_ALGORITHMS.map((a) => [a, TABLE[a].hexLength])),
);
