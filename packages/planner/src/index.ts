export { isInside, type StagedFile } from './atomic-write.js';
export {
  type ConsumerOptions,
  consumerResolver,
  type GroupMapRule,
  globToRegExp,
  parseGroupMap,
  parseTpGroups,
  type TpGroups,
} from './consumers.js';
export {
  type CreatePlanOptions,
  createPlan,
  DEFAULT_ALIGNMENT,
  planDeltaCounts,
} from './create-plan.js';
export { formatBytes } from './format-bytes.js';
export { checkHashAlgo, type HashTask, hashRanges } from './hash-pool.js';
export {
  MANIFEST_FORMATS,
  type ManifestFormat,
  type WriteManifestOptions,
  writeManifest,
} from './manifest-writer.js';
export {
  nativeEntryCheck,
  nativeItemTextAvailable,
  nativeItemTextUnavailableReason,
  nativeKeyOrderCheck,
} from './native-text.js';
export {
  alignUp,
  type PackedItems,
  type Placement,
  packFirstFitDecreasing,
  packFirstFitDecreasingInto,
} from './packing.js';
export {
  type PatchCandidate,
  type WritePatchesOptions,
  type WrittenPatches,
  writePatches,
} from './patches.js';
export { type EncodedPlan, encodePlan, planDigest, planFileBytes } from './plan-text.js';
export { stagePlan, writePlan } from './plan-writer.js';
export { type PublishOptions, type PublishProgress, publish, shardRankOfPath } from './publish.js';
export {
  DTYPE_BYTES,
  MAX_HEADER_BYTES,
  readSafetensorsHeader,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type TensorData,
  validateSafetensorsHeader,
  writeSafetensors,
} from './safetensors.js';
export {
  type Finding,
  type VerifyPlanOptions,
  type VerifyReport,
  verifyPlan,
  verifyTpGroups,
} from './verify.js';
