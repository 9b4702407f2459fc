/**
 * The one place that reads HOTWEIGHTS_* variables (and the launcher's RANK/WORLD_SIZE family).
 * Every variable is declared once in VARIABLES with its type, default and meaning; docs/CONFIG.md
 * is generated from the same table (`renderConfigTable`) and a test keeps the two in sync.
 */
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './errors.js';
import { MAX_WORLD_SIZE } from './plan.js';
import { REPLACED_VARIABLES } from './seed-variables.js';

type Env = Readonly<Record<string, string | undefined>>;

type Kind =
  | { type: 'string' }
  | { type: 'int'; min?: number; max?: number }
  | { type: 'number'; min?: number; max?: number }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[] };

interface VariableSpec {
  /** Variable name in the environment. */
  readonly name: string;
  /** Older names from the seed documents that are still honoured (documented as aliases). */
  readonly aliases?: readonly string[];
  readonly kind: Kind;
  /** Default as shown in the docs; `undefined` means "unset". */
  readonly defaultText: string;
  readonly section: string;
  readonly doc: string;
}

/** Declared in the order they appear in docs/CONFIG.md. */
export const VARIABLES = [
  {
    name: 'HOTWEIGHTS_TRANSPORT',
    kind: { type: 'string' },
    defaultText: '(auto)',
    section: 'Transports',
    doc: 'Force a transport by name (`local`, `mpi`, `ucx`, `nccl`, `cuda-ipc`, or a third-party name). Same as `--transport`. Unset: the highest-priority available transport.',
  },
  {
    name: 'HOTWEIGHTS_PROBE_TIMEOUT_MS',
    kind: { type: 'int', min: 1, max: 600_000 },
    defaultText: '5000',
    section: 'Transports',
    doc: 'How long a transport or adapter probe (and the loading of a plugin package) may take before it counts as unavailable.',
  },
  {
    name: 'HOTWEIGHTS_ADAPTER',
    kind: { type: 'string' },
    defaultText: '(auto)',
    section: 'Adapters',
    doc: 'The adapter that applies committed versions, by name (`directory`, `memory`, or a third-party name; `hotweights adapters` lists them). Same as `--adapter`. Unset: `directory` when `--target` is given, else `memory`.',
  },
  {
    name: 'HOTWEIGHTS_INFLIGHT_BUCKETS',
    aliases: ['HOTWEIGHTS_IPC_INFLIGHT_BUCKETS'],
    kind: { type: 'int', min: 1, max: 1024 },
    defaultText: '4',
    section: 'Replication window',
    doc: 'Buckets in flight at once (read, send and land overlap). Applies to every transport; the seed name `HOTWEIGHTS_IPC_INFLIGHT_BUCKETS` is an alias.',
  },
  {
    name: 'HOTWEIGHTS_INFLIGHT_BYTES',
    aliases: ['HOTWEIGHTS_IPC_INFLIGHT_BYTES'],
    kind: { type: 'int', min: 0 },
    defaultText: '0',
    section: 'Replication window',
    doc: 'Cap on bytes in flight across buckets (0 = no cap beyond the bucket count). At least one bucket is always allowed.',
  },
  {
    name: 'HOTWEIGHTS_TRANSFER_TIMEOUT_S',
    kind: { type: 'number', min: 0.1 },
    defaultText: '120',
    section: 'Replication window',
    doc: 'Longest time one bucket may take to move before the update fails (a dead peer never hangs a job).',
  },
  {
    name: 'HOTWEIGHTS_HASH',
    kind: { type: 'enum', values: ['blake3', 'xxh3-64', 'sha256'] },
    defaultText: 'blake3',
    section: 'Publishing and planning',
    doc: 'Content hash for `publish` (`--hash`). `blake3` is cryptographic; `xxh3-64` is faster and non-cryptographic.',
  },
  {
    name: 'HOTWEIGHTS_HASH_THREADS',
    kind: { type: 'int', min: 1, max: 256 },
    defaultText: '(cores)',
    section: 'Publishing and planning',
    doc: 'Worker threads used for hashing during `publish` and verification. Ranks started by `replicate --world-size N` on one host get cores ÷ N each unless this is set.',
  },
  {
    name: 'HOTWEIGHTS_BUCKET_MB',
    kind: { type: 'number', min: 0.001 },
    defaultText: '64',
    section: 'Publishing and planning',
    doc: 'Default bucket size for `plan` when neither `--bucket-mb` nor `--auto` is given.',
  },
  {
    name: 'HOTWEIGHTS_TP_GROUPS',
    kind: { type: 'string' },
    defaultText: '(unset)',
    section: 'Publishing and planning',
    doc: 'Tensor-parallel groups for consumer derivation: inline JSON or a path to a JSON file (see docs/TP_GROUPS.md).',
  },
  {
    name: 'HOTWEIGHTS_STAGING_DIR',
    kind: { type: 'string' },
    defaultText: '/dev/shm',
    section: 'Staging',
    doc: 'Where host staging segments live. Must be a tmpfs for zero-copy sharing with other processes.',
  },
  {
    name: 'HOTWEIGHTS_STATE_DIR',
    kind: { type: 'string' },
    defaultText: '~/.hotweights',
    section: 'Staging',
    doc: 'Local record of the last committed manifest per model (used by `plan` without `--prev`).',
  },
  {
    name: 'HOTWEIGHTS_SOURCE_ROOTS',
    kind: { type: 'string' },
    defaultText: '(published roots)',
    section: 'Staging',
    doc: "Checkpoint directories a plan's `source.root` may name, separated by `:`. Default: the checkpoints `hotweights publish` published on this host (recorded in `source-roots.txt` under the state dir). A plan naming any other directory is refused before a file is read. Programs that embed the Replicator pass `sourceRoots` in their config (unset there: not checked).",
  },
  {
    name: 'HOTWEIGHTS_COORD',
    kind: { type: 'string' },
    defaultText: '(unset)',
    section: 'Control plane',
    doc: 'Coordinator endpoint, e.g. `tcp://127.0.0.1:5555`. Default for every `--endpoint` / `--coord-endpoint`.',
  },
  {
    name: 'HOTWEIGHTS_COORD_BACKEND',
    kind: { type: 'enum', values: ['memory', 'redis'] },
    defaultText: 'memory',
    section: 'Control plane',
    doc: 'Coordinator state backend. `redis` survives a coordinator restart.',
  },
  {
    name: 'HOTWEIGHTS_REDIS_URL',
    kind: { type: 'string' },
    defaultText: 'redis://127.0.0.1:6379/0',
    section: 'Control plane',
    doc: 'Redis URL for the `redis` backend.',
  },
  {
    name: 'HOTWEIGHTS_COORD_TOKEN',
    kind: { type: 'string' },
    defaultText: '(unset)',
    section: 'Control plane',
    doc: 'Shared secret. On the server, every mutating RPC must carry it; clients and the CLI send it. Never logged, published or echoed.',
  },
  {
    name: 'HOTWEIGHTS_LEASE_KEY',
    kind: { type: 'string' },
    defaultText: '(unset)',
    section: 'Control plane',
    doc: "A worker's lease key (from its register reply, kept in its target's `.hotweights/fleet.json`) for `hotweights precommit --worker-id`; `--lease-key` wins. Never logged or echoed.",
  },
  {
    name: 'HOTWEIGHTS_HANDLE_TTL',
    kind: { type: 'number', min: 0.1 },
    defaultText: '30',
    section: 'Control plane',
    doc: 'Seconds a posted transfer handle lives; an ack by every consumer removes it sooner.',
  },
  {
    name: 'HOTWEIGHTS_LEASE_S',
    kind: { type: 'number', min: 0.1 },
    defaultText: '10',
    section: 'Control plane',
    doc: 'Worker lease. A worker that has not heartbeated for this long is dropped and an update waiting on it aborts.',
  },
  {
    name: 'HOTWEIGHTS_HEARTBEAT_S',
    kind: { type: 'number', min: 0.05 },
    defaultText: '2',
    section: 'Control plane',
    doc: 'How often workers renew their lease.',
  },
  {
    name: 'HOTWEIGHTS_TEST_PRECOMMIT_DELAY_MS',
    kind: { type: 'number', min: 0 },
    defaultText: '0',
    section: 'Control plane',
    doc: "Test hook, never for production: the coordinator holds each precommit reply this many ms after recording the vote, so a test can make a reply arrive after the worker's call timed out.",
  },
  {
    name: 'HOTWEIGHTS_NODE_ID',
    kind: { type: 'string' },
    defaultText: '(hostname)',
    section: 'Control plane',
    doc: 'Stable name of this node; scopes transfer handles and shared-memory staging to a host.',
  },
  {
    name: 'HOTWEIGHTS_METRICS_HOST',
    kind: { type: 'string' },
    defaultText: '(endpoint host)',
    section: 'Control plane',
    doc: "Address the Prometheus metrics servers listen on. Default: the coordinator's (or, for a worker, its coordinator endpoint's) host when it is a loopback address, else all interfaces of that host; `127.0.0.1` for `replicate`. Set `0.0.0.0` to expose them everywhere.",
  },
  {
    name: 'HOTWEIGHTS_MPI_CHUNK_MB',
    kind: { type: 'number', min: 0 },
    defaultText: '16',
    section: 'MPI',
    doc: 'Chunk size for pipelined MPI broadcast of large buckets (0 = one broadcast per bucket). Same as `--mpi-chunk-mb`.',
  },
  {
    name: 'HOTWEIGHTS_MPI_LIBRARY',
    kind: { type: 'string' },
    defaultText: 'libmpi.so.40',
    section: 'MPI',
    doc: 'The MPI shared library the MPI transport opens with dlopen.',
  },
  {
    name: 'HOTWEIGHTS_UCX_CHUNK_MB',
    kind: { type: 'number', min: 0.0625, max: 4096 },
    defaultText: '8',
    section: 'UCX',
    doc: 'Chunk size of the UCX pipelined chain broadcast: each rank forwards a chunk to the next as soon as it has landed.',
  },
  {
    name: 'HOTWEIGHTS_UCX_CONCURRENCY',
    kind: { type: 'int', min: 1, max: 1024 },
    defaultText: '4',
    section: 'UCX',
    doc: 'Chunks of one broadcast a rank keeps posted at once in each direction (pipeline depth).',
  },
  {
    name: 'HOTWEIGHTS_UCX_INFLIGHT_LIMIT_MB',
    kind: { type: 'number', min: 0 },
    defaultText: '256',
    section: 'UCX',
    doc: 'Cap on the bytes a rank has in unfinished UCX sends across all its broadcasts (0 = no cap). At least one chunk is always allowed.',
  },
  {
    name: 'HOTWEIGHTS_UCX_RETRIES',
    kind: { type: 'int', min: 0, max: 100_000 },
    defaultText: '240',
    section: 'UCX',
    doc: 'How many more times a rank tries to reach the rendezvous (`MASTER_ADDR:MASTER_PORT`) while rank 0 is not listening yet.',
  },
  {
    name: 'HOTWEIGHTS_UCX_RETRY_DELAY_MS',
    kind: { type: 'int', min: 1, max: 600_000 },
    defaultText: '250',
    section: 'UCX',
    doc: 'Pause between two attempts to reach the rendezvous.',
  },
  {
    name: 'HOTWEIGHTS_UCX_NET_DEVICES',
    kind: { type: 'string' },
    defaultText: '(all)',
    section: 'UCX',
    doc: "Network devices UCX may use (UCX's `UCX_NET_DEVICES`, e.g. `eth0` or `mlx5_0:1`); picks the NIC on multi-homed hosts.",
  },
  // issue 17: the trainer adapter's optimizer-state policy and the GQA KV head maps of kv-check
  {
    name: 'HOTWEIGHTS_OPT_POLICY',
    kind: { type: 'enum', values: ['preserve', 'reset', 'attenuate'] },
    defaultText: 'preserve',
    section: 'Training and KV cache',
    doc: "What the `trainer` adapter does to the optimizer state of the parameters an update changes: `preserve` keeps Adam's moments and step, `reset` zeroes both moments and the step, `attenuate` multiplies both moments by `HOTWEIGHTS_OPT_ATTENUATION`. Unchanged parameters keep their state exactly. Read by the worker, passed to the training process with each commit; `--adapter-option opt-policy=` wins. Preview with `hotweights opt-check`.",
  },
  {
    name: 'HOTWEIGHTS_OPT_ATTENUATION',
    kind: { type: 'number', min: 0, max: 1 },
    defaultText: '1.0',
    section: 'Training and KV cache',
    doc: 'Factor on both Adam moments of changed parameters under `HOTWEIGHTS_OPT_POLICY=attenuate` (1.0 = unchanged). `--adapter-option opt-attenuation=` wins.',
  },
  {
    name: 'HOTWEIGHTS_KV_HEAD_MAP',
    kind: { type: 'string' },
    defaultText: '(derived)',
    section: 'Training and KV cache',
    doc: 'A query-head to KV-head map as an inline JSON list (entry `q` is the KV head query head `q` reads) for `hotweights kv-check` to validate instead of deriving one. Nothing transforms a live KV cache (see docs/VLLM.md).',
  },
  {
    name: 'HOTWEIGHTS_KV_HEAD_MAP_FILE',
    kind: { type: 'string' },
    defaultText: '(unset)',
    section: 'Training and KV cache',
    doc: 'Path to a JSON file holding the map of `HOTWEIGHTS_KV_HEAD_MAP` (that variable wins when both are set).',
  },
  {
    name: 'HOTWEIGHTS_KV_HEAD_ORDER',
    kind: { type: 'enum', values: ['grouped', 'interleaved'] },
    defaultText: 'grouped',
    section: 'Training and KV cache',
    doc: "`kv-check`'s derived map: `grouped` (query head `q` reads KV head `q / (H/K)`, as Llama, Mistral and Qwen lay heads out) or `interleaved` (`q mod K`). Same as `--order`.",
  },
  // issue #13 (ucx-hosts): peers that fall silent (a host or link down) across hosts.
  {
    name: 'HOTWEIGHTS_UCX_PEER_TIMEOUT_S',
    kind: { type: 'number', min: 0, max: 3600 },
    defaultText: '10',
    section: 'UCX',
    doc: 'Seconds a UCX rank may stay silent on the control channel (it is pinged every second) before the others count it lost and fail the broadcasts that need it, naming it (0 = never; a dead process is noticed at once anyway). Catches a host or link that goes down without closing its connections.',
  },
  // Device path (issue #15): the CUDA driver library, the device, and the CUDA-IPC window and copy knobs.
  {
    name: 'HOTWEIGHTS_CUDA_LIBRARY',
    kind: { type: 'string' },
    defaultText: 'libcuda.so.1',
    section: 'Device (CUDA)',
    doc: 'The CUDA driver library the device packages open with dlopen. Tests point it at the stand-in (a test double of the driver API over host memory, built from `packages/transport-cuda-ipc/test/stand-in`); real machines keep the default.',
  },
  {
    name: 'HOTWEIGHTS_CUDA_DEVICE',
    kind: { type: 'int', min: 0, max: 1023 },
    defaultText: '(local rank mod device count)',
    section: 'Device (CUDA)',
    doc: 'CUDA device ordinal this rank stages on with `--device cuda`.',
  },
  {
    name: 'HOTWEIGHTS_IPC_ADAPT',
    kind: { type: 'bool' },
    defaultText: '0',
    section: 'Device (CUDA)',
    doc: "`1`: the CUDA-IPC transport adapts how many buckets it keeps exported at once (its device pool window) so a bucket's copies take about `HOTWEIGHTS_IPC_TARGET_BUCKET_MS`, between the min and max below. `0`: the window is `HOTWEIGHTS_INFLIGHT_BUCKETS`.",
  },
  {
    name: 'HOTWEIGHTS_IPC_MIN_INFLIGHT',
    kind: { type: 'int', min: 1, max: 1024 },
    defaultText: '1',
    section: 'Device (CUDA)',
    doc: 'Smallest adaptive CUDA-IPC window.',
  },
  {
    name: 'HOTWEIGHTS_IPC_MAX_INFLIGHT',
    kind: { type: 'int', min: 1, max: 1024 },
    defaultText: '16',
    section: 'Device (CUDA)',
    doc: 'Largest adaptive CUDA-IPC window.',
  },
  {
    name: 'HOTWEIGHTS_IPC_TARGET_BUCKET_MS',
    kind: { type: 'number', min: 1, max: 600_000 },
    defaultText: '250',
    section: 'Device (CUDA)',
    doc: 'Time per bucket the adaptive CUDA-IPC window aims at: faster buckets widen it, slower ones narrow it.',
  },
  {
    name: 'HOTWEIGHTS_IPC_COPY_CHUNK_MB',
    kind: { type: 'number', min: 0.0625, max: 4096 },
    defaultText: '16',
    section: 'Device (CUDA)',
    doc: 'Size of each device copy (device to device, and the copy back to host that verification hashes).',
  },
  {
    name: 'HOTWEIGHTS_IPC_COPY_STREAMS',
    kind: { type: 'int', min: 1, max: 64 },
    defaultText: '2',
    section: 'Device (CUDA)',
    doc: "CUDA streams a bucket's chunked copies are spread over.",
  },
  // Issue 15 (transport-nccl): the libraries the NCCL transport opens, and its chunk size.
  {
    name: 'HOTWEIGHTS_NCCL_LIBRARY',
    kind: { type: 'string' },
    defaultText: 'libnccl.so.2',
    section: 'NCCL',
    doc: 'The NCCL shared library the nccl transport opens with dlopen. Tests point it at a stand-in (a test double of NCCL over local sockets).',
  },
  {
    name: 'HOTWEIGHTS_CUDART_LIBRARY',
    kind: { type: 'string' },
    defaultText: 'libcudart.so.13:libcudart.so.12:libcudart.so',
    section: 'NCCL',
    doc: 'The CUDA runtime the nccl transport opens with dlopen (`:`-separated alternatives, the first that opens wins). Tests point it at a stand-in (a test double over host memory).',
  },
  {
    name: 'HOTWEIGHTS_NCCL_CHUNK_MB',
    kind: { type: 'number', min: 0 },
    defaultText: '16',
    section: 'NCCL',
    doc: 'Bytes per ncclBroadcast call of a bucket, staged through two device buffers of this size so one chunk is copied while the previous one is broadcast (0 = the whole bucket at once).',
  },
  // Issue #16 (sparse deltas): patch items.
  {
    name: 'HOTWEIGHTS_PATCHES',
    kind: { type: 'enum', values: ['0', '1'] },
    defaultText: '0',
    section: 'Publishing and planning',
    doc: '`1`: `hotweights plan` encodes each changed tensor as a patch against the previous version when that is smaller (the previous checkpoint must be readable), like `--patches`. Opt-in while patches prove themselves (docs/PATCHES.md).',
  },
  // issue #13: fleets started separately meet through the coordinator
  {
    name: 'HOTWEIGHTS_ADVERTISE_HOST',
    kind: { type: 'string' },
    defaultText: '(route to the coordinator)',
    section: 'Fleet rendezvous',
    doc: "Address other workers use to reach this one (rank 0's UCX control socket in a fleet that meets through the coordinator). Unset: this host's address on its route to the coordinator.",
  },
  {
    name: 'HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S',
    kind: { type: 'number', min: 0.1 },
    defaultText: '120',
    section: 'Fleet rendezvous',
    doc: "How long a worker waits at an update's rendezvous (node ids, UCX addresses) for every rank to post before the update fails, naming the ranks that never came.",
  },
] as const satisfies readonly VariableSpec[];

