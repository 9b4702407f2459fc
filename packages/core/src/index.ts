export type { Adapter, AdapterPreparation, AdapterUpdate, ItemSource, LandedRange } from './adapter.js';
export {
  type HotweightsConfig,
  type LaunchContext,
  loadConfig,
  type MasterAddress,
  readLaunchContext,
  readMasterAddress,
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
export {
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  type ManifestEntryKind,
  type ManifestFile,
} from './manifest.js';
export {
  PLAN_SCHEMA,
  PLAN_VERSION,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type PlanItemPart,
} from './plan.js';
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
