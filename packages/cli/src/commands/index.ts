/** Every command of the CLI. Later packages add one line each. */
import type { CommandModule } from '../command.js';
import { abortCommand } from './abort.js';
import { beginCommand } from './begin.js';
import { commitCommand } from './commit.js';
import { coordServeCommand } from './coord-serve.js';
import { coordStatusCommand } from './coord-status.js';
import { coordSubmitPlanCommand } from './coord-submit-plan.js';
import { demoCommand } from './demo.js';
import { planCommand } from './plan.js';
import { precommitCommand } from './precommit.js';
import { publishCommand } from './publish.js';
import { replicateCommand } from './replicate.js';
import { rollbackCommand } from './rollback.js';
import { statusCommand } from './status.js';
import { transportsCommand } from './transports.js';
import { verifyPlanCommand } from './verify-plan.js';
import { verifyTpCommand } from './verify-tp.js';
import { workerCommand } from './worker.js';

export const COMMANDS: readonly CommandModule[] = [
  transportsCommand,
  publishCommand,
  planCommand,
  verifyPlanCommand,
  verifyTpCommand,
  replicateCommand,
  rollbackCommand,
  statusCommand,
  demoCommand,
  coordServeCommand,
  coordSubmitPlanCommand,
  beginCommand,
  precommitCommand,
  commitCommand,
  abortCommand,
  coordStatusCommand,
  workerCommand,
];
