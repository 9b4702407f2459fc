/** `hotweights verify-plan`: integrity, consumer and TP checks of a plan file; exit 1 on problems. */
import { readFile } from 'node:fs/promises';
import { ConfigError, HotweightsError, MAX_WORLD_SIZE } from '@hotweights/core';
import { parsePlan } from '@hotweights/manifest';
import { formatBytes, parseTpGroups, type VerifyReport, verifyPlan } from '@hotweights/planner';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';

/** Prints a report (human or JSON) and sets the exit code. Shared with verify-tp. */
export function printReport(
  c: CliContext,
  subject: string,
  report: VerifyReport,
  json: boolean,
  detail: string,
): void {
  if (json) c.json({ subject, ...report });
  else {
    for (const p of report.problems) c.out(`problem [${p.check}]: ${p.message}`);
    for (const w of report.warnings) c.out(`warning [${w.check}]: ${w.message}`);
    c.out(
      report.ok
        ? `${subject}: OK (${detail}${report.warnings.length ? `; ${report.warnings.length} warning(s)` : ''})`
        : `${subject}: ${report.problems.length} problem(s)`,
    );
  }
  if (!report.ok) process.exitCode = 1;
}

export const verifyPlanCommand: CommandModule = {
  name: 'verify-plan',
  register(program, ctx) {
    program
      .command('verify-plan')
      .description(
        'Check a plan: integrity (digest, offsets, overlaps, sizes, paths) and consumer sets; exit 1 on problems',
      )
      .requiredOption('--plan <file>', 'plan JSON written by `hotweights plan`')
      .option('--world-size <n>', "check consumer ranks against 0..N-1 (default: the plan's world_size)")
      .option('--require-consumers', 'a bucket without consumer ranks is a problem (otherwise a warning)')
      .option(
        '--tp-groups <json-or-file>',
        'TP groups {"<group id>": [ranks]} (default HOTWEIGHTS_TP_GROUPS)',
      )
      .option(
        '--enforce-tp-superset',
        'consumers missing a TP group rank, or outside every group, are problems',
      )
      .option('--json', 'print the report as JSON')
      .action(
        async (opts: {
          plan: string;
          worldSize?: string;
          requireConsumers?: boolean;
          tpGroups?: string;
          enforceTpSuperset?: boolean;
          json?: boolean;
        }) => {
          const c = ctx();
          let worldSize: number | undefined;
          if (opts.worldSize !== undefined) {
            worldSize = Number(opts.worldSize);
            if (!Number.isSafeInteger(worldSize) || worldSize < 1 || worldSize > MAX_WORLD_SIZE)
              throw new ConfigError(
                `--world-size ${opts.worldSize}: expected an integer in 1..${MAX_WORLD_SIZE}`,
              );
          }
          const tpSource = opts.tpGroups ?? c.config.tpGroups;
          if (opts.enforceTpSuperset && !tpSource)
            throw new ConfigError('--enforce-tp-superset needs --tp-groups (or HOTWEIGHTS_TP_GROUPS)');
          let text: string;
          try {
            text = await readFile(opts.plan, 'utf8');
          } catch (err) {
            throw new HotweightsError(
              'HW_NOT_FOUND',
              `cannot read plan ${opts.plan}: ${(err as NodeJS.ErrnoException).code ?? err}`,
              {
                cause: err,
              },
            );
          }
          // Parsed without the digest check: a mismatch is reported as a finding, with the rest.
          const plan = parsePlan(text, opts.plan);
          const report = verifyPlan(plan, {
            worldSize,
            requireConsumers: opts.requireConsumers,
            tpGroups: tpSource ? parseTpGroups(tpSource) : undefined,
            enforceTpSuperset: opts.enforceTpSuperset,
          });
          const items = plan.buckets.reduce((s, b) => s + b.items.length, 0);
          printReport(
            c,
            opts.plan,
            report,
            opts.json === true,
            `${plan.buckets.length} bucket(s), ${items} item(s), ${formatBytes(plan.total_bytes)}`,
          );
        },
      );
  },
};
