export type {
  Adapter,
  AdapterOptions,
  AdapterPackageManifest,
  AdapterPreparation,
  AdapterProvider,
  AdapterUpdate,
  ItemSource,
  LandedRange,
} from './adapter.js';
export {
  ADAPTER_KEYWORD,
  type AdapterCandidate,
  AdapterManager,
  type AdapterManagerOptions,
  chooseAdapter,
  discoverAdapterPackages,
  type ProbedAdapter,
} from './adapter-manager.js';
export { checkBroadcastRequest, checkParticipants, signalReason } from './broadcast-checks.js';
export {
  type HotweightsConfig,
  type LaunchContext,
  loadConfig,
  type MasterAddress,
  readLaunchContext,
  readMasterAddress,
  renderConfigTable,
  replacedVariableNotices,
  unknownVariables,
} from './config.js';
export { VARIABLES, type VariableName } from './config-variables.js';
export {
  AdapterError,
  type AdapterErrorCode,
  CheckpointError,
  type CheckpointErrorCode,
  CommitError,
  type CommitErrorCode,
  ConfigError,
  type ConfigErrorCode,
  CoordinatorError,
  type CoordinatorErrorCode,
  ERROR_BRAND,
  type ErrorCode,
  type ErrorKinds,
  type GeneralErrorCode,
  HotweightsError,
  hasErrorCode,
  isErrorKind,
  isHotweightsError,
  NoAdapterError,
  NoTransportError,
  PathEscapeError,
  type PathEscapeErrorCode,
  PlanVerificationError,
  type PlanVerificationErrorCode,
  SchemaError,
  type SchemaErrorCode,
  StagingError,
  type StagingErrorCode,
  TimeoutError,
  type TimeoutErrorCode,
  TransportError,
  type TransportErrorCode,
  VerificationError,
  type VerificationErrorCode,
} from './errors.js';
export {
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  type ManifestEntryKind,
  type ManifestFile,
} from './manifest.js';
export {
  type BufferRef,
  type DeviceBuffer,
  type HostBuffer,
  isDeviceBuffer,
  type MemoryKind,
} from './memory.js';
export {
  MAX_WORLD_SIZE,
  type PatchEncoding,
  PLAN_SCHEMA,
  PLAN_VERSION,
  PLAN_VERSION_PATCHES,
  PLAN_VERSIONS,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type PlanItemPart,
  type PlanItemPatch,
} from './plan.js';
export {
  CORE_API_VERSION,
  discoverPlugins,
  type PluginCandidate,
  type PluginKind,
} from './plugin-discovery.js';
export { REPLACED_VARIABLES, type ReplacedVariable, renderReplacedVariables } from './seed-variables.js';
export { type StagedItem, stagedItems } from './staged-items.js';
export { type SegmentTensorItem, type StagedSegment, stagedSegments } from './staged-segments.js';
export type { StagedBucket, StagingAgent } from './staging.js';
export type {
  AddressExchange,
  BroadcastRequest,
  DeviceStagingOptions,
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
  chooseTransport,
  chooseTransportForFleet,
  discoverTransportPackages,
  type FleetChoice,
  type ProbedCandidate,
  TRANSPORT_KEYWORD,
  type TransportCandidate,
  TransportManager,
  type TransportManagerOptions,
} from './transport-manager.js';
