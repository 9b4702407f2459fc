/** What to tell the user when ranks the one-host launcher started failed. */
import type { LocalRankExit } from '@hotweights/runtime';

/**
 * The first root cause among failed ranks. Ranks the launcher stopped because another one failed
 * report only fallout (an abort, a lost peer), so the cause is looked for among the others: a rank
 * that died of a signal first (unambiguous), then bad bytes and bad input, then transport errors.
 */
export function rootCause(exits: readonly LocalRankExit[]): string {
  const own = exits.some((e) => !e.stopped) ? exits.filter((e) => !e.stopped) : exits;
  const errors = own.flatMap((e) =>
    e.events.filter((ev) => ev.type === 'error').map((ev) => ({ rank: e.rank, ev })),
  );
  const primary = [
    'HW_VERIFY',
    'HW_CHECKPOINT',
    'HW_PATH_ESCAPE',
    'HW_ADAPTER',
    'HW_STAGING',
    'HW_STAGING_NO_SPACE',
    'HW_SCHEMA',
    'HW_CONFIG',
  ];
  // The launcher's own SIGTERM, and its SIGKILL after the grace, are not a crash.
  const crashed = exits.find(
    (e) =>
      e.signal !== null &&
      e.signal !== 'SIGTERM' &&
      !(e.stopped && e.signal === 'SIGKILL') &&
      !e.events.some((ev) => ev.type === 'error'),
  );
  if (crashed) return `rank ${crashed.rank} died (${crashed.signal}) during the update`;
  const best = errors.find((e) => primary.includes(String(e.ev.code)));
  if (best) return String(best.ev.message);
  // A rank's own failure explains more than the aborts it caused in the others.
  const first = errors.find((e) => e.ev.code !== 'HW_ABORTED');
  if (first) return String(first.ev.message);
  const silent = own.find((e) => e.code !== 0 && !e.events.some((ev) => ev.type === 'error'));
  if (silent && !errors.length)
    return `rank ${silent.rank} exited with code ${silent.code}: ${silent.stderr.trim().split('\n').pop() ?? ''}`;
  return String(errors[0]?.ev.message ?? 'a rank failed');
}

/**
 * What a rank the launcher had to kill may have left (its discard never ran): said, so nobody
 * mistakes a leftover version for a commit. The next prepare into its target removes it.
 */
export function killedNote(exits: readonly LocalRankExit[], graceMs: number): string {
  const killed = exits.filter((e) => e.stopped && e.signal === 'SIGKILL').map((e) => e.rank);
  if (!killed.length) return '';
  return `; rank(s) ${killed.join(', ')} did not stop within ${graceMs / 1000} s and were killed: a version they prepared (never live) is removed by the next update of their target`;
}
