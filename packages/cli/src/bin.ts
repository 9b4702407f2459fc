#!/usr/bin/env node
import { prestart } from './prestart.js';

// Before the command's modules load (imported below, not at the top, so this runs first).
prestart(process.argv.slice(2));
const { main } = await import('./program.js');
const { installStopSignals } = await import('./signals.js');

installStopSignals();

// A reader that went away (`hotweights coord-status | head`) ends the output, not in a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});

main().then(
  // The command is done: exit even if a handle is left open (a transport still waiting for a
  // peer that never came must not keep a stopped worker alive).
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`hotweights: internal error: ${String(err)}\n`);
    process.exit(70);
  },
);
