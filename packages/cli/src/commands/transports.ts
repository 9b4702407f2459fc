import {
  ConfigError,
  chooseTransport,
  chooseTransportForFleet,
  type ProbedCandidate,
  type TransportManager,
} from '@hotweights/core';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';
import { probeStatus, renderTable } from '../plugin-table.js';
import { withClient } from './coord-client.js';

interface FleetLine {
  readonly source: string;
  readonly nodes: readonly string[];
  readonly transport: string | null;
  readonly why: string;
}

/**
 * What a fleet's workers would choose (the rule they apply at each update): for the node ids
 * given with --nodes, else those of the workers registered at the coordinator, when there is one.
 */
async function fleetChoice(
  c: CliContext,
  manager: TransportManager,
  opts: { nodes?: string; endpoint?: string; forced?: string },
): Promise<FleetLine | undefined> {
  let nodes: string[];
  let source: string;
  if (opts.nodes !== undefined) {
    nodes = opts.nodes.split(',').map((n) => n.trim());
    if (nodes.some((n) => n === ''))
      throw new ConfigError(`--nodes ${JSON.stringify(opts.nodes)}: expected node ids separated by commas`);
    source = '--nodes';
  } else {
    const endpoint = opts.endpoint ?? c.config.coordEndpoint;
    if (!endpoint) return undefined;
    const status = await withClient(c, { endpoint, timeout: '5' }, (client) => client.status()).catch(
      () => undefined,
    );
    if (!status)
      return { source: endpoint, nodes: [], transport: null, why: `coordinator ${endpoint} did not answer` };
    const workers = [...status.workers].sort((a, b) => a.rank - b.rank);
    if (workers.length === 0)
      return { source: endpoint, nodes: [], transport: null, why: 'no worker is registered' };
    nodes = workers.map((w) => w.node_id);
    source = `the ${workers.length} worker(s) at ${endpoint}`;
  }
  const probed = await manager.probeAll({
    rank: 0,
    worldSize: nodes.length,
    launcher: c.launch.launcher,
    config: c.config,
    exchange: true,
  });
  try {
    const { candidate, why } = chooseTransportForFleet(probed, nodes, opts.forced);
    return { source, nodes, transport: candidate.name, why };
  } catch (err) {
    return { source, nodes, transport: null, why: (err as Error).message };
  }
}

/** The device transports of the design, so a CPU machine hears about them even when not installed. */
const DEVICE_TRANSPORTS: readonly { name: string; pkg: string }[] = [
  { name: 'cuda-ipc', pkg: '@hotweights/transport-cuda-ipc' },
  { name: 'nccl', pkg: '@hotweights/transport-nccl' },
];

function table(probed: readonly ProbedCandidate[], selected: string | undefined): string[] {
  const header = ['  name', 'priority', 'version', 'origin', 'status'];
  const rows = probed.map((p) => [
    `${p.name === selected ? '*' : ' '} ${p.name}`,
    String(p.priority),
    p.version ?? '-',
    p.origin,
    probeStatus(p.result),
  ]);
  return renderTable(header, rows);
}

export const transportsCommand: CommandModule = {
  name: 'transports',
  register(program, ctx) {
    program
      .command('transports')
      .description('List every transport found (built in and installed), its availability and why not')
      .option('--json', 'print a JSON report')
      .option('--transport <name>', 'show whether NAME can be selected (default: HOTWEIGHTS_TRANSPORT)')
      .option(
        '--nodes <ids>',
        "explain the choice for a fleet whose ranks sit on these node ids (comma-separated; default: the coordinator's workers)",
      )
      .option(
        '--endpoint <url>',
        'coordinator whose workers to explain the choice for (default: HOTWEIGHTS_COORD)',
      )
      .action(async (opts: { json?: boolean; transport?: string; nodes?: string; endpoint?: string }) => {
        const c = ctx();
        const manager = await c.transports();
        const probed = await manager.probeAll({
          rank: c.launch.rank,
          worldSize: c.launch.worldSize,
          launcher: c.launch.launcher,
          config: c.config,
        });
        const forced = opts.transport ?? c.config.transport;
        let selected: string | undefined;
        let failure: unknown;
        try {
          selected = chooseTransport(probed, forced).name;
        } catch (err) {
          failure = err;
        }
        const missing = DEVICE_TRANSPORTS.filter((d) => !probed.some((p) => p.name === d.name));
        const fleet = await fleetChoice(c, manager, { ...opts, ...(forced ? { forced } : {}) });
        if (opts.json) {
          c.json({
            not_installed: missing.map((d) => ({ name: d.name, package: d.pkg })),
            selected: selected ?? null,
            forced: forced ?? null,
            fleet: fleet ?? null,
            transports: probed.map((p) => ({
              name: p.name,
              priority: p.priority,
              version: p.version ?? null,
              origin: p.origin,
              available: p.result.available,
              ...(p.result.available ? { detail: p.result.detail ?? null } : { reason: p.result.reason }),
              probe_ms: Math.round(p.probeMs),
            })),
          });
        } else {
          for (const line of table(probed, selected)) c.out(line);
          for (const d of missing) c.out(`  ${d.name}: not installed (npm install ${d.pkg})`);
          if (selected)
            c.out(`selected: ${selected}${forced ? ' (forced)' : ' (highest priority available)'}`);
          else if (!forced) c.out('selected: none (no transport is available)');
          if (fleet) c.out(`fleet (${fleet.source}): ${fleet.transport ? '' : 'none: '}${fleet.why}`);
        }
        // The list is a fact either way; forcing a transport that cannot be used is a mistake
        // to report (one line on stderr, exit 1), after the list that explains it.
        if (failure && forced) throw failure;
      });
  },
};
