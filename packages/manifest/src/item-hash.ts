/**
 * Item hashes as written in manifests and plans: `<algo>:<hex>`. One streaming hasher per
 * algorithm so split tensors can be hashed part by part without joining them.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { VerificationError } from '@hotweights/core';

type BlakeHash = typeof import('@napi-rs/blake-hash');
type XxHash = typeof import('@node-rs/xxhash');

/**
 * The native hashers, loaded on first use: opening their addons is ~30 ms of every start, and
 * commands that hash nothing (`plan`, `status`) should not pay for it.
 */
const requireHere = createRequire(import.meta.url);
let blakeHash: BlakeHash | undefined;
let xxHash: XxHash | undefined;
const blake3Hasher = () => {
  blakeHash ??= requireHere('@napi-rs/blake-hash') as BlakeHash;
  return new blakeHash.Blake3Hasher();
};
const xxh3 = (): XxHash['xxh3'] => {
  xxHash ??= requireHere('@node-rs/xxhash') as XxHash;
  return xxHash.xxh3;
};

export const HASH_ALGORITHMS = ['blake3', 'xxh3-64', 'xxh3-128', 'sha256'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

export interface ItemHasher {
  update(bytes: Uint8Array): void;
  /** Lowercase hex digest. */
  digestHex(): string;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function isHashAlgorithm(name: string): name is HashAlgorithm {
  return (HASH_ALGORITHMS as readonly string[]).includes(name);
}

export function createItemHasher(algo: HashAlgorithm): ItemHasher {
  switch (algo) {
    case 'blake3': {
      const h = blake3Hasher();
      return {
        update: (b) => void h.update(asBuffer(b)),
        digestHex: () => h.digest('hex'),
      };
    }
    case 'xxh3-64': {
      const h = xxh3().Xxh3.withSeed();
      return {
        update: (b) => void h.update(b),
        digestHex: () => h.digest().toString(16).padStart(16, '0'),
      };
    }
    case 'xxh3-128': {
      // @node-rs/xxhash has no streaming 128-bit class: keep the parts and hash them once.
      const parts: Uint8Array[] = [];
      return {
        update: (b) => void parts.push(b),
        digestHex: () => {
          const whole = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
          return xxh3().xxh128(whole).toString(16).padStart(32, '0');
        },
      };
    }
    case 'sha256': {
      const h = createHash('sha256');
      return {
        update: (b) => void h.update(b),
        digestHex: () => h.digest('hex'),
      };
    }
  }
}

/** Splits `<algo>:<hex>`; throws VerificationError for an algorithm this build cannot check. */
export function parseItemHash(hash: string, key: string): { algo: HashAlgorithm; hex: string } {
  const i = hash.indexOf(':');
  const algo = i > 0 ? hash.slice(0, i) : '';
  if (!isHashAlgorithm(algo)) {
    throw new VerificationError(
      `item ${key}: cannot verify hash ${JSON.stringify(hash)}: expected <algo>:<hex> with algo one of ${HASH_ALGORITHMS.join(', ')}`,
      { details: { key, hash } },
    );
  }
  return { algo, hex: hash.slice(i + 1).toLowerCase() };
}

/** Hash of `chunks` (in order) formatted as `<algo>:<hex>`. */
export function hashItem(algo: HashAlgorithm, chunks: readonly Uint8Array[]): string {
  const h = createItemHasher(algo);
  for (const c of chunks) h.update(c);
  return `${algo}:${h.digestHex()}`;
}
