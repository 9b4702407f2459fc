#!/usr/bin/env node
import { main } from './program.js';

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`hotweights: internal error: ${String(err)}\n`);
    process.exitCode = 70;
  },
);
