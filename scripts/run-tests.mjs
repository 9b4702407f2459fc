#!/usr/bin/env node
// Runs every project's tests through nx (cached, `dependsOn` honoured: builds first) and ends the
// output with one totals line summed from each project's vitest summary, since nx's own closing
// lines count projects, not tests. A project replayed from nx's cache replays its summary too.
// Failed tests are listed again just above the totals, each with the first line of its error:
// a CI log cut to its tail still says what failed.
// Arguments go to `nx run-many`, e.g. `--projects=@hotweights/shm` or `--skip-nx-cache`.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const args = ['nx', 'run-many', '-t', 'test', '--outputStyle=static', ...process.argv.slice(2)];
const child = spawn('npx', args, {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { NX_DAEMON: 'false', NX_TUI: 'false', ...process.env },
});

const totals = { projects: 0, files: { passed: 0, failed: 0 }, tests: { passed: 0, failed: 0, skipped: 0 } };
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are what is stripped
const ANSI = /\u001b\[[0-9;]*m/g;

/** Adds the `N failed | M passed | K skipped (T)` counts of one vitest summary line. */
function add(into, text) {
  for (const [, n, what] of text.matchAll(/(\d+) (passed|failed|skipped|todo)/g))
    if (what in into) into[what] += Number(n);
}

/** `FAIL` lines of vitest (`project file > suite > test`) and `FAILED` lines of pytest, with why. */
const failed = [];
/** The failure whose error line vitest prints next, if any. */
let awaitingError;

/** The entry for a failed test; nx may run a flaky task again, and a test is listed once. */
function record(name) {
  const test = name.trim().replace(/\s+/g, ' ');
  const known = failed.find((f) => f.test === test);
  if (known) return known;
  const entry = { test, why: '' };
  failed.push(entry);
  return entry;
}

createInterface({ input: child.stdout }).on('line', (line) => {
  process.stdout.write(`${line}\n`);
  const plain = line.replace(ANSI, '');
  const fail = /^\s*FAIL\s+(.+)$/.exec(plain);
  if (fail) {
    awaitingError = record(fail[1]);
  } else if (awaitingError && plain.trim() !== '') {
    // The error's first line (`AssertionError: …`, `Error: Test timed out in 120000ms.`).
    if (/^\s*\w*(Error|Exception)\b/.test(plain)) awaitingError.why = plain.trim();
    awaitingError = undefined;
  }
  const pytestFailed = /^FAILED (\S+)(?: - (.*))?$/.exec(plain);
  if (pytestFailed) record(pytestFailed[1]).why = pytestFailed[2] ?? '';
  const files = /^\s*Test Files\s+(.*)$/.exec(plain);
  if (files) {
    totals.projects += 1;
    add(totals.files, files[1]);
  }
  const tests = /^\s*Tests\s+(.*)$/.exec(plain);
  if (tests) add(totals.tests, tests[1]);
  // pytest's closing line (adapter-vllm's Python tests): `21 passed, 1 skipped in 3.20s`.
  const pytest = /^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s\b/.exec(plain);
  if (pytest) add(totals.tests, pytest[1]);
});

child.on('close', (code, signal) => {
  const { files, tests } = totals;
  if (failed.length > 0) {
    process.stdout.write(`\nFailed tests (${failed.length}):\n`);
    for (const { test, why } of failed)
      process.stdout.write(`  ${test}${why ? `\n      ${why.slice(0, 300)}` : ''}\n`);
  }
  process.stdout.write(
    `\nTest Files  ${files.passed} passed, ${files.failed} failed (${totals.projects} projects reported)\n` +
      `Tests  ${tests.passed} passed, ${tests.failed} failed, ${tests.skipped} skipped` +
      `${code === 0 ? '' : ` (nx exited ${code ?? signal}: see the failed tasks above)`}\n`,
  );
  process.exitCode = code ?? 1;
});
