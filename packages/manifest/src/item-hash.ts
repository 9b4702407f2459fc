/**
 * Item hashes as written in manifests and plans: `<algo>:<hex>`, with a streaming hasher per
 * algorithm (hash-algorithms.ts) so split tensors can be hashed part by part without joining them.
 */
import { VerificationError } from '@hotweights/core';
import {
  type HashAlgorithm,
  hashAlgorithmInfo,
  type ItemHasher,
  isHashAlgorithm,
  unknownHashAlgorithmMessage,
} from './hash-algorithms.js';

export function createItemHasher(algo: HashAlgorithm): ItemHasher {
  const info = hashAlgorithmInfo(algo);
  if (!info) throw new TypeError(unknownHashAlgorithmMessage(algo));
  return info.createHasher();
}

/** Splits `<algo>:<hex>`; throws VerificationError for an algorithm this build cannot check. */
export function parseItemHash(hash: string, key: string): { algo: HashAlgorithm; hex: string } {
  const i = hash.indexOf(':');
  const algo = i > 0 ? hash.slice(0, i) : '';
  if (!isHashAlgorithm(algo)) {
    throw new VerificationError(
      `item ${key}: cannot verify hash ${JSON.stringify(hash)}: expected <algo>:<hex>, ${unknownHashAlgorithmMessage(algo)}`,
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
