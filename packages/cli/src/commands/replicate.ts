/**
 * `hotweights replicate`: moves a plan's buckets to every rank, verifies, and (with --commit)
 * makes the new version live everywhere or nowhere.
 *
 * - No launcher (a plain shell): this process is the launcher. It starts `--world-size` rank
 *   processes on this host (RANK/WORLD_SIZE set, local transport through a rendezvous dir in the
 *   staging dir), shows progress, and prints one summary. A world of one runs in-process.
 * - Under mpirun/torchrun (RANK/WORLD_SIZE or OMPI_* set): this process is one rank; the
 *   transport is chosen by priority (mpi under mpirun) unless --transport forces one.
 *
 * Every rank runs the runtime's update pipeline (runRankUpdate: stageUpdate -> commit vote over
 * the transport -> commit or discard), as the worker agent and the demo do. The adapter is
 * `--adapter NAME` (a plugin, see `hotweights adapters`), by default the directory adapter with
 * `--target DIR` (DIR/rank-<r> for each rank when the world has more than one) or, without it,
 * memory.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import {
  CommitError,
  ConfigError,
  type HotweightsError,
  isHotweightsError,
  type Manifest,
  NoTransportError,
  type Plan,
  type TransportProvider,
} from '@hotweights/core';
import { loadManifest, loadPlan } from '@hotweights/manifest';
import {
  checkPlanWorld,
  createMetricsRegistry,
  createRendezvousDir,
  launchLocalRanks,
  type MetricsServer,
  prestartHashing,
  type RankEvent,
  type RankUpdateResult,
  removeRendezvousDir,
  runRankUpdate,
  startMetricsServer,
} from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { type Command, Option } from 'commander';
import { type AdapterFlags, adapterArgs, addAdapterOptions, openAdapter } from '../adapter-options.js';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';
import { addDeviceOptions, type DeviceFlags, deviceArgs, openStaging } from '../device-options.js';
import { killedNote, rootCause } from '../rank-failure.js';
import { onStop, STOP_GRACE_MS } from '../signals.js';
import { checkStagingDir } from '../staging-check.js';
import {
  addTransferOptions,
  forcedTransport,
  type TransferFlags,
  transferArgs,
  withTransferOptions,
} from '../transfer-options.js';
import { ReplacedError } from './replaced.js';
import { MAX_LOCAL_RANKS, preflightReplicate } from './replicate-preflight.js';

export interface ReplicateOptions {
  readonly plan: string;
  readonly manifestNext?: string;
  readonly verify: boolean;
  readonly commit: boolean;
  readonly target?: string;
  readonly worldSize?: number;
  readonly transport?: string;
  /** Metrics port of rank 0 (rank r uses port + r); false: no metrics server. */
  readonly metricsPort: number | false;
  /** Rendezvous dir (set by the local launcher for its ranks). */
  readonly rendezvous?: string;
  /** Print JSON event lines instead of text (set by the local launcher for its ranks). */
  readonly rankEvents?: boolean;
  readonly json?: boolean;
  /** --window / --mpi-chunk-mb as given, forwarded to rank processes started here. */
  readonly transfer?: TransferFlags;
  /** --adapter / --adapter-option as given, forwarded to rank processes started here. */
  readonly adapter?: AdapterFlags;
  /** --device / --pinned as given, forwarded to rank processes started here. */
  readonly device?: DeviceFlags;
}

export interface ReplicateSummary {
  readonly version: string;
  readonly prev_version: string | null;
  readonly plan_digest: string;
  readonly world_size: number;
  readonly transport: string;
  readonly buckets: number;
  readonly bytes_planned: number;
  readonly checkpoint_bytes: number;
  readonly seconds: number;
  readonly throughput_gbps: number;
  readonly items_verified: number;
  readonly committed: boolean;
  /** Longest time any rank's adapter took to flip to the new version. */
  readonly pause_ms: number;
  readonly live: string | null;
  readonly targets: readonly string[];
}

/** The directory a rank materialises into. */
export function rankTarget(target: string, rank: number, worldSize: number): string {
  return worldSize > 1 ? resolve(target, `rank-${rank}`) : resolve(target);
}

function defaultWorldSize(plan: Plan): number {
  const highest = plan.buckets.reduce((m, b) => Math.max(m, ...b.consumer_ranks), plan.source.rank);
  return Math.max(plan.world_size ?? 1, highest + 1);
}

async function loadNextManifest(plan: Plan, opts: ReplicateOptions): Promise<Manifest | undefined> {
  if (opts.manifestNext) return loadManifest(opts.manifestNext);
  if (opts.target && plan.next_manifest.path) return loadManifest(plan.next_manifest.path);
  return undefined;
}

