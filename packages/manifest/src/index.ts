export {
  createItemHasher,
  HASH_ALGORITHMS,
  type HashAlgorithm,
  hashItem,
  type ItemHasher,
  parseItemHash,
} from './item-hash.js';
export {
  BINARY_MANIFEST_MAGIC,
  BINARY_MANIFEST_VERSION,
  encodeManifestBinary,
  isBinaryManifest,
  parseManifestBinary,
  serializeManifestBinary,
} from './manifest-binary.js';
export {
  buildManifest,
  ColumnarManifest,
  checkManifestFileUnchanged,
  computeKeyOrder,
  computeManifestDigest,
  HASH_HEX_LENGTH,
  loadManifest,
  MANIFEST_VERSION,
  type ManifestColumns,
  type ManifestLoadOptions,
  type ManifestMeta,
  parseManifest,
  serializeManifest,
  toColumnar,
  validateManifest,
} from './manifest-io.js';
export {
  COMMITTED_RECORD_FILES,
  committedManifestPath,
  readCommittedManifest,
  readCommittedRecord,
  recordCommittedManifest,
} from './manifest-record.js';
export { hashName, NameColumn } from './name-column.js';
export { computePlanDigest, loadPlan, parsePlan, validatePlan } from './plan-io.js';
export { canonicalJson, isConfinedRelativePath, type JsonObject, SchemaChecker } from './schema-check.js';
