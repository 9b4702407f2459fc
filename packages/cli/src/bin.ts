#!/usr/bin/env node
import { main } from './program.js';

// A reader that went away (`hotweights coord-status | head`) ends the output, not in a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`hotweights: internal error: ${String(err)}\n`);
    process.exitCode = 70;
  },
);