function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function describeSummary(s: ReplicateSummary): string[] {
  const pct =
    s.checkpoint_bytes > 0
      ? ` (${((100 * s.bytes_planned) / s.checkpoint_bytes).toFixed(1)}% of the ${fmtBytes(s.checkpoint_bytes)} checkpoint)`
      : '';
  const lines = [
    `replicated ${s.version} to ${s.world_size} rank(s) over ${s.transport}: ${s.buckets} bucket(s), ${fmtBytes(s.bytes_planned)}${pct} in ${s.seconds.toFixed(3)} s (${s.throughput_gbps.toFixed(2)} GB/s), ${s.items_verified} item(s) verified on rank 0`,
  ];
  if (s.committed && s.targets.length === 0) {
    lines.push(
      `verified ${s.version} on every rank; no --target, so nothing on disk changed (the memory adapter committed it)`,
    );
  } else if (s.committed) {
    lines.push(
      `committed ${s.version} on every rank; pause ${s.pause_ms.toFixed(1)} ms${s.targets.length ? `; live in ${s.targets.map((t) => `${t}/current`).join(', ')}` : ''}`,
    );
  } else {
    lines.push(`staged and verified ${s.version}, not committed (add --commit to make it live)`);
  }
  return lines;
}

/** Runs this process as one rank. */
async function runRank(
  c: CliContext,
  opts: ReplicateOptions,
  rank: number,
  worldSize: number,
  emit: (ev: RankEvent) => void,
): Promise<{ result: RankUpdateResult; transport: string }> {
  const plan = await loadPlan(opts.plan);
  // Under mpirun/torchrun this is the first look at the world: check before opening anything.
  checkPlanWorld(plan, { rank, worldSize, source: opts.plan });
  // The hash workers load while this rank finds its transport and meets the others.
  prestartHashing(plan, rank, c.config, opts.verify);
  const manifest = await loadNextManifest(plan, opts);
  // --device cuda: staging in GPU memory, and the transport that owns it unless one is forced.
  const { staging, provider: deviceProvider } = await openStaging(c, opts.device ?? {}, { rank, worldSize });
  let provider: TransportProvider;
  const forced = opts.transport ?? c.config.transport;
  if (deviceProvider && !forced) {
    provider = deviceProvider;
  } else if (opts.rendezvous && !forced) {
    provider = localTransportProvider;
  } else if (worldSize === 1 && !forced) {
    provider = localTransportProvider;
  } else {
    const manager = await c.transports();
    const selected = await manager.select(
      { rank, worldSize, launcher: c.launch.launcher, config: c.config },
      forced,
    );
    provider = selected.provider;
    // Ranks that another launcher started have no shared rendezvous directory, so `local` cannot
    // connect them: say why the transports for that launcher are unavailable instead.
    if (provider.name === 'local' && worldSize > 1 && !opts.rendezvous) {
      const reasons = Object.fromEntries(
        selected.probed
          .filter((p) => p.name !== 'local')
          .map((p) => [p.name, p.result.available ? 'available' : p.result.reason]),
      );
      throw new NoTransportError(
        `${worldSize} ranks started by ${c.launch.launcher === 'env' ? 'a launcher (RANK/WORLD_SIZE)' : c.launch.launcher} need a transport that connects processes, and none is available`,
        reasons,
      );
    }
  }
  const adapter = await openAdapter(
    c,
    opts.adapter ?? {},
    {
      rank,
      worldSize,
      ...(opts.target ? { target: rankTarget(opts.target, rank, worldSize) } : {}),
      // One record per job: rank 0 writes the committed manifest for `plan` without --prev.
      recordCommitted: rank === 0,
    },
    // Verify-only runs: a delta may land on an empty memory adapter.
    { memory: { partial: 'true' } },
  );
  const ctrl = new AbortController();
  const unregister = onStop((sig) => ctrl.abort(new Error(`received ${sig}`)));
  let metrics: MetricsServer | undefined;
  // --no-metrics: nothing could read them, so none are kept (and prom-client is never loaded).
  const registry =
    opts.metricsPort === false
      ? undefined
      : createMetricsRegistry({ component: 'replicate', rank: String(rank) });
  if (registry && opts.metricsPort !== false) {
    try {
      metrics = await startMetricsServer(
        registry,
        opts.metricsPort === 0 ? 0 : opts.metricsPort + rank,
        c.config.metricsHost,
      );
    } catch (err) {
      c.err(`hotweights: warning: rank ${rank}: no metrics server: ${(err as Error).message}`);
    }
  }
  const transport = await provider.create({
    rank,
    worldSize,
    config: c.config,
    ...(opts.rendezvous ? { rendezvous: { dir: opts.rendezvous } } : {}),
    ...(registry ? { metrics: registry } : {}),
  });
  try {
    const result = await runRankUpdate({
      plan,
      ...(manifest ? { manifest } : {}),
      rank,
      worldSize,
      transport,
      staging,
      adapter,
      config: c.config,
      planSource: opts.plan,
      commit: opts.commit,
      verify: opts.verify,
      signal: ctrl.signal,
      ...(registry ? { metrics: registry } : {}),
      onProgress: (p) => emit({ type: 'progress', ...p }),
    });
    return { result, transport: transport.name };
  } finally {
    unregister();
    await transport.close();
    await staging.close();
    await metrics?.close();
  }
}

