/**
 * `hotweights worker`: the agent that runs beside each rank of a serving fleet. Rank and world
 * size come from RANK/WORLD_SIZE (or mpirun's variables) unless given as flags; the adapter is
 * `--adapter NAME`, by default the directory adapter with --target, else the in-memory one.
 */
import { access, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metricsHostFor, WorkerAgent } from '@hotweights/coordinator';
import { ConfigError, chooseTransportForFleet, MAX_WORLD_SIZE } from '@hotweights/core';
import { loadManifest } from '@hotweights/manifest';
import { createPlan } from '@hotweights/planner';
import { createMetricsRegistry, startMetricsServer } from '@hotweights/runtime';
import { type AdapterFlags, addAdapterOptions, openAdapter } from '../adapter-options.js';
import type { CommandModule } from '../command.js';
import { addDeviceOptions, type DeviceFlags, openStaging } from '../device-options.js';
import { onStop } from '../signals.js';
import { checkStagingDir } from '../staging-check.js';
import {
  addTransferOptions,
  forcedTransport,
  type TransferFlags,
  withTransferOptions,
} from '../transfer-options.js';
import { addVllmOptions, type VllmFlags, vllmDefaults, withVllmAdapter } from '../vllm-flags.js';
import { resolveEndpoint } from './coord-client.js';
import { FLEET_MARKER, type FleetMarker, readFleetMarker } from './rollback.js';

function parseCount(text: string | undefined, flag: string, min: number, max?: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max))
    throw new ConfigError(
      `${flag} ${JSON.stringify(text)}: expected an integer ${max === undefined ? `>= ${min}` : `in ${min}..${max}`}`,
    );
  return n;
}

/** :9099 for the first worker on a host; 9101, 9102, … for the next (9100 is the coordinator's). */
function defaultMetricsPort(localRank: number): number {
  return localRank === 0 ? 9099 : 9100 + localRank;
}

interface WorkerOpts extends TransferFlags, AdapterFlags, VllmFlags, DeviceFlags {
  endpoint?: string;
  pubEndpoint?: string;
  target?: string;
  rank?: string;
  worldSize?: string;
  transport?: string;
  metricsPort?: string;
  verify: boolean;
  exitAfter?: string;
}