export type VariableName = (typeof VARIABLES)[number]['name'];

/** Resolved configuration. Fields are typed; unset optional values are `undefined`. */
export interface HotweightsConfig {
  readonly transport: string | undefined;
  readonly adapter: string | undefined;
  readonly probeTimeoutMs: number;
  readonly inflightBuckets: number;
  readonly inflightBytes: number;
  readonly transferTimeoutS: number;
  readonly hash: 'blake3' | 'xxh3-64' | 'sha256';
  readonly hashThreads: number | undefined;
  readonly bucketMb: number;
  readonly tpGroups: string | undefined;
  readonly stagingDir: string;
  readonly stateDir: string;
  /** Unset: the roots recorded by publish under stateDir. */
  readonly sourceRoots: readonly string[] | undefined;
  readonly coordEndpoint: string | undefined;
  readonly coordBackend: 'memory' | 'redis';
  readonly redisUrl: string;
  readonly coordToken: string | undefined;
  /** The lease key `hotweights precommit` sends for --worker-id. */
  readonly leaseKey: string | undefined;
  readonly handleTtlS: number;
  readonly leaseS: number;
  readonly heartbeatS: number;
  /** Test hook: ms the coordinator holds each precommit reply (0: none). */
  readonly testPrecommitDelayMs: number;
  readonly nodeId: string;
  readonly metricsHost: string | undefined;
  readonly mpiChunkMb: number;
  readonly mpiLibrary: string;
  readonly ucxChunkMb: number;
  readonly ucxConcurrency: number;
  readonly ucxInflightLimitMb: number;
  readonly ucxRetries: number;
  readonly ucxRetryDelayMs: number;
  readonly ucxNetDevices: string | undefined;
  readonly optPolicy: 'preserve' | 'reset' | 'attenuate';
  readonly optAttenuation: number;
  readonly kvHeadMap: string | undefined;
  readonly kvHeadMapFile: string | undefined;
  readonly kvHeadOrder: 'grouped' | 'interleaved';
  readonly ucxPeerTimeoutS: number;
  readonly cudaLibrary: string;
  /** Unset: the local rank modulo the device count. */
  readonly cudaDevice: number | undefined;
  readonly ipcAdapt: boolean;
  readonly ipcMinInflight: number;
  readonly ipcMaxInflight: number;
  readonly ipcTargetBucketMs: number;
  readonly ipcCopyChunkMb: number;
  readonly ipcCopyStreams: number;
  // Issue 15 (transport-nccl)
  readonly ncclLibrary: string;
  readonly cudartLibrary: string;
  readonly ncclChunkMb: number;
  /** Issue #16: plan patch items by default (HOTWEIGHTS_PATCHES=1). */
  readonly patches: boolean;
  readonly advertiseHost: string | undefined;
  readonly rendezvousTimeoutS: number;
}

