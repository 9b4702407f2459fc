/**
 * What every command gets: configuration, the launch context, output that respects --json and
 * terminals, and the Transport and Adapter managers with the built-in and installed plugins.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AdapterManager,
  type HotweightsConfig,
  type LaunchContext,
  loadConfig,
  TransportManager as Manager,
  readLaunchContext,
  replacedVariableNotices,
  type TransportManager,
  unknownVariables,
} from '@hotweights/core';
import { recordedSourceRoots } from '@hotweights/runtime/source-roots';

export interface CliContext {
  readonly config: HotweightsConfig;
  readonly launch: LaunchContext;
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Writes a line to stderr (progress, warnings). */
  err(line: string): void;
  /** Prints data as JSON (one document) on stdout. */
  json(value: unknown): void;
  /** True when stderr is a terminal: show progress bars. */
  readonly interactive: boolean;
  /** Built-in providers plus packages discovered from the application and the CLI's location. */
  transports(): Promise<TransportManager>;
  /** Built-in adapters plus adapter packages discovered the same way as transports. */
  adapters(): Promise<AdapterManager>;
}

/** Shown as the version of built-in transports that do not state their own. */
const CORE_VERSION = (
  JSON.parse(
    readFileSync(createRequire(import.meta.url).resolve('@hotweights/core/package.json'), 'utf8'),
  ) as {
    version: string;
  }
).version;

/**
 * Registers the built-ins, then discovers installed packages: the application's node_modules
 * first (where users `npm install` plugins), then the CLI's own location (a global install, or a
 * workspace).
 */
async function withInstalled<
  M extends { discover(...dirs: string[]): Promise<unknown> },
  P extends { version?: string },
>(
  manager: M & { register(p: P, origin: string, version: string): void },
  builtins: () => Promise<readonly P[]>,
): Promise<M> {
  for (const p of await builtins()) manager.register(p, 'builtin', p.version ?? CORE_VERSION);
  await manager.discover(process.cwd(), dirname(fileURLToPath(import.meta.url)));
  return manager;
}

export function createContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  let manager: Promise<TransportManager> | undefined;
  let adapterManager: Promise<AdapterManager> | undefined;
  const loaded = loadConfig(env);
  // A variable from an old preset that this design replaced: say so once, with what to use.
  for (const notice of replacedVariableNotices(env)) process.stderr.write(`hotweights: note: ${notice}\n`);
  for (const { name, suggestion } of unknownVariables(env))
    process.stderr.write(
      `hotweights: warning: ${name} is not a hotweights variable, ignored${suggestion ? ` (did you mean ${suggestion}?)` : ''}; docs/CONFIG.md lists them\n`,
    );
  // Plans name the directory their source reads: by default only checkpoints published here.
  const config = Object.freeze({
    ...loaded,
    sourceRoots: loaded.sourceRoots ?? recordedSourceRoots(loaded.stateDir),
  });
  return {
    config,
    launch: readLaunchContext(env),
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    json: (value) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    interactive: process.stderr.isTTY === true,
    transports() {
      manager ??= withInstalled(
        new Manager({ probeTimeoutMs: config.probeTimeoutMs }),
        async () => (await import('./builtins.js')).BUILTIN_PROVIDERS,
      );
      return manager;
    },
    adapters() {
      adapterManager ??= withInstalled(
        new AdapterManager({ probeTimeoutMs: config.probeTimeoutMs }),
        async () => (await import('./builtins.js')).BUILTIN_ADAPTERS,
      );
      return adapterManager;
    },
  };
}
