/**
 * Every command of the CLI, by name, each loaded only when needed: a run imports the module of the
 * command it runs and nothing else, because the packages behind the other commands (the planner,
 * the coordinator with ZeroMQ, ...) cost start-up time that `replicate` ranks pay on every update.
 * Help, version and unknown commands load them all. Later packages add one line each.
 */
import type { CommandModule } from '../command.js';

export const COMMAND_LOADERS: Readonly<Record<string, () => Promise<CommandModule>>> = {
  transports: async () => (await import('./transports.js')).transportsCommand,
  adapters: async () => (await import('./adapters.js')).adaptersCommand,
  publish: async () => (await import('./publish.js')).publishCommand,
  plan: async () => {
    // `plan --coord-endpoint` asks the coordinator for the current manifest through the client,
    // which (with ZeroMQ and prom-client) is loaded only when a plan does ask.
    const plan = await import('./plan.js');
    plan.setCoordinatorManifestSource(async (endpoint, modelId, c) =>
      (await import('./coord-client.js')).coordinatorManifestSource(endpoint, modelId, c),
    );
    return plan.planCommand;
  },
  'verify-plan': async () => (await import('./verify-plan.js')).verifyPlanCommand,
  'verify-tp': async () => (await import('./verify-tp.js')).verifyTpCommand,
  replicate: async () => (await import('./replicate.js')).replicateCommand,
  rollback: async () => (await import('./rollback.js')).rollbackCommand,
  status: async () => (await import('./status.js')).statusCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  'coord-serve': async () => (await import('./coord-serve.js')).coordServeCommand,
  'coord-submit-plan': async () => (await import('./coord-submit-plan.js')).coordSubmitPlanCommand,
  begin: async () => (await import('./begin.js')).beginCommand,
  precommit: async () => (await import('./precommit.js')).precommitCommand,
  commit: async () => (await import('./commit.js')).commitCommand,
  abort: async () => (await import('./abort.js')).abortCommand,
  'coord-status': async () => (await import('./coord-status.js')).coordStatusCommand,
  worker: async () => (await import('./worker.js')).workerCommand,
  'opt-check': async () => (await import('./opt-check.js')).optCheckCommand,
  'kv-check': async () => (await import('./kv-check.js')).kvCheckCommand,
  // Seed-document commands this design replaced: each answers with what to use instead.
  metrics: async () => (await import('./replaced.js')).metricsCommand,
  'bench-hierarchical': async () => (await import('./replaced.js')).benchHierarchicalCommand,
};

/** The named commands (every command when `names` is omitted), in the order of the table above. */
export async function loadCommands(names?: readonly string[]): Promise<CommandModule[]> {
  const wanted = Object.keys(COMMAND_LOADERS).filter((n) => !names || names.includes(n));
  return Promise.all(wanted.map((n) => (COMMAND_LOADERS[n] as () => Promise<CommandModule>)()));
}

/**
 * The command a command line runs: its first word that is not a program option. Program options
 * come only before the command name (the program enables positional options), and none takes a
 * value, so the first other word is the command.
 */
export function commandNameOf(args: readonly string[]): string | undefined {
  const word = args.find((a) => !a.startsWith('-'));
  return word !== undefined && Object.hasOwn(COMMAND_LOADERS, word) ? word : undefined;
}