function summarise(
  plan: Plan,
  worldSize: number,
  transport: string,
  results: RankUpdateResult[],
  targets: string[],
): ReplicateSummary {
  const seconds = Math.max(...results.map((r) => r.report.seconds));
  return {
    version: plan.version,
    prev_version: plan.prev_version,
    plan_digest: plan.digest,
    world_size: worldSize,
    transport,
    buckets: plan.buckets.length,
    bytes_planned: plan.total_bytes,
    checkpoint_bytes: plan.checkpoint_bytes,
    seconds,
    throughput_gbps: seconds > 0 ? plan.total_bytes / seconds / 1e9 : 0,
    // Rank 0's count: what every launcher can report (under mpirun a rank knows only its own).
    items_verified: results[0]?.report.itemsVerified ?? 0,
    committed: results.every((r) => r.committed),
    pause_ms: Math.max(...results.map((r) => r.commitSeconds)) * 1000,
    live: results[0]?.live ?? null,
    targets,
  };
}

/** Transports that only a job launcher can start, and how to start such a job. */
const LAUNCHED_TRANSPORTS: Readonly<Record<string, string>> = { mpi: 'mpirun -n N' };

export async function replicateLocally(
  c: CliContext,
  opts: ReplicateOptions,
  onProgress?: (done: number, total: number) => void,
): Promise<ReplicateSummary> {
  const forced = opts.transport ?? c.config.transport;
  const launch = forced ? LAUNCHED_TRANSPORTS[forced] : undefined;
  if (forced && launch)
    throw new ConfigError(
      `${opts.transport ? `--transport ${forced}` : `HOTWEIGHTS_TRANSPORT=${forced}`}: the ${forced} transport runs only in a job its launcher started, and this \`hotweights replicate\` was not started by one: run \`${launch} hotweights replicate …\`, or drop it to use local`,
    );
  const plan = await loadPlan(opts.plan);
  const worldSize = opts.worldSize ?? defaultWorldSize(plan);
  // Before any rank starts: a plan for another world would fail late, on some entry.
  checkPlanWorld(plan, { worldSize, source: opts.plan });
  preflightReplicate(plan, opts.plan, worldSize, true);
  const targets = opts.target
    ? Array.from({ length: worldSize }, (_, r) => rankTarget(opts.target as string, r, worldSize))
    : [];
  if (worldSize === 1) {
    const { result, transport } = await runRank(c, opts, 0, 1, (ev) => {
      if (ev.type === 'progress') onProgress?.(Number(ev.bytesDone), Number(ev.bytesTotal));
    });
    return summarise(plan, 1, transport, [result], targets);
  }
  const rendezvous = await createRendezvousDir(c.config.stagingDir);
  // A signal to this launcher stops every rank (each discards its staging), not just this process.
  const stopRanks = new AbortController();
  const unregister = onStop(() => stopRanks.abort());
  try {
    const args = [
      ...process.execArgv,
      process.argv[1] as string,
      'replicate',
      '--plan',
      resolve(opts.plan),
      '--rendezvous',
      rendezvous,
      '--rank-events',
      ...(opts.manifestNext ? ['--manifest-next', resolve(opts.manifestNext)] : []),
      ...(opts.verify ? [] : ['--no-verify']),
      ...(opts.commit ? ['--commit'] : []),
      ...(opts.target ? ['--target', resolve(opts.target)] : []),
      ...(opts.transport ? ['--transport', opts.transport] : []),
      ...transferArgs(opts.transfer ?? {}),
      ...adapterArgs(opts.adapter ?? {}),
      ...deviceArgs(opts.device ?? {}),
      ...(opts.metricsPort === false ? ['--no-metrics'] : ['--metrics-port', String(opts.metricsPort)]),
    ];
    const killGraceMs = STOP_GRACE_MS - 1000;
    const done = new Map<number, number>();
    let total = 0;
    const totals = new Map<number, number>();
    const exits = await launchLocalRanks({
      worldSize,
      command: process.execPath,
      args,
      signal: stopRanks.signal,
      killGraceMs,
      // The ranks share this host's cores: split them for hashing unless the user chose a count.
      ...(c.config.hashThreads === undefined
        ? {
            env: {
              HOTWEIGHTS_HASH_THREADS: String(Math.max(1, Math.floor(availableParallelism() / worldSize))),
            },
          }
        : {}),
      onEvent: (rank, ev) => {
        if (ev.type !== 'progress') return;
        done.set(rank, Number(ev.bytesDone));
        totals.set(rank, Number(ev.bytesTotal));
        total = [...totals.values()].reduce((a, b) => a + b, 0);
        onProgress?.(
          [...done.values()].reduce((a, b) => a + b, 0),
          total,
        );
      },
    });
    const results = exits.map((e) => e.events.find((ev) => ev.type === 'done'));
    if (exits.some((e) => e.code !== 0) || results.some((r) => r === undefined)) {
      const committedSomewhere = results.some((r) => r?.committed === true);
      throw new CommitError(
        `update ${plan.version} failed: ${rootCause(exits)}; ${committedSomewhere ? 'WARNING: some ranks committed before the failure' : `nothing was committed, ${await liveAfterFailure(c, opts, worldSize)}`}${killedNote(exits, killGraceMs)}`,
        { details: { ranks: exits.map((e) => ({ rank: e.rank, code: e.code, signal: e.signal })) } },
      );
    }
    const transport = String(results[0]?.transport ?? 'local');
    return summarise(
      plan,
      worldSize,
      transport,
      results.map((r) => r?.result as RankUpdateResult),
      targets,
    );
  } finally {
    unregister();
    await removeRendezvousDir(rendezvous);
  }
}

