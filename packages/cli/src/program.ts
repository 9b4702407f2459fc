/**
 * The `hotweights` program: registers every command, turns errors into one clear line and an
 * exit code (1 for failures, 2 for usage mistakes), and prints stacks only with --debug.
 */
import { readFileSync } from 'node:fs';
import { isHotweightsError } from '@hotweights/core';
import { Command, CommanderError } from 'commander';
import type { CommandModule } from './command.js';
import { commandNameOf, loadCommands } from './commands/index.js';
import { type CliContext, createContext } from './context.js';

export const CLI_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** The program with the given commands registered (`loadCommands()` gives all of them). */
export function buildProgram(getContext: () => CliContext, commands: readonly CommandModule[]): Command {
  const program = new Command('hotweights')
    .description('Fast, versioned hot-swap of LLM weights across inference fleets and training jobs')
    .version(CLI_VERSION, '-V, --version')
    .option('--debug', 'print stack traces for errors')
    .showSuggestionAfterError(true)
    // Program options only before the command name: commands own flags such as `--version v2`
    // (the seed documents' `commit --version`), which the program's -V would otherwise swallow.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  for (const cmd of commands) cmd.register(program, getContext);
  for (const { command } of listCommands(program)) {
    // Subcommands made with .command() inherit these; ones attached with .addCommand() (at any
    // depth) do not, and would print commander's own error text and call process.exit.
    command.exitOverride().configureOutput({ outputError: () => {} });
    // `hotweights transports --debug` works as well as `hotweights --debug transports`.
    if (!command.options.some((o) => o.long === '--debug'))
      command.option('--debug', 'print stack traces for errors');
  }
  return program;
}

/** Every command below `program`, depth first, with its path (`['coordinator', 'serve']`). */
export function listCommands(program: Command): { path: string[]; command: Command }[] {
  const out: { path: string[]; command: Command }[] = [];
  const walk = (parent: Command, prefix: string[]) => {
    for (const command of parent.commands) {
      const path = [...prefix, command.name()];
      out.push({ path, command });
      walk(command, path);
    }
  };
  walk(program, []);
  return out;
}

/** One line, whatever the message holds (commander appends suggestions on a second line). */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** Formats any error as the single line the user sees. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof CommanderError)
    return { line: `hotweights: ${oneLine(err.message.replace(/^error: /, ''))}`, exitCode: 2 };
  if (isHotweightsError(err))
    // A replaced seed command line is a usage mistake (2), like an unknown option.
    return {
      line: `hotweights: error [${err.code}]: ${oneLine(err.message)}`,
      exitCode: err.code === 'HW_REPLACED' ? 2 : 1,
    };
  const e = err as NodeJS.ErrnoException;
  if (e?.code && typeof e.message === 'string')
    return { line: `hotweights: error [${e.code}]: ${oneLine(e.message)}`, exitCode: 1 };
  return {
    line: `hotweights: unexpected error: ${oneLine((err as Error)?.message ?? String(err))} (run with --debug for details)`,
    exitCode: 70,
  };
}

/** The stack and every `cause` below it, for --debug. */
function debugReport(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && depth < 8; depth++) {
    const text = current instanceof Error ? (current.stack ?? String(current)) : String(current);
    parts.push(depth === 0 ? text : `caused by: ${text}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return `${parts.join('\n')}\n`;
}

const HELP_CODES = new Set(['commander.helpDisplayed', 'commander.version', 'commander.help']);

export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const debug = argv.includes('--debug');
  let ctx: CliContext | undefined;
  try {
    // Only the command being run is loaded; help, version and unknown names load every command.
    const name = commandNameOf(argv.slice(2));
    const commands = await loadCommands(name === undefined ? undefined : [name]);
    const program = buildProgram(() => {
      ctx ??= createContext();
      return ctx;
    }, commands);
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    // Help and version were already printed; `hotweights` alone prints help and exits 1.
    if (err instanceof CommanderError && HELP_CODES.has(err.code)) return err.exitCode;
    const { line, exitCode } = describeError(err);
    process.stderr.write(`${line}\n`);
    if (debug) process.stderr.write(debugReport(err));
    return exitCode;
  }
}
