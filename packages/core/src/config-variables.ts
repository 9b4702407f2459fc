/**
 * Every HOTWEIGHTS_* variable, declared once with its type, default and meaning: the data that
 * config.ts reads the environment by and docs/CONFIG.md is generated from (`renderConfigTable`).
 * Data only; the reading lives in config.ts.
 */
export type Kind =
  | { type: 'string' }
  | { type: 'int'; min?: number; max?: number }
  | { type: 'number'; min?: number; max?: number }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[] };

export interface VariableSpec {
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
    name: 'HOTWEIGHTS_UCX_SPIN_US',
    kind: { type: 'number', min: 0 },
    defaultText: '200',
    section: 'UCX',
    doc: "How long the UCX progress engine keeps spinning with nothing moving before it sleeps on the UCX worker's event fd until UCX signals it. Larger keeps a core busy while a rank waits (a few percent more throughput on fast same-host links); 1000000 spins as before 2026-12-04.",
  },
  {
    name: 'HOTWEIGHTS_UCX_RETRIES',
    kind: { type: 'int', min: 0, max: 100_000 },
    defaultText: '240',
    section: 'UCX',
    doc: 'How many more times a rank tries to reach the rendezvous (`MASTER_ADDR:MASTER_PORT`) while rank 0 is not listening yet, and each peer while the kernel calls its host unreachable.',
  },
  {
    name: 'HOTWEIGHTS_UCX_RETRY_DELAY_MS',
    kind: { type: 'int', min: 1, max: 600_000 },
    defaultText: '250',
    section: 'UCX',
    doc: 'Pause between two attempts to reach an unreachable peer, and the longest pause between two attempts to reach the rendezvous (those start at 10 ms and double: rank 0 is usually moments away).',
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
