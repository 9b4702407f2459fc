import type { Command } from 'commander';
import type { CliContext } from './context.js';

/**
 * A command module adds one command (or a small family) to the program. Commands parse flags,
 * call into the packages and print; their logic lives in the packages.
 */
export interface CommandModule {
  readonly name: string;
  register(program: Command, ctx: () => CliContext): void;
}
