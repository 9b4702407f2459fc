export { processAlive } from '@hotweights/shm';
export { type VoteResult, voteBucketId, voteOnCommit } from './commit-vote.js';
export { copyFileRange, SHARE_ALIGN, WRITE_PIECE, writeAllAt } from './file-write.js';
export { HostStaging, type HostStagingOptions } from './host-staging.js';
export {
  createRendezvousDir,
  type LocalLaunchOptions,
  type LocalRankExit,
  launchLocalRanks,
  type RankEvent,
  removeRendezvousDir,
} from './local-launcher.js';
export { createMetricsRegistry, type MetricsServer, startMetricsServer } from './metrics-server.js';
export { checkPlanWorld, type PlanWorld, type PlanWorldCheck } from './plan-world.js';
export { type RankUpdateOptions, type RankUpdateResult, runRankUpdate } from './rank-update.js';
export {
  bucketParticipants,
  planGroups,
  prestartHashing,
  type RankReport,
  type ReplicateRankOptions,
  type ReplicationProgress,
  replicateRank,
} from './replicator.js';
export { createReplicatorMetrics, type ReplicatorMetrics } from './replicator-metrics.js';
export { reclaimStaleSegments, SEGMENT_PREFIX } from './shm-segment.js';
export { checkSourceRoot, recordedSourceRoots, recordSourceRoot } from './source-roots.js';
export {
  type CommitResult,
  type StagedUpdate,
  type StageUpdateOptions,
  stageUpdate,
  type UpdateRoute,
} from './stage-update.js';
