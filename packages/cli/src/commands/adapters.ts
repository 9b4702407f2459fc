/**
 * `hotweights adapters`: every adapter found (built in and installed), whether it can work here
 * (for `--target DIR` when given), and which one a command with the same flags would use.
 */
import { type AdapterOptions, chooseAdapter, type ProbedAdapter } from '@hotweights/core';
import { type AdapterFlags, adapterName, adapterSettings, addAdapterOptions } from '../adapter-options.js';
import type { CommandModule } from '../command.js';
import { probeStatus, renderTable } from '../plugin-table.js';

function table(probed: readonly ProbedAdapter[], selected: string | undefined): string[] {
  const header = ['  name', 'version', 'origin', 'status', 'description'];
  const rows = probed.map((p) => [
    `${p.name === selected ? '*' : ' '} ${p.name}`,
    p.version ?? '-',
    p.origin,
    probeStatus(p.result),
    p.provider?.description ?? '',
  ]);
  return renderTable(header, rows);
}

export const adaptersCommand: CommandModule = {
  name: 'adapters',
  register(program, ctx) {
    addAdapterOptions(program.command('adapters'))
      .description('List every adapter found (built in and installed), its availability and why not')
      .option('--json', 'print a JSON report')
      .option('--target <dir>', 'probe the adapters for this target directory')
      .action(async (opts: AdapterFlags & { json?: boolean; target?: string }) => {
        const c = ctx();
        const manager = await c.adapters();
        const options: AdapterOptions = {
          rank: c.launch.rank,
          worldSize: c.launch.worldSize,
          config: c.config,
          settings: adapterSettings(opts),
          ...(opts.target ? { target: opts.target } : {}),
        };
        const probed = await manager.probeAll(options);
        const wanted = adapterName(c, opts, opts.target);
        let selected: string | undefined;
        let failure: unknown;
        try {
          selected = chooseAdapter(probed, wanted).name;
        } catch (err) {
          failure = err;
        }
        if (opts.json) {
          c.json({
            selected: selected ?? null,
            wanted,
            adapters: probed.map((p) => ({
              name: p.name,
              version: p.version ?? null,
              origin: p.origin,
              description: p.provider?.description ?? null,
              available: p.result.available,
              ...(p.result.available ? { detail: p.result.detail ?? null } : { reason: p.result.reason }),
              probe_ms: Math.round(p.probeMs),
            })),
          });
        } else {
          for (const line of table(probed, selected)) c.out(line);
          c.out(selected ? `selected: ${selected}` : `selected: none (${wanted} cannot be used here)`);
        }
        // Naming an adapter that cannot be used is a mistake to report (stderr, exit 1), after
        // the list that explains it.
        if (failure && (opts.adapter ?? c.config.adapter)) throw failure;
      });
  },
};
