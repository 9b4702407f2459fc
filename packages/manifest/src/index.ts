export { ColumnarManifest } from './columnar-manifest.js';
export {
  HASH_ALGORITHMS,
  HASH_HEX_LENGTH,
  type HashAlgorithm,
  type HashAlgorithmInfo,
  hashAlgorithmInfo,
  type ItemHasher,
  isHashAlgorithm,
  unknownHashAlgorithmMessage,
} from './hash-algorithms.js';
export { createItemHasher, hashItem, parseItemHash } from './item-hash.js';
export { computeKeyOrder, type KeyOrderCheck, useKeyOrderCheck } from './key-index.js';
export {
  BINARY_MANIFEST_MAGIC,
  encodeManifestBinary,
  isBinaryManifest,
  parseManifestBinary,
  serializeManifestBinary,
} from './manifest-binary.js';
export { buildManifest, toColumnar } from './manifest-build.js';
export {
  BINARY_MANIFEST_VERSION,
  MANIFEST_VERSION,
  type ManifestColumns,
  type ManifestMeta,
} from './manifest-columns.js';
export { computeManifestDigest } from './manifest-digest.js';
export { parseManifest, serializeManifest, validateManifest } from './manifest-json.js';
export { checkManifestFileUnchanged, loadManifest } from './manifest-load.js';
export {
  COMMITTED_RECORD_FILES,
  committedManifestPath,
  readCommittedManifest,
  readCommittedRecord,
  recordCommittedManifest,
} from './manifest-record.js';
export { type EntryCheck, type ManifestLoadOptions, useEntryCheck } from './manifest-validate.js';
export { hashName, NameColumn } from './name-column.js';
export { applyPatch, encodePatch, PATCH_ENCODINGS } from './patch-codec.js';
export { computePlanDigest, loadPlan, parsePlan, validatePlan } from './plan-io.js';
export { canonicalJson, isConfinedRelativePath, type JsonObject, SchemaChecker } from './schema-check.js';
export { siblingModule, startModuleWorker } from './worker-module.js';
