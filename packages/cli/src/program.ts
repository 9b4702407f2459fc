/**
 * The `hotweights` program: registers every command, turns errors into one clear line and an
 * exit code (1 for failures, 2 for usage mistakes), and prints stacks only with --debug.
 */
import { readFileSync } from 'node:fs';
import { isHotweightsError } from '@hotweights/core';
import { Command, CommanderError } from 'commander';
import { COMMANDS } from './commands/index.js';
import { type CliContext, createContext } from './context.js';

export const CLI_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export function buildProgram(getContext: () => CliContext): Command {
  const program = new Command('hotweights')
    .description('Fast, versioned hot-swap of LLM weights across inference fleets and training jobs')
    .version(CLI_VERSION, '-V, --version')
    .option('--debug', 'print stack traces for errors')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  for (const cmd of COMMANDS) cmd.register(program, getContext);
  program.commands.forEach((c) => {
    c.exitOverride().configureOutput({ outputError: () => {} });
  });
  return program;
}

/** Formats any error as the single line the user sees. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof CommanderError)
    return { line: `hotweights: ${err.message.replace(/^error: /, '')}`, exitCode: 2 };
  if (isHotweightsError(err)) return { line: `hotweights: error [${err.code}]: ${err.message}`, exitCode: 1 };
  const e = err as NodeJS.ErrnoException;
  if (e?.code && typeof e.message === 'string')
    return { line: `hotweights: error [${e.code}]: ${e.message}`, exitCode: 1 };
  return {
    line: `hotweights: unexpected error: ${(err as Error)?.message ?? String(err)} (run with --debug for details)`,
    exitCode: 70,
  };
}

export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const debug = argv.includes('--debug');
  let ctx: CliContext | undefined;
  const program = buildProgram(() => {
    ctx ??= createContext();
    return ctx;
  });
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (
      err instanceof CommanderError &&
      (err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help')
    ) {
      return 0;
    }
    const { line, exitCode } = describeError(err);
    process.stderr.write(`${line}\n`);
    if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return exitCode;
  }
}
