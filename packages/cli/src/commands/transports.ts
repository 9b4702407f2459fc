import type { CommandModule } from '../command.js';

export const transportsCommand: CommandModule = {
  name: 'transports',
  register(program, ctx) {
    program
      .command('transports')
      .description('List every transport found (built in and installed), its availability and why not')
      .option('--json', 'print a JSON report')
      .option('--transport <name>', 'show which transport would be selected when forcing NAME')
      .action(async (opts: { json?: boolean; transport?: string }) => {
        const c = ctx();
        const manager = await c.transports();
        const probeCtx = {
          rank: c.launch.rank,
          worldSize: c.launch.worldSize,
          launcher: c.launch.launcher,
          config: c.config,
        };
        const probed = await manager.probeAll(probeCtx);
        const forced = opts.transport ?? c.config.transport;
        const selected = forced
          ? probed.find((p) => p.name === forced && p.result.available)?.name
          : probed.find((p) => p.result.available && p.provider)?.name;
        if (opts.json) {
          c.json({
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
          const rows = probed.map((p) => [
            p.name === selected ? `* ${p.name}` : `  ${p.name}`,
            String(p.priority),
            p.version ?? '-',
            p.origin,
            p.result.available
              ? `available${p.result.detail ? ` (${p.result.detail})` : ''}`
              : `unavailable: ${p.result.reason}`,
          ]);
          const header = ['  name', 'priority', 'version', 'from', 'status'];
          const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
          const fmt = (r: string[]) =>
            r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ');
          c.out(fmt(header));
          for (const r of rows) c.out(fmt(r));
          if (!selected) c.out(forced ? `transport ${forced} is not available` : 'no transport is available');
        }
        if (forced && !selected) process.exitCode = 1;
      });
  },
};