/** What is live now, read from rank 0's target (never assumed from the plan's previous version). */
async function liveAfterFailure(c: CliContext, opts: ReplicateOptions, worldSize: number): Promise<string> {
  if (!opts.target) return 'the live version is unchanged';
  try {
    const adapter = await openAdapter(c, opts.adapter ?? {}, {
      rank: 0,
      worldSize,
      target: rankTarget(opts.target, 0, worldSize),
    });
    const live = await adapter.currentVersion();
    return live === null
      ? 'nothing is live in the target (as before)'
      : `the live version is unchanged (${live})`;
  } catch {
    return 'the live version is unchanged';
  }
}

function parseWorldSize(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOCAL_RANKS)
    throw new ConfigError(`--world-size ${v}: expected an integer in 1..${MAX_LOCAL_RANKS}`);
  return n;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new ConfigError(`--metrics-port ${v}: expected a port in 0..65535`);
  return n;
}

interface RawOptions extends TransferFlags, AdapterFlags, DeviceFlags {
  plan: string;
  manifestNext?: string;
  verify?: boolean;
  commit?: boolean;
  target?: string;
  worldSize?: number;
  transport?: string;
  metricsPort: number;
  metrics: boolean;
  rendezvous?: string;
  rankEvents?: boolean;
  json?: boolean;
  coordEndpoint?: string;
}

