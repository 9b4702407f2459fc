export type { CommandModule } from './command.js';
export { COMMANDS } from './commands/index.js';
export { BUILTIN_PROVIDERS, type CliContext, createContext } from './context.js';
export { buildProgram, CLI_VERSION, describeError, main } from './program.js';