function spec(name: VariableName): VariableSpec {
  const found = VARIABLES.find((v) => v.name === name);
  if (!found) throw new Error(`internal: undeclared variable ${name}`);
  return found;
}

function raw(env: Env, name: VariableName): { name: string; value: string } | undefined {
  const s = spec(name);
  for (const candidate of [s.name, ...(s.aliases ?? [])]) {
    const value = env[candidate];
    if (value !== undefined && value.trim() !== '') return { name: candidate, value: value.trim() };
  }
  return undefined;
}

function parseNumber(name: string, value: string, kind: Kind, integer: boolean): number {
  const n = Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new ConfigError(
      `${name}=${JSON.stringify(value)}: expected ${integer ? 'an integer' : 'a number'}`,
      {
        details: { variable: name },
      },
    );
  }
  const min = 'min' in kind ? kind.min : undefined;
  const max = 'max' in kind ? kind.max : undefined;
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const range = `${min ?? '-inf'}..${max ?? 'inf'}`;
    throw new ConfigError(`${name}=${value}: expected a value in ${range}`, { details: { variable: name } });
  }
  return n;
}

function readString(env: Env, name: VariableName): string | undefined {
  return raw(env, name)?.value;
}

/**
 * Set but blank is a token that failed to arrive (`"$(cat /etc/hotweights/token)"` with the file
 * missing), never a request for no auth: refused, so nothing starts open by accident.
 */
