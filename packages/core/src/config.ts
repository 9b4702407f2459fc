/**
 * The one place that reads HOTWEIGHTS_* variables (and the launcher's RANK/WORLD_SIZE family).
 * Every variable is declared once in VARIABLES (config-variables.ts) with its type, default and
 * meaning; docs/CONFIG.md is generated from the same table (`renderConfigTable`) and a test keeps
 * the two in sync.
 */
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { type Kind, VARIABLES, type VariableName, type VariableSpec } from './config-variables.js';
import { ConfigError } from './errors.js';
import { MAX_WORLD_SIZE } from './plan.js';
import { REPLACED_VARIABLES } from './seed-variables.js';

type Env = Readonly<Record<string, string | undefined>>;

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
  readonly ucxSpinUs: number;
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
    ucxSpinUs: readNumber(env, 'HOTWEIGHTS_UCX_SPIN_US', 200),
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
