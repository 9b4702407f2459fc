import type { CommandModule } from '../command.js';
import { describeUpdate } from './begin.js';
import { endpointOption, withClient } from './coord-client.js';

export const abortCommand: CommandModule = {
  name: 'abort',
  register(program, ctx) {
    endpointOption(
      program
        .command('abort')
        .description('Abort the update in progress: workers discard staging, live weights stay as they are')
        .option('--version <v>', 'only if this is the update in progress')
        .option('--reason <text>', 'why (shown in status)')
        .option('--json', 'print the update as JSON'),
    ).action(
      async (opts: {
        version?: string;
        reason?: string;
        json?: boolean;
        endpoint?: string;
        timeout?: string;
      }) => {
        const c = ctx();
        const u = await withClient(c, opts, (client) =>
          client.abort({
            ...(opts.version ? { version: opts.version } : {}),
            ...(opts.reason ? { reason: opts.reason } : {}),
          }),
        );
        if (opts.json) c.json(u);
        else c.out(describeUpdate(u));
      },
    );
  },
};
