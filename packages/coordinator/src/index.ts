export { TokenGuard } from './auth.js';
export type { StateBackend } from './backends/backend.js';
export { MemoryBackend } from './backends/memory.js';
export { RedisBackend, type RedisBackendOptions, redactRedisUrl } from './backends/redis.js';
export {
  CoordinatorClient,
  type CoordinatorClientOptions,
  EventSubscriber,
  eventEndpointFor,
} from './client.js';
export { bucketsForRank, expectedDigest, requiredRanks, rollbackDigest, stagedDigest } from './digest.js';
export {
  type EmbeddedCoordinator,
  type EmbeddedCoordinatorOptions,
  startEmbeddedCoordinator,
} from './embedded.js';
export {
  bindable,
  checkEndpoint,
  connectable,
  defaultPubEndpoint,
  isLoopbackEndpoint,
  metricsHostFor,
} from './endpoint.js';
export { CoordinatorMetrics } from './metrics.js';
export {
  type CoordEvent,
  ERROR_CODES,
  type EventName,
  isMethodName,
  METHODS,
  type MethodName,
  RawJson,
  type RpcErrorBody,
  type RpcReply,
  type RpcRequest,
  replyFrame,
} from './protocol.js';
export { CoordinatorServer, type CoordinatorServerOptions, openBackend } from './server.js';
export { CoordinatorService, type CoordinatorServiceOptions } from './service.js';
export type {
  CoordinatorStatus,
  CurrentRecord,
  FleetRank,
  FleetState,
  FleetView,
  HandleRecord,
  PrecommitRecord,
  UpdateRecord,
  UpdateState,
  UpdateView,
  WorkerRecord,
} from './types.js';
export { WorkerAgent, type WorkerAgentOptions, type WorkerLease } from './worker.js';
