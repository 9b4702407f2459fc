/**
 * What every command gets: configuration, the launch context, output that respects --json and
 * terminals, and a TransportManager with the built-in and installed transports.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type HotweightsConfig,
  type LaunchContext,
  loadConfig,
  TransportManager as Manager,
  readLaunchContext,
  type TransportManager,
  type TransportProvider,
} from '@hotweights/core';
import { recordedSourceRoots } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';

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
}

/** Shown as the version of built-in transports that do not state their own. */
const CORE_VERSION = (
  JSON.parse(
    readFileSync(createRequire(import.meta.url).resolve('@hotweights/core/package.json'), 'utf8'),
  ) as {
    version: string;
  }
).version;

/** Built-in providers that core ships; later issues add to this list. */
export const BUILTIN_PROVIDERS: TransportProvider[] = [localTransportProvider];

export function createContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  let manager: Promise<TransportManager> | undefined;
  const loaded = loadConfig(env);
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
      manager ??= (async () => {
        const m = new Manager({ probeTimeoutMs: config.probeTimeoutMs });
        for (const p of BUILTIN_PROVIDERS) m.register(p, 'builtin', p.version ?? CORE_VERSION);
        // The application's node_modules first (where users `npm install` transports), then the
        // CLI's own location (a global install, or a workspace).
        await m.discover(process.cwd());
        await m.discover(dirname(fileURLToPath(import.meta.url)));
        return m;
      })();
      return manager;
    },
  };
}
