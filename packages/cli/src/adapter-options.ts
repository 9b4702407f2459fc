/**
 * `--adapter NAME` and `--adapter-option KEY=VALUE` for the commands that apply versions
 * (replicate, worker, rollback, status), and opening the chosen adapter through the
 * AdapterManager. The default is what it always was: `directory` when `--target` is given, else
 * `memory` (HOTWEIGHTS_ADAPTER overrides it, the flag overrides both).
 */
import { type Adapter, AdapterManager, type AdapterOptions, ConfigError } from '@hotweights/core';
import type { Command } from 'commander';
import { BUILTIN_ADAPTERS } from './builtins.js';
import type { CliContext } from './context.js';

export interface AdapterFlags {
  adapter?: string;
  adapterOption?: string[];
}

/** Commander's accumulator for a repeatable option. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addAdapterOptions(cmd: Command): Command {
  return cmd
    .option(
      '--adapter <name>',
      'adapter that applies versions (default: HOTWEIGHTS_ADAPTER, else directory with --target, memory without; `hotweights adapters` lists them)',
    )
    .option(
      '--adapter-option <key=value>',
      "a setting of the adapter (repeatable; see the adapter's README)",
      collect,
    );
}

/** The flags as arguments again, for rank processes a command starts itself. */
export function adapterArgs(flags: AdapterFlags): string[] {
  return [
    ...(flags.adapter !== undefined ? ['--adapter', flags.adapter] : []),
    ...(flags.adapterOption ?? []).flatMap((o) => ['--adapter-option', o]),
  ];
}

/** `--adapter-option` values as settings; a value without `=` is a mistake. */
export function adapterSettings(flags: AdapterFlags): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const option of flags.adapterOption ?? []) {
    const eq = option.indexOf('=');
    if (eq < 1) {
      throw new ConfigError(
        `--adapter-option ${JSON.stringify(option)}: expected KEY=VALUE (e.g. --adapter-option partial=true)`,
      );
    }
    settings[option.slice(0, eq)] = option.slice(eq + 1);
  }
  return settings;
}

/** The adapter a command uses: the flag, else HOTWEIGHTS_ADAPTER, else by whether there is a target. */
export function adapterName(c: CliContext, flags: AdapterFlags, target: string | undefined): string {
  return flags.adapter ?? c.config.adapter ?? (target !== undefined ? 'directory' : 'memory');
}

/**
 * Opens the chosen adapter. `defaults` holds settings per adapter name that the command implies
 * (replicate's memory adapter accepts deltas onto nothing); `--adapter-option` wins over them.
 */
export async function openAdapter(
  c: CliContext,
  flags: AdapterFlags,
  options: Omit<AdapterOptions, 'config' | 'settings'>,
  defaults: Readonly<Record<string, Readonly<Record<string, string>>>> = {},
): Promise<Adapter> {
  const name = adapterName(c, flags, options.target);
  // A built-in adapter wins over an installed package of the same name, so naming one needs no
  // scan of node_modules (a few hundred package.json files on every command start).
  const builtin = BUILTIN_ADAPTERS.some((p) => p.name === name);
  const manager = builtin ? new AdapterManager({ providers: BUILTIN_ADAPTERS }) : await c.adapters();
  return manager.create(name, {
    ...options,
    config: c.config,
    settings: { ...defaults[name], ...adapterSettings(flags) },
  });
}
