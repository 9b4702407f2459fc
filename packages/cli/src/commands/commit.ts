import type { CommandModule } from '../command.js';
import { describeUpdate } from './begin.js';
import { endpointOption, withClient } from './coord-client.js';

export const commitCommand: CommandModule = {
  name: 'commit',
  register(program, ctx) {
    endpointOption(
      program
        .command('commit')
        .description('Commit an update once every consumer rank has precommitted (refused otherwise)')
        .requiredOption('--version <v>', 'version to commit')
        .option('--json', 'print the update as JSON'),
    ).action(async (opts: { version: string; json?: boolean; endpoint?: string; timeout?: string }) => {
      const c = ctx();
      const u = await withClient(c, opts, (client) => client.commit(opts.version));
      if (opts.json) c.json(u);
      else c.out(describeUpdate(u));
    });
  },
};