export const workerCommand: CommandModule = {
  name: 'worker',
  register(program, ctx) {
    addDeviceOptions(addVllmOptions(addAdapterOptions(addTransferOptions(program.command('worker')))))
      .description('Run a worker agent: stage each update, precommit, and flip the adapter on commit')
      .option('--endpoint <url>', 'coordinator endpoint (default: HOTWEIGHTS_COORD)')
      .option('--pub-endpoint <url>', 'coordinator events endpoint (default: request port + 1)')
      .option(
        '--target <dir>',
        "the adapter's target: materialise committed versions in DIR (directory adapter); default: in memory",
      )
      .option('--rank <r>', "this worker's rank (default: RANK / OMPI_COMM_WORLD_RANK)")
      .option('--world-size <n>', 'ranks in the job (default: WORLD_SIZE / OMPI_COMM_WORLD_SIZE)')
      .option(
        '--transport <name>',
        'force a transport (default: HOTWEIGHTS_TRANSPORT, else the best available)',
      )
      .option(
        '--metrics-port <port>',
        'Prometheus port (default 9099; local rank N > 0: 9100 + N; 0: any free port; "off")',
      )
      .option('--no-verify', 'skip hash verification of landed items (not recommended)')
      .option('--exit-after <n>', 'exit after N updates have finished on this worker (committed or aborted)')
      .action(async (opts: WorkerOpts) => {
        const c = withTransferOptions(ctx(), opts);
        const endpoint = resolveEndpoint(c, opts.endpoint);
        const rank = parseCount(opts.rank, '--rank', 0) ?? c.launch.rank;
        const worldSize = parseCount(opts.worldSize, '--world-size', 1, MAX_WORLD_SIZE) ?? c.launch.worldSize;
        if (rank >= worldSize) throw new ConfigError(`rank ${rank} is not below world size ${worldSize}`);
        const exitAfter = parseCount(opts.exitAfter, '--exit-after', 1);
        const adapter = await openAdapter(
          c,
          withVllmAdapter(opts),
          { rank, worldSize, ...(opts.target ? { target: opts.target } : {}) },
          vllmDefaults(opts),
        );
        await checkStagingDir(c, { warn: true });
        // --device cuda: staging in GPU memory, and its transport unless one is forced.
        const { staging, provider: deviceProvider } = await openStaging(c, opts, { rank, worldSize });
        const registry = createMetricsRegistry({ component: 'worker', rank: String(rank) });
        const port =
          opts.metricsPort === 'off'
            ? undefined
            : (parseCount(opts.metricsPort, '--metrics-port', 0) ?? defaultMetricsPort(c.launch.localRank));
        const metricsHost = c.config.metricsHost ?? metricsHostFor(endpoint, 'connecting');
        const metrics =
          port === undefined ? undefined : await startMetricsServer(registry, port, metricsHost);
        const manager = await c.transports();
        const forced = forcedTransport(opts) ?? c.config.transport ?? deviceProvider?.name;
        let finished = 0;
        let release!: () => void;
        const done = new Promise<void>((resolve) => {
          release = resolve;
        });
        // A killed predecessor left its id and lease key in the target: with them this worker
        // takes over the rank at once instead of waiting for the old lease to run out.
        const left = opts.target ? readFleetMarker(opts.target) : null;
        const previousLease =
          left?.worker_id && left.lease_key && left.rank === rank
            ? { workerId: left.worker_id, leaseKey: left.lease_key }
            : undefined;
        const agent = await WorkerAgent.start({
          endpoint,
          pubEndpoint: opts.pubEndpoint,
          token: c.config.coordToken,
          rank,
          worldSize,
          config: c.config,
          adapter,
          staging,
          metrics: registry,
          verify: opts.verify,
          log: (line) => c.out(line),
          previousLease,
          onRegistered: async (lease) => {
            if (!opts.target) return;
            // Marks the target as served by a fleet worker (`rollback --target` then points at the
            // fleet) and keeps the lease key for a restart: readable by this user only.
            const marker: FleetMarker = {
              endpoint,
              rank,
              world_size: worldSize,
              worker_id: lease.workerId,
              lease_key: lease.leaseKey,
            };
            const path = join(opts.target, FLEET_MARKER);
            await mkdir(join(opts.target, '.hotweights'), { recursive: true });
            await writeFile(path, `${JSON.stringify(marker)}\n`, { mode: 0o600 });
            await chmod(path, 0o600);
          },
          openTransport: async ({ plan, rendezvous, nodes, exchange, log }) => {
            const probe = { rank, worldSize, launcher: c.launch.launcher, config: c.config };
            if (!nodes || !exchange) {
              const { provider } = await manager.select(probe, forced);
              return provider.create({ rank, worldSize, config: c.config, rendezvous, metrics: registry });
            }
            // Every rank applies the same rule to the same node ids: they agree on the transport.
            const probed = await manager.probeAll({ ...probe, exchange: true });
            const { candidate, why } = chooseTransportForFleet(probed, nodes, forced);
            log?.(`update ${plan.version}: transport ${why}`);
            return candidate.provider.create({
              rank,
              worldSize,
              config: c.config,
              rendezvous,
              exchange,
              metrics: registry,
            });
          },
          // A rank arriving after the broadcasts: the fleet's transport, when it can fetch.
          openFetchTransport: async ({ rendezvous, nodes, exchange }) => {
            const probe = { rank, worldSize, launcher: c.launch.launcher, config: c.config, exchange: true };
            const { candidate } = chooseTransportForFleet(await manager.probeAll(probe), nodes, forced);
            if (!candidate.provider.lateFetch) return undefined;
            return candidate.provider.create({
              rank,
              worldSize,
              config: c.config,
              rendezvous: { ...rendezvous, mode: 'fetch' },
              exchange,
            });
          },
          loadManifest: async (plan) => {
            const path = plan.next_manifest.path;
            if (!path) return undefined;
            try {
              await access(path);
            } catch {
              return undefined;
            }
            return loadManifest(path);
          },
          // Catching up (an empty or stale target): the whole version, read from the plan's source.
          planCatchUp: ({ plan, manifest, worldSize: world }) =>
            createPlan({
              prev: null,
              next: manifest,
              checkpointRoot: plan.source.root,
              nextManifestPath: plan.next_manifest.path,
              bucketBytes: plan.bucket_bytes,
              alignment: plan.alignment,
              sourceRank: plan.source.rank,
              worldSize: world,
            }),
          onFinished: () => {
            finished += 1;
            if (exitAfter !== undefined && finished >= exitAfter) release();
          },
        });
        if (metrics) c.out(`worker metrics on ${metrics.url}`);
        const unregister = onStop(() => release());
        await done;
        unregister();
        await agent.stop();
        // Stopped cleanly: no fleet worker serves the target now (a killed one leaves the mark).
        if (opts.target) await rm(join(opts.target, FLEET_MARKER), { force: true });
        await staging.close();
        await metrics?.close();
        c.out(`worker rank ${rank} stopped; live ${agent.liveVersion ?? 'none'}`);
      });
  },
};
