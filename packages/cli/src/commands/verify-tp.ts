/** `hotweights verify-tp`: checks TP groups against a world size; exit 1 on problems. */
import { ConfigError } from '@hotweights/core';
import { parseTpGroups, verifyTpGroups } from '@hotweights/planner';
import type { CommandModule } from '../command.js';
import { printReport } from './verify-plan.js';

export const verifyTpCommand: CommandModule = {
  name: 'verify-tp',
  register(program, ctx) {
    program
      .command('verify-tp')
      .description(
        'Check TP groups: every rank in exactly one group, ranks in range, no duplicates; exit 1 on problems',
      )
      .option(
        '--tp-groups <json-or-file>',
        'TP groups {"<group id>": [ranks]} (default HOTWEIGHTS_TP_GROUPS)',
      )
      .requiredOption('--world-size <n>', 'ranks 0..N-1 that must be covered')
      .option('--json', 'print the report as JSON')
      .action(async (opts: { tpGroups?: string; worldSize: string; json?: boolean }) => {
        const c = ctx();
        const source = opts.tpGroups ?? c.config.tpGroups;
        if (!source) throw new ConfigError('verify-tp needs --tp-groups (or HOTWEIGHTS_TP_GROUPS)');
        const worldSize = Number(opts.worldSize);
        if (!Number.isSafeInteger(worldSize) || worldSize < 1)
          throw new ConfigError(`--world-size ${opts.worldSize}: expected an integer >= 1`);
        const groups = parseTpGroups(source);
        const report = verifyTpGroups(groups, worldSize);
        const subject = source.trim().startsWith('{') ? 'TP groups' : source;
        printReport(
          c,
          subject,
          report,
          opts.json === true,
          `${groups.size} group(s) over ${worldSize} rank(s)`,
        );
      });
  },
};
