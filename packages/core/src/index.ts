export type { Adapter, AdapterPreparation, AdapterUpdate, ItemSource, LandedRange } from './adapter.js';
export { MemoryAdapter } from './adapter-memory.js';
export { type VoteResult, voteBucketId, voteOnCommit } from './commit-vote.js';
export {
  type HotweightsConfig,
  type LaunchContext,
  loadConfig,
  readLaunchContext,
  renderConfigTable,
  VARIABLES,
  type VariableName,
} from './config.js';
export {
  AdapterError,
  CheckpointError,
  CommitError,
  ConfigError,
  CoordinatorError,
  HotweightsError,
  isHotweightsError,
  NoTransportError,
  PathEscapeError,
  PlanVerificationError,
  SchemaError,
  StagingError,
  TimeoutError,
  TransportError,
  VerificationError,
} from './errors.js';
export { copyFileRange, WRITE_PIECE, writeAllAt } from './file-write.js';
export { HostStaging, type HostStagingOptions } from './host-staging.js';
export {
  createItemHasher,
  HASH_ALGORITHMS,
  type HashAlgorithm,
  hashItem,
  type ItemHasher,
  parseItemHash,
} from './item-hash.js';
export {
  createRendezvousDir,
  type LocalLaunchOptions,
  type LocalRankExit,
  launchLocalRanks,
  type RankEvent,
  removeRendezvousDir,
} from './local-launcher.js';
export { LocalTransport, localTransportProvider } from './local-transport.js';
export {
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  type ManifestEntryKind,
  type ManifestFile,
} from './manifest.js';
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
export { createMetricsRegistry, type MetricsServer, startMetricsServer } from './metrics-server.js';
export { hashName, NameColumn } from './name-column.js';
export {
  PLAN_SCHEMA,
  PLAN_VERSION,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type PlanItemPart,
} from './plan.js';
export { computePlanDigest, loadPlan, parsePlan, validatePlan } from './plan-io.js';
export { type RankUpdateOptions, type RankUpdateResult, runRankUpdate } from './rank-update.js';
export {
  bucketParticipants,
  planGroups,
  type RankReport,
  type ReplicateRankOptions,
  type ReplicationProgress,
  replicateRank,
} from './replicator.js';
export { createReplicatorMetrics, type ReplicatorMetrics } from './replicator-metrics.js';
export { canonicalJson, isConfinedRelativePath, type JsonObject, SchemaChecker } from './schema-check.js';
export { reclaimStaleSegments, SEGMENT_PREFIX } from './shm-segment.js';
export { type StagedItem, stagedItems } from './staged-items.js';
export type { StagedBucket, StagingAgent } from './staging.js';
export type {
  BroadcastRequest,
  FetchRequest,
  ProbeContext,
  ProbeResult,
  Transport,
  TransportOptions,
  TransportPackageManifest,
  TransportProvider,
} from './transport.js';
export {
  BUILTIN_PRIORITIES,
  CORE_API_VERSION,
  chooseTransport,
  discoverTransportPackages,
  type ProbedCandidate,
  TRANSPORT_KEYWORD,
  type TransportCandidate,
  TransportManager,
  type TransportManagerOptions,
} from './transport-manager.js';