function readToken(env: Env): string | undefined {
  const name: VariableName = 'HOTWEIGHTS_COORD_TOKEN';
  const value = env[name];
  if (value !== undefined && value.trim() === '')
    throw new ConfigError(
      'HOTWEIGHTS_COORD_TOKEN is set but empty (was its token file missing or unreadable?): set it to the token, or unset it to run without auth',
      { details: { variable: name } },
    );
  return readString(env, name);
}

function readNumber(env: Env, name: VariableName, fallback: number): number {
  const r = raw(env, name);
  if (!r) return fallback;
  const kind = spec(name).kind;
  return parseNumber(r.name, r.value, kind, kind.type === 'int');
}

function readEnum<T extends string>(env: Env, name: VariableName, fallback: T): T {
  const r = raw(env, name);
  if (!r) return fallback;
  const kind = spec(name).kind;
  if (kind.type !== 'enum') throw new Error(`internal: ${name} is not an enum`);
  if (!kind.values.includes(r.value)) {
    throw new ConfigError(`${r.name}=${JSON.stringify(r.value)}: expected one of ${kind.values.join(', ')}`, {
      details: { variable: r.name },
    });
  }
  return r.value as T;
}

function readBool(env: Env, name: VariableName, fallback: boolean): boolean {
  const r = raw(env, name);
  if (!r) return fallback;
  const v = r.value.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`${r.name}=${JSON.stringify(r.value)}: expected 1 or 0`, {
    details: { variable: r.name },
  });
}

