/**
 * `HOTWEIGHTS_*` variables of the seed documents (the earlier prototype) that this design does
 * not read, each with what replaces it. A user who exports one from an old preset gets one line
 * saying so (config.ts's `replacedVariableNotices`, the env being read only there), instead of
 * silently getting nothing; docs/CONFIG.md lists them (rendered from here).
 */
export interface ReplacedVariable {
  readonly name: string;
  /** What to use instead, or why nothing is needed; one sentence. */
  readonly replacement: string;
}

const GPU_COPY =
  'device copies are tuned with HOTWEIGHTS_IPC_COPY_CHUNK_MB and HOTWEIGHTS_IPC_COPY_STREAMS (transport-cuda-ipc)';
const BCAST_CHUNK = 'set the chunk per transport: HOTWEIGHTS_MPI_CHUNK_MB or HOTWEIGHTS_UCX_CHUNK_MB';
const BCAST_AUTOTUNE = `no autotuner runs at start-up; ${BCAST_CHUNK} from the figures of bench/ (docs/TUNING.md)`;

export const REPLACED_VARIABLES: readonly ReplacedVariable[] = [
  { name: 'HOTWEIGHTS_BCAST_CHUNK_MB', replacement: BCAST_CHUNK },
  { name: 'HOTWEIGHTS_BCAST_AUTOTUNE', replacement: BCAST_AUTOTUNE },
  { name: 'HOTWEIGHTS_BCAST_AUTOTUNE_MB', replacement: BCAST_AUTOTUNE },
  { name: 'HOTWEIGHTS_BCAST_AUTOTUNE_CHUNKS_MB', replacement: BCAST_AUTOTUNE },
  {
    name: 'HOTWEIGHTS_BCAST_PREFETCH',
    replacement:
      'the Replicator always reads ahead of the broadcast: its window is HOTWEIGHTS_INFLIGHT_BUCKETS',
  },
  { name: 'HOTWEIGHTS_GPU_COPY_CHUNK_MB', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_GPU_COPY_STREAMS', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_GPU_COPY_AUTOTUNE', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_GPU_COPY_AUTOTUNE_MB', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_GPU_COPY_MICRO', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_GPU_COPY_MICRO_CHUNKS_MB', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_GPU_COPY_MICRO_STREAMS', replacement: GPU_COPY },
  { name: 'HOTWEIGHTS_IPC_COPY_AUTOTUNE', replacement: GPU_COPY },
  {
    name: 'HOTWEIGHTS_HIERARCHICAL',
    replacement:
      'the transport is chosen for the fleet (one node: local or CUDA IPC; several: UCX, or MPI under mpirun); `hotweights transports` says which and why',
  },
  {
    name: 'HOTWEIGHTS_USE_GDS',
    replacement:
      'GPUDirect Storage is not implemented: device staging is filled from host memory (docs/TRANSPORTS.md)',
  },
  {
    name: 'HOTWEIGHTS_FORCE_PANDAS',
    replacement: 'the planner is TypeScript over columnar manifests; there is no pandas path',
  },
  { name: 'HOTWEIGHTS_NO_WARMUP', replacement: 'nothing is warmed up (no JIT): the variable has no effect' },
  {
    name: 'HOTWEIGHTS_KV_ALLOW_TRANSFORMS',
    replacement: 'hotweights applies no KV-cache transforms; a flip resets the prefix cache (docs/VLLM.md)',
  },
];

/** The Markdown table of docs/CONFIG.md's "Replaced seed variables" section. */
export function renderReplacedVariables(): string {
  const rows = REPLACED_VARIABLES.map((v) => `| \`${v.name}\` | ${v.replacement} |`);
  return ['| variable | instead |', '| --- | --- |', ...rows, ''].join('\n');
}
