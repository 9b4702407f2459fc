/**
 * How every command stops on SIGINT and SIGTERM. A command with something to undo (a worker's
 * staging, a rank's update, a coordinator's sockets) registers a graceful stop with `onStop`; it
 * gets STOP_GRACE_MS, then the process exits anyway: a stop never waits on a peer that is not
 * there. A command with nothing registered exits at once, and a second signal always does. A
 * forced exit uses 128 + the signal's number, as a shell expects; a finished graceful stop exits
 * with the command's own code.
 */

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;
type StopSignal = keyof typeof SIGNAL_NUMBERS;

/** How long a graceful stop may take before the process exits regardless. */
export const STOP_GRACE_MS = 5_000;

const stops = new Set<(signal: StopSignal) => void>();
let received: StopSignal | undefined;
let installed = false;

function forceExit(signal: StopSignal): never {
  process.exit(128 + SIGNAL_NUMBERS[signal]);
}

function onSignal(signal: StopSignal): void {
  if (received !== undefined || stops.size === 0) forceExit(signal);
  received = signal;
  setTimeout(() => {
    process.stderr.write(
      `hotweights: ${signal}: not stopped within ${STOP_GRACE_MS / 1000} s; exiting (staging left behind is reclaimed by \`hotweights status --reclaim\`)\n`,
    );
    forceExit(signal);
  }, STOP_GRACE_MS).unref();
  for (const stop of [...stops]) stop(signal);
}

/** Installs the handlers once per process (bin.ts does; in-process callers may skip it). */
export function installStopSignals(): void {
  if (installed) return;
  installed = true;
  for (const signal of Object.keys(SIGNAL_NUMBERS) as StopSignal[])
    process.on(signal, () => onSignal(signal));
}

/**
 * Runs `stop` on the first SIGINT/SIGTERM (at once when one already arrived); returns the
 * function that unregisters it. Without installStopSignals nothing ever calls it.
 */
export function onStop(stop: (signal: StopSignal) => void): () => void {
  if (received !== undefined) {
    stop(received);
    return () => {};
  }
  stops.add(stop);
  return () => {
    stops.delete(stop);
  };
}
