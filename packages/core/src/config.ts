/**
 * The one place that reads HOTWEIGHTS_* variables (and the launcher's RANK/WORLD_SIZE family).
 * Every variable is declared once in VARIABLES with its type, default and meaning; docs/CONFIG.md
 * is generated from the same table (`renderConfigTable`) and a test keeps the two in sync.
 */
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './errors.js';
import { MAX_WORLD_SIZE } from './plan.js';

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
    coordToken: readString(env, 'HOTWEIGHTS_COORD_TOKEN'),
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
    advertiseHost: readString(env, 'HOTWEIGHTS_ADVERTISE_HOST'),
    rendezvousTimeoutS: readNumber(env, 'HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S', 120),
  });
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