export const replicateCommand: CommandModule = {
  name: 'replicate',
  register(program: Command, ctx) {
    addDeviceOptions(addAdapterOptions(addTransferOptions(program.command('replicate'))))
      .description("Move a plan's buckets to every rank, verify every item, and commit everywhere or nowhere")
      .requiredOption('--plan <file>', 'plan made by `hotweights plan`')
      .option(
        '--manifest-next <file>',
        "the next version's manifest (default: the plan's next_manifest.path, needed with --target)",
      )
      .option('--verify', "check every landed item's hash (on unless --no-verify)")
      .option('--no-verify', 'skip hash checks (refused with --commit)')
      .option('--commit', 'make the new version live on every rank once all ranks staged and verified it')
      .option(
        '--target <dir>',
        "the adapter's target: materialise committed versions in DIR (DIR/rank-<r> per rank when --world-size > 1)",
      )
      .option(
        '--world-size <n>',
        "ranks to start on this host (default: the plan's world size); ignored under mpirun/torchrun",
        parseWorldSize,
      )
      .option(
        '--transport <name>',
        'force a transport (default: local when started here, by priority under a launcher)',
      )
      .option(
        '--metrics-port <port>',
        'Prometheus /metrics port of rank 0 (rank r: port + r)',
        parsePort,
        9097,
      )
      .option('--no-metrics', 'do not start a metrics server')
      .option('--json', 'print the summary as JSON')
      .option(
        '--rendezvous <dir>',
        'under torchrun-style launchers: a directory every rank of the job can see, for the local transport (set automatically when replicate starts the ranks)',
      )
      // The seed documents' way to report to a coordinator: answered with its replacement.
      .addOption(new Option('--coord-endpoint <url>').hideHelp())
      // Set by the local launcher for the rank processes it starts.
      .addOption(new Option('--rank-events').hideHelp())
      .action(async (raw: RawOptions) => {
        if (raw.coordEndpoint !== undefined)
          throw new ReplacedError(
            '`replicate --coord-endpoint`',
            'run `hotweights worker --endpoint URL` beside each rank instead: the coordinator drives the update (coord-submit-plan, begin), commits it on every rank or none, and records the committed manifest that `plan --coord-endpoint` plans from (docs/DEPLOYMENT.md)',
          );
        const c = withTransferOptions(ctx(), raw);
        const transport = forcedTransport(raw);
        // Verification is on unless --no-verify (commander leaves it undefined otherwise).
        const verify = raw.verify !== false;
        if (raw.commit && !verify) throw new ConfigError('--commit needs verification: drop --no-verify');
        const opts: ReplicateOptions = {
          plan: raw.plan,
          verify,
          commit: raw.commit === true,
          metricsPort: raw.metrics ? raw.metricsPort : false,
          ...(raw.manifestNext ? { manifestNext: raw.manifestNext } : {}),
          ...(raw.target ? { target: raw.target } : {}),
          ...(raw.worldSize ? { worldSize: raw.worldSize } : {}),
          ...(transport ? { transport } : {}),
          ...(raw.rendezvous ? { rendezvous: raw.rendezvous } : {}),
          ...(raw.rankEvents ? { rankEvents: true } : {}),
          ...(raw.json ? { json: true } : {}),
          transfer: { window: raw.window, mpiChunkMb: raw.mpiChunkMb },
          adapter: { adapter: raw.adapter, adapterOption: raw.adapterOption },
          device: { device: raw.device, pinned: raw.pinned },
        };
        // Ranks our launcher starts were checked by it; under mpirun/torchrun rank 0 warns.
        if (!opts.rankEvents) await checkStagingDir(c, { warn: c.launch.rank === 0 });
        if (c.launch.launcher !== 'none') {
          await runUnderLauncher(c, opts);
          return;
        }
        let lastDraw = 0;
        const started = Date.now();
        const summary = await replicateLocally(c, opts, (done, total) => {
          if (!c.interactive || Date.now() - lastDraw < 100) return;
          lastDraw = Date.now();
          const rate = done / Math.max(0.001, (lastDraw - started) / 1000);
          const eta = rate > 0 && total > done ? `, ${((total - done) / rate).toFixed(0)} s left` : '';
          process.stderr.write(
            `\r\x1b[K  ${fmtBytes(done)} / ${fmtBytes(total)} staged and verified (${fmtBytes(rate)}/s${eta})`,
          );
        });
        if (c.interactive) process.stderr.write('\r\x1b[K');
        if (opts.json) c.json(summary);
        else for (const line of describeSummary(summary)) c.out(line);
      });
  },
};

/** This process is one rank of a launched job (mpirun, torchrun, or our local launcher). */
async function runUnderLauncher(c: CliContext, opts: ReplicateOptions): Promise<void> {
  const { rank, worldSize } = c.launch;
  const emit = (ev: RankEvent) => {
    if (opts.rankEvents) process.stdout.write(`${JSON.stringify(ev)}\n`);
  };
  try {
    // Ranks our own launcher started were checked by it.
    if (!opts.rankEvents) preflightReplicate(await loadPlan(opts.plan), opts.plan, worldSize, false);
    const { result, transport } = await runRank(c, opts, rank, worldSize, emit);
    if (opts.rankEvents) {
      emit({ type: 'done', rank, transport, result });
    } else if (rank === 0) {
      const plan = await loadPlan(opts.plan);
      const targets = opts.target ? [rankTarget(opts.target, rank, worldSize)] : [];
      const summary = summarise(plan, worldSize, transport, [result], targets);
      if (opts.json) c.json(summary);
      else for (const line of describeSummary(summary)) c.out(line);
    }
  } catch (err) {
    if (opts.rankEvents) {
      const e = err as HotweightsError;
      emit({
        type: 'error',
        rank,
        code: isHotweightsError(err) ? e.code : ((err as NodeJS.ErrnoException).code ?? 'HW_INTERNAL'),
        message: (err as Error).message,
      });
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}
