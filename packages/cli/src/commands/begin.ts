import type { UpdateView } from '@hotweights/coordinator';
import { CommitError } from '@hotweights/core';
import type { CommandModule } from '../command.js';
import { endpointOption, parseSeconds, withClient } from './coord-client.js';
import { waitForFleet, waitForOutcome } from './fleet-wait.js';

export function describeUpdate(u: UpdateView): string {
  const ranks = u.required_ranks.length
    ? `precommitted ${u.precommitted_ranks.length}/${u.required_ranks.length}${u.missing_ranks.length ? ` (waiting for rank(s) ${u.missing_ranks.join(', ')})` : ''}`
    : 'no ranks required';
  const what =
    u.kind === 'rollback' ? `rollback to ${u.version} from ${u.from_version ?? '?'}` : `update ${u.version}`;
  return `${what}: ${u.state}, ${ranks}${u.reason ? `; reason: ${u.reason}` : ''}`;
}

/**
 * `--wait`: until the update is committed or aborted, then until every rank is live on it. Prints
 * both steps; throws CommitError when aborted, HW_FLEET_BEHIND when ranks stay behind.
 */
export async function followUpdate(
  c: { out(line: string): void; err(line: string): void; readonly interactive: boolean },
  client: Parameters<typeof waitForOutcome>[0],
  begun: UpdateView,
  opts: { waitTimeout: string; json?: boolean },
): Promise<UpdateView> {
  const deadline = Date.now() + parseSeconds(opts.waitTimeout, '--wait-timeout') * 1000;
  const started = Date.now();
  let warned = '';
  let lastCheck = 0;
  let drawn = false;
  const u = await waitForOutcome(client, begun, deadline, opts.waitTimeout, async (cur) => {
    // A required rank that no worker serves cannot precommit: say so, now and when it changes.
    if (Date.now() - lastCheck >= 2000) {
      lastCheck = Date.now();
      const { workers } = await client.status();
      const unserved = cur.missing_ranks.filter((r) => !workers.some((w) => w.rank === r));
      const key = unserved.join(',');
      if (unserved.length && key !== warned) {
        if (drawn) process.stderr.write('\r\x1b[K');
        c.err(
          `hotweights: warning: no worker serves rank(s) ${key} of update ${cur.version}: it cannot commit until one registers (start \`hotweights worker\` with RANK=${unserved[0]}), and aborts after three leases without one`,
        );
      }
      warned = key;
    }
    // On a terminal: one line that redraws; piped output stays quiet.
    if (c.interactive && !opts.json) {
      drawn = true;
      process.stderr.write(
        `\r\x1b[K  ${describeUpdate(cur)}, ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
    }
  });
  if (drawn) process.stderr.write('\r\x1b[K');
  if (!opts.json) c.out(describeUpdate(u));
  if (u.state === 'aborted') {
    throw new CommitError(
      `update ${u.version} was aborted: ${u.reason ?? 'no reason given'}; live weights are unchanged`,
    );
  }
  const s = await waitForFleet(client, u.version, deadline, opts.waitTimeout);
  if (!opts.json) c.out(`fleet ${s.fleet.summary}`);
  return u;
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
        .option(
          '--wait',
          'wait until the update is committed and every rank is live on it (exit 1 if aborted or ranks stay behind)',
        )
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
          const u = await client.begin(opts.version, { autoCommit: opts.autoCommit });
          if (!opts.json) c.out(describeUpdate(u));
          return opts.wait ? followUpdate(c, client, u, opts) : u;
        });
        if (opts.json) c.json(final);
      },
    );
  },
};
