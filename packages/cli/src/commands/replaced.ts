/**
 * Command lines of the seed documents that this design replaced. Each answers with one line that
 * names what to use instead (exit code 2, like any other usage mistake), so a user following an
 * old walkthrough learns where to go instead of reading "unknown command".
 */
import { HotweightsError } from '@hotweights/core';
import type { Command } from 'commander';
import type { CommandModule } from '../command.js';

/** A command, flag or variable of the seed documents that this design replaced. */
export class ReplacedError extends HotweightsError {
  constructor(what: string, instead: string) {
    super('HW_REPLACED', `${what} is replaced in this hotweights: ${instead}`);
  }
}

function replacedCommand(name: string, description: string, instead: string): CommandModule {
  return {
    name,
    register(program: Command) {
      program
        .command(name)
        .description(`(replaced) ${description}`)
        // Whatever flags the old command line carries, the answer is the same pointer.
        .allowUnknownOption()
        .allowExcessArguments()
        .action(() => {
          throw new ReplacedError(`\`hotweights ${name}\``, instead);
        });
    },
  };
}

export const metricsCommand = replacedCommand(
  'metrics',
  'start a metrics server',
  'every long-running command serves its own /metrics: `replicate` on :9097 (--metrics-port), `worker` on :9099, `coord-serve` on :9100 (docs/DEPLOYMENT.md#metrics)',
);

export const benchHierarchicalCommand = replacedCommand(
  'bench-hierarchical',
  'time a hierarchical broadcast',
  'the benchmarks live in bench/ and print the reference tools beside hotweights (e.g. `npx tsx bench/ucx/run.ts`; docs/PERFORMANCE.md), and the transport is chosen per fleet (`hotweights transports`)',
);
