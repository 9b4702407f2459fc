export { BUILTIN_PROVIDERS } from './builtins.js';
export type { CommandModule } from './command.js';
export { COMMAND_LOADERS, loadCommands } from './commands/index.js';
export { type CliContext, createContext } from './context.js';
export { buildProgram, CLI_VERSION, describeError, main } from './program.js';
