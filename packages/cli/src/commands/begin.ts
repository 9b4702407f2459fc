import type { UpdateView } from '@hotweights/coordinator';
import { CommitError, TimeoutError } from '@hotweights/core';
import type { CommandModule } from '../command.js';
import { endpointOption, parseSeconds, withClient } from './coord-client.js';

export function describeUpdate(u: UpdateView): string {
  const ranks = u.required_ranks.length
    ? `precommitted ${u.precommitted_ranks.length}/${u.required_ranks.length}${u.missing_ranks.length ? ` (waiting for rank(s) ${u.missing_ranks.join(', ')})` : ''}`
    : 'no ranks required';
  return `update ${u.version}: ${u.state}, ${ranks}${u.reason ? `; reason: ${u.reason}` : ''}`;
}

export const beginCommand: CommandModule = {
  name: 'begin',
  register(program, ctx) {
    endpointOption(
      program
        .command('begin')
        .description('Start the update to a submitted version: workers stage, verify and precommit')
        .requiredOption('--version <v>', 'version whose plan was submitted')
        .option('--no-auto-commit', 'wait for `hotweights commit` instead of committing on quorum')
        .option('--wait', 'wait until the update is committed or aborted (exit 1 if aborted)')
        .option('--wait-timeout <s>', 'longest wait with --wait', '600')
        .option('--json', 'print the update as JSON'),
    ).action(
      async (opts: {
        version: string;
        autoCommit: boolean;
        wait?: boolean;
        waitTimeout: string;
        json?: boolean;
        endpoint?: string;
        timeout?: string;
      }) => {
        const c = ctx();
        const final = await withClient(c, opts, async (client) => {
          let u = await client.begin(opts.version, { autoCommit: opts.autoCommit });
          if (!opts.json) c.out(describeUpdate(u));
          if (!opts.wait) return u;
          const deadline = Date.now() + parseSeconds(opts.waitTimeout, '--wait-timeout') * 1000;
          while (u.state !== 'committed' && u.state !== 'aborted') {
            if (Date.now() > deadline) {
              throw new TimeoutError(
                `update ${opts.version} is still ${u.state} after ${opts.waitTimeout} s`,
              );
            }
            await new Promise((r) => setTimeout(r, 100));
            const found = (await client.status()).updates.find((x) => x.version === opts.version);
            if (found) u = found;
          }
          if (!opts.json) c.out(describeUpdate(u));
          return u;
        });
        if (opts.json) c.json(final);
        if (final.state === 'aborted') {
          throw new CommitError(
            `update ${final.version} was aborted: ${final.reason ?? 'no reason given'}; live weights are unchanged`,
          );
        }
      },
    );
  },
};
