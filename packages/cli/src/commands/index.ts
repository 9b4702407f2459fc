/** Every command of the CLI. Later packages add one line each. */
import type { CommandModule } from '../command.js';
import { transportsCommand } from './transports.js';

export const COMMANDS: readonly CommandModule[] = [transportsCommand];
