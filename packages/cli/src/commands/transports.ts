import { chooseTransport, type ProbedCandidate } from '@hotweights/core';
import type { CommandModule } from '../command.js';
import { probeStatus, renderTable } from '../plugin-table.js';

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
      .action(async (opts: { json?: boolean; transport?: string }) => {
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
        if (opts.json) {
          c.json({
            not_installed: missing.map((d) => ({ name: d.name, package: d.pkg })),
            selected: selected ?? null,
            forced: forced ?? null,
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
        }
        // The list is a fact either way; forcing a transport that cannot be used is a mistake
        // to report (one line on stderr, exit 1), after the list that explains it.
        if (failure && forced) throw failure;
      });
  },
};
