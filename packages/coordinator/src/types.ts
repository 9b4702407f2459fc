/** Records the coordinator keeps (in its backend) and returns from `status`. */

export type UpdateState = 'planned' | 'begun' | 'precommitted' | 'committed' | 'aborted';

/** States in which an update is in progress: no other may begin. */
export const ACTIVE_STATES: readonly UpdateState[] = ['begun', 'precommitted'];

export interface WorkerRecord {
  readonly worker_id: string;
  readonly rank: number;
  readonly world_size: number;
  readonly node_id: string;
  readonly host: string;
  readonly pid: number | null;
  readonly registered_at: number;
  readonly last_seen: number;
  readonly lease_expires_at: number;
  /** Version live on the worker's adapter, as the worker read it from the adapter last. */
  readonly live_version: string | null;
  /** Why the worker cannot reach the current version yet (e.g. its flip fails), as it reported. */
  readonly sync_error?: string | null;
}

/** What the coordinator stores of a worker: its record and the SHA-256 of its lease key (never shown). */
export interface StoredWorker extends WorkerRecord {
  readonly key_hash: string;
}

export interface PrecommitRecord {
  readonly digest: string;
  readonly worker_id: string | null;
  readonly at: number;
}

export interface UpdateRecord {
  readonly version: string;
  /** `rollback`: the fleet goes back to `version`, which every rank kept or fetches again. */
  readonly kind?: 'update' | 'rollback';
  /** The version that was current when the update began (what a fleet rollback returns to). */
  readonly from_version?: string | null;
  readonly state: UpdateState;
  readonly plan_digest: string;
  readonly prev_version: string | null;
  readonly total_bytes: number;
  readonly buckets: number;
  /** Fixed at begin: whose precommit a commit needs. */
  readonly required_ranks: readonly number[];
  readonly precommits: Readonly<Record<string, PrecommitRecord>>;
  /** Commit as soon as every required rank has precommitted. */
  readonly auto_commit: boolean;
  /** Why the update was aborted. */
  readonly reason: string | null;
  /** A manifest came with the plan: it becomes current on commit. */
  readonly has_manifest: boolean;
  readonly submitted_at: number;
  readonly begun_at: number | null;
  readonly finished_at: number | null;
}

export interface UpdateView extends UpdateRecord {
  readonly precommitted_ranks: readonly number[];
  readonly missing_ranks: readonly number[];
}

export interface HandleRecord {
  readonly node_id: string;
  readonly key: string;
  readonly handle: unknown;
  /** Consumers expected to ack; null: anyone on the node may fetch until the TTL. */
  readonly consumers: readonly string[] | null;
  readonly acked: readonly string[];
  readonly posted_at: number;
  readonly expires_at: number;
}

export interface CurrentRecord {
  readonly version: string | null;
  readonly manifest_digest: string | null;
  readonly committed_at: number | null;
}

/** One rank of the fleet as its worker last reported it. */
export interface FleetRank {
  readonly rank: number;
  /** null: no live worker holds the rank. */
  readonly worker_id: string | null;
  readonly host: string | null;
  readonly pid: number | null;
  readonly live_version: string | null;
  readonly sync_error: string | null;
  /** Not live on the current version. */
  readonly behind: boolean;
}

/**
 * Whether the fleet is on the current version: `converged` (every rank live on it),
 * `converging` (ranks behind are catching up by themselves), `diverged` (a rank reports it
 * cannot, or has stayed behind for three leases), `empty` (no live workers).
 */
export type FleetState = 'converged' | 'converging' | 'diverged' | 'empty';

export interface FleetView {
  readonly state: FleetState;
  /** One line, e.g. "converging: 1 of 3 behind (rank 2 on v0)". */
  readonly summary: string;
  readonly world_size: number;
  readonly current_version: string | null;
  readonly behind: readonly number[];
  readonly ranks: readonly FleetRank[];
}

export interface CoordinatorStatus {
  readonly now: number;
  readonly seq: number;
  readonly backend: 'memory' | 'redis';
  readonly auth: boolean;
  readonly lease_s: number;
  readonly heartbeat_s: number;
  readonly current_version: string | null;
  /** The update in progress (begun or precommitted), if any. */
  readonly active: UpdateView | null;
  /** Recent updates, newest first. */
  readonly updates: readonly UpdateView[];
  readonly workers: readonly WorkerRecord[];
  readonly handles_active: number;
  /** Every rank's live version against the current one. */
  readonly fleet: FleetView;
}
