/**
 * `hotweights opt-check`: what an optimizer-state policy does to the parameters an update changes
 * and to the others, read from the same policy table the trainer swap applies.
 */
import { previewPolicy } from '@hotweights/adapter-trainer';
import { ConfigError } from '@hotweights/core';
import type { CommandModule } from '../command.js';

function count(raw: string, flag: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${flag} ${raw}: expected an integer >= 0`);
  return n;
}

const effect = (f: number) => (f === 1 ? 'kept' : f === 0 ? 'zeroed' : `x${f}`);

export const optCheckCommand: CommandModule = {
  name: 'opt-check',
  register(program, ctx) {
    program
      .command('opt-check')
      .description('Preview what an optimizer-state policy does to Adam/AdamW state when an update lands')
      .requiredOption('--updated <n>', 'parameters the update changes')
      .option('--unchanged <n>', 'parameters it leaves as they are', '0')
      .option('--policy <name>', 'preserve, reset or attenuate (default HOTWEIGHTS_OPT_POLICY)')
      .option(
        '--attenuation <a>',
        'factor on both moments under attenuate, 0..1 (default HOTWEIGHTS_OPT_ATTENUATION)',
      )
      .option('--json', 'print the preview as JSON')
      .action(
        (opts: {
          updated: string;
          unchanged: string;
          policy?: string;
          attenuation?: string;
          json?: boolean;
        }) => {
          const c = ctx();
          const attenuation =
            opts.attenuation === undefined ? c.config.optAttenuation : Number(opts.attenuation);
          if (opts.attenuation !== undefined && opts.attenuation.trim() === '') {
            throw new ConfigError('--attenuation: expected a number in 0..1');
          }
          const p = previewPolicy({
            policy: opts.policy ?? c.config.optPolicy,
            attenuation,
            updated: count(opts.updated, '--updated'),
            unchanged: count(opts.unchanged, '--unchanged'),
          });
          if (opts.json) return c.json(p);
          c.out(`policy ${p.policy} (attenuation ${p.attenuation}): ${p.doc}`);
          const head = `${p.updated} updated parameter(s)`;
          const width = Math.max(...p.state.map((s) => s.key.length), 'state'.length) + 2;
          c.out(`${'state'.padEnd(width)}${head.padEnd(28)}${p.unchanged} unchanged parameter(s)`);
          for (const s of p.state) {
            c.out(
              `${s.key.padEnd(width)}${effect(s.updated).padEnd(28)}${effect(s.unchanged).padEnd(10)}${s.meaning}`,
            );
          }
        },
      );
  },
};