/** The device path's variables (issue #15). */
function readDeviceConfig(env: Env) {
  const cudaDevice = raw(env, 'HOTWEIGHTS_CUDA_DEVICE');
  const min = readNumber(env, 'HOTWEIGHTS_IPC_MIN_INFLIGHT', 1);
  const max = readNumber(env, 'HOTWEIGHTS_IPC_MAX_INFLIGHT', 16);
  if (min > max)
    throw new ConfigError(
      `HOTWEIGHTS_IPC_MIN_INFLIGHT=${min} is above HOTWEIGHTS_IPC_MAX_INFLIGHT=${max}: lower the min or raise the max`,
      { details: { variable: 'HOTWEIGHTS_IPC_MIN_INFLIGHT' } },
    );
  return {
    cudaLibrary: readString(env, 'HOTWEIGHTS_CUDA_LIBRARY') ?? 'libcuda.so.1',
    cudaDevice: cudaDevice ? readNumber(env, 'HOTWEIGHTS_CUDA_DEVICE', 0) : undefined,
    ipcAdapt: readBool(env, 'HOTWEIGHTS_IPC_ADAPT', false),
    ipcMinInflight: min,
    ipcMaxInflight: max,
    ipcTargetBucketMs: readNumber(env, 'HOTWEIGHTS_IPC_TARGET_BUCKET_MS', 250),
    ipcCopyChunkMb: readNumber(env, 'HOTWEIGHTS_IPC_COPY_CHUNK_MB', 16),
    ipcCopyStreams: readNumber(env, 'HOTWEIGHTS_IPC_COPY_STREAMS', 2),
  };
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** Reads and validates every HOTWEIGHTS_* variable. Throws ConfigError naming the variable. */
export function loadConfig(env: Env = process.env): HotweightsConfig {
  const hashThreads = raw(env, 'HOTWEIGHTS_HASH_THREADS');
  return Object.freeze({
    transport: readString(env, 'HOTWEIGHTS_TRANSPORT'),
    adapter: readString(env, 'HOTWEIGHTS_ADAPTER'),
    probeTimeoutMs: readNumber(env, 'HOTWEIGHTS_PROBE_TIMEOUT_MS', 5000),
    inflightBuckets: readNumber(env, 'HOTWEIGHTS_INFLIGHT_BUCKETS', 4),
    inflightBytes: readNumber(env, 'HOTWEIGHTS_INFLIGHT_BYTES', 0),
    transferTimeoutS: readNumber(env, 'HOTWEIGHTS_TRANSFER_TIMEOUT_S', 120),
    hash: readEnum(env, 'HOTWEIGHTS_HASH', 'blake3'),
    hashThreads: hashThreads ? readNumber(env, 'HOTWEIGHTS_HASH_THREADS', 1) : undefined,
    bucketMb: readNumber(env, 'HOTWEIGHTS_BUCKET_MB', 64),
    tpGroups: readString(env, 'HOTWEIGHTS_TP_GROUPS'),
    stagingDir: readString(env, 'HOTWEIGHTS_STAGING_DIR') ?? '/dev/shm',
    stateDir: expandHome(readString(env, 'HOTWEIGHTS_STATE_DIR') ?? '~/.hotweights'),
    sourceRoots: readString(env, 'HOTWEIGHTS_SOURCE_ROOTS')
      ?.split(':')
      .filter((p) => p !== '')
      .map(expandHome),
    coordEndpoint: readString(env, 'HOTWEIGHTS_COORD'),
    coordBackend: readEnum(env, 'HOTWEIGHTS_COORD_BACKEND', 'memory'),
    redisUrl: readString(env, 'HOTWEIGHTS_REDIS_URL') ?? 'redis://127.0.0.1:6379/0',
    coordToken: readToken(env),
    leaseKey: readString(env, 'HOTWEIGHTS_LEASE_KEY'),
    handleTtlS: readNumber(env, 'HOTWEIGHTS_HANDLE_TTL', 30),
    leaseS: readNumber(env, 'HOTWEIGHTS_LEASE_S', 10),
    heartbeatS: readNumber(env, 'HOTWEIGHTS_HEARTBEAT_S', 2),
    testPrecommitDelayMs: readNumber(env, 'HOTWEIGHTS_TEST_PRECOMMIT_DELAY_MS', 0),
    nodeId: readString(env, 'HOTWEIGHTS_NODE_ID') ?? hostname(),
    metricsHost: readString(env, 'HOTWEIGHTS_METRICS_HOST'),
    mpiChunkMb: readNumber(env, 'HOTWEIGHTS_MPI_CHUNK_MB', 16),
    mpiLibrary: readString(env, 'HOTWEIGHTS_MPI_LIBRARY') ?? 'libmpi.so.40',
    ucxChunkMb: readNumber(env, 'HOTWEIGHTS_UCX_CHUNK_MB', 8),
    ucxConcurrency: readNumber(env, 'HOTWEIGHTS_UCX_CONCURRENCY', 4),
    ucxInflightLimitMb: readNumber(env, 'HOTWEIGHTS_UCX_INFLIGHT_LIMIT_MB', 256),
    ucxRetries: readNumber(env, 'HOTWEIGHTS_UCX_RETRIES', 240),
    ucxRetryDelayMs: readNumber(env, 'HOTWEIGHTS_UCX_RETRY_DELAY_MS', 250),
    ucxNetDevices: readString(env, 'HOTWEIGHTS_UCX_NET_DEVICES'),
    optPolicy: readEnum(env, 'HOTWEIGHTS_OPT_POLICY', 'preserve'),
    optAttenuation: readNumber(env, 'HOTWEIGHTS_OPT_ATTENUATION', 1),
    kvHeadMap: readString(env, 'HOTWEIGHTS_KV_HEAD_MAP'),
    kvHeadMapFile: readString(env, 'HOTWEIGHTS_KV_HEAD_MAP_FILE'),
    kvHeadOrder: readEnum(env, 'HOTWEIGHTS_KV_HEAD_ORDER', 'grouped'),
    ucxPeerTimeoutS: readNumber(env, 'HOTWEIGHTS_UCX_PEER_TIMEOUT_S', 10),
    ...readDeviceConfig(env),
    // Issue 15 (transport-nccl)
    ncclLibrary: readString(env, 'HOTWEIGHTS_NCCL_LIBRARY') ?? 'libnccl.so.2',
    cudartLibrary:
      readString(env, 'HOTWEIGHTS_CUDART_LIBRARY') ?? 'libcudart.so.13:libcudart.so.12:libcudart.so',
    ncclChunkMb: readNumber(env, 'HOTWEIGHTS_NCCL_CHUNK_MB', 16),
    patches: readEnum<'0' | '1'>(env, 'HOTWEIGHTS_PATCHES', '0') === '1',
    advertiseHost: readString(env, 'HOTWEIGHTS_ADVERTISE_HOST'),
    rendezvousTimeoutS: readNumber(env, 'HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S', 120),
  });
}

/**
 * One line for each replaced seed variable (seed-variables.ts) set in `env`, to print once at
 * start-up. A variable that hotweights reads again is taken out of that table, never left to warn.
 */
export function replacedVariableNotices(env: Env = process.env): string[] {
  return REPLACED_VARIABLES.filter((v) => env[v.name] !== undefined).map(
    (v) => `${v.name} is not read by this hotweights: ${v.replacement}`,
  );
}

/** Where this process sits in a multi-rank job, from the launcher's variables. */
export interface LaunchContext {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  /** Which launcher set the values (`env` for RANK/WORLD_SIZE, `openmpi`, `pmix`, or `none`). */
  readonly launcher: 'env' | 'openmpi' | 'pmix' | 'none';
}

const LAUNCHER_VARIABLES = [
  { launcher: 'env', rank: 'RANK', size: 'WORLD_SIZE', local: 'LOCAL_RANK' },
  {
    launcher: 'openmpi',
    rank: 'OMPI_COMM_WORLD_RANK',
    size: 'OMPI_COMM_WORLD_SIZE',
    local: 'OMPI_COMM_WORLD_LOCAL_RANK',
  },
  { launcher: 'pmix', rank: 'PMIX_RANK', size: 'PMI_SIZE', local: 'MPI_LOCALRANKID' },
] as const;

/** Edit distance between two short names (a misspelt variable is a letter or two away). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * HOTWEIGHTS_* names set in `env` that no variable (or alias) declares: a misspelt name would
 * otherwise be ignored without a word. Each comes with the closest declared name, if one is close.
 */
export function unknownVariables(env: Env = process.env): { name: string; suggestion: string | undefined }[] {
  const known: string[] = VARIABLES.flatMap((v: VariableSpec) => [v.name, ...(v.aliases ?? [])]);
  const bare = (name: string) => name.replace(/^HOTWEIGHTS_/, '').replace(/_/g, '');
  const replaced = new Set(REPLACED_VARIABLES.map((v) => v.name));
  return (
    Object.keys(env)
      // A seed variable this design replaced gets its own note (replacedVariableNotices), not this.
      .filter((name) => name.startsWith('HOTWEIGHTS_') && !known.includes(name) && !replaced.has(name))
      .sort()
      .map((name) => {
        let best: { name: string; d: number } | undefined;
        for (const k of known) {
          const d = distance(bare(name), bare(k));
          if (!best || d < best.d) best = { name: k, d };
        }
        const close = best !== undefined && best.d <= Math.max(2, Math.floor(bare(name).length / 4));
        return { name, suggestion: close ? best?.name : undefined };
      })
  );
}

/**
 * Rank and world size from torchrun-style RANK/WORLD_SIZE, or from mpirun's variables.
 * Returns rank 0 of 1 (`launcher: 'none'`) when nothing is set.
 */
export function readLaunchContext(env: Env = process.env): LaunchContext {
  for (const l of LAUNCHER_VARIABLES) {
    const rankText = env[l.rank];
    const sizeText = env[l.size];
    if (rankText === undefined || sizeText === undefined) continue;
    const rank = parseNumber(l.rank, rankText, { type: 'int', min: 0 }, true);
    const worldSize = parseNumber(l.size, sizeText, { type: 'int', min: 1, max: MAX_WORLD_SIZE }, true);
    if (rank >= worldSize) {
      throw new ConfigError(`${l.rank}=${rank} is not below ${l.size}=${worldSize}`, {
        details: { variable: l.rank },
      });
    }
    const localText = env[l.local];
    const localRank =
      localText === undefined ? rank : parseNumber(l.local, localText, { type: 'int', min: 0 }, true);
    return Object.freeze({ rank, worldSize, localRank, launcher: l.launcher });
  }
  return Object.freeze({ rank: 0, worldSize: 1, localRank: 0, launcher: 'none' });
}

/** Where rank 0 of a torchrun-style job listens. */
export interface MasterAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * MASTER_ADDR / MASTER_PORT for transports that meet their peers through rank 0: keys of the same
 * names in `explicit` (a transport's `options.rendezvous`) first, then the variables torchrun sets.
 * Returns why not, as a probe reason, when they are missing or bad.
 */
export function readMasterAddress(
  explicit?: Readonly<Record<string, string | undefined>>,
  env: Env = process.env,
): MasterAddress | { readonly missing: string } {
  const host = explicit?.MASTER_ADDR ?? env.MASTER_ADDR;
  const portText = explicit?.MASTER_PORT ?? env.MASTER_PORT;
  if (!host || !portText) {
    return { missing: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)' };
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    return { missing: `MASTER_PORT=${JSON.stringify(portText)} is not a TCP port (1..65535)` };
  }
  return { host, port };
}

/** The Markdown table in docs/CONFIG.md, generated from VARIABLES. */
export function renderConfigTable(): string {
  const lines: string[] = [];
  let section = '';
  for (const v of VARIABLES as readonly VariableSpec[]) {
    if (v.section !== section) {
      section = v.section;
      lines.push('', `### ${section}`, '', '| variable | default | meaning |', '| --- | --- | --- |');
    }
    const aliases = v.aliases?.length ? ` (alias: ${v.aliases.map((a) => `\`${a}\``).join(', ')})` : '';
    lines.push(`| \`${v.name}\`${aliases} | ${v.defaultText} | ${v.doc} |`);
  }
  return `${lines.join('\n').trim()}\n`;
}
