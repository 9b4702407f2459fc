import type { CommandModule } from '../command.js';
import { describeUpdate } from './begin.js';
import { endpointOption, withClient } from './coord-client.js';

export const precommitCommand: CommandModule = {
  name: 'precommit',
  register(program, ctx) {
    endpointOption(
      program
        .command('precommit')
        .description(
          'Report that a rank staged and verified its share of an update (workers do this themselves)',
        )
        .requiredOption('--version <v>', 'version being updated')
        .requiredOption('--digest <d>', 'digest of what the rank staged (sha256:…)')
        .option('--rank <r>', 'rank (default: RANK from the launcher)')
        .option(
          '--worker-id <id>',
          'id of the worker holding the rank (see coord-status): a vote counts only from the holder',
        )
        .option(
          '--lease-key <key>',
          "that worker's lease key, from its register reply or its target's .hotweights/fleet.json (default: HOTWEIGHTS_LEASE_KEY)",
        )
        .option('--json', 'print the update as JSON'),
    ).action(
      async (opts: {
        version: string;
        digest: string;
        rank?: string;
        workerId?: string;
        leaseKey?: string;
        json?: boolean;
        endpoint?: string;
        timeout?: string;
      }) => {
        const c = ctx();
        const rank = opts.rank === undefined ? c.launch.rank : Number(opts.rank);
        const u = await withClient(c, opts, (client) =>
          client.precommit({
            version: opts.version,
            rank,
            digest: opts.digest,
            workerId: opts.workerId ?? null,
            leaseKey: opts.leaseKey ?? c.config.leaseKey ?? null,
          }),
        );
        if (opts.json) c.json(u);
        else c.out(describeUpdate(u));
      },
    );
  },
};
