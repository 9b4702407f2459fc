/**
 * verifyTpGroups: the checks run on a --tp-groups file before any plan uses it. Each broken
 * layout gives exactly the findings that name what is wrong; a good layout gives none.
 */
import { describe, expect, it } from 'vitest';
import { verifyTpGroups } from '../src/index.js';

const groups = (entries: [number, number[]][]) => new Map(entries);
const checks = (r: ReturnType<typeof verifyTpGroups>) => ({
  problems: r.problems.map((f) => `${f.check}: ${f.message}`),
  warnings: r.warnings.map((f) => `${f.check}: ${f.message}`),
});

describe('verifyTpGroups', () => {
  it('accepts groups 0..n-1 that cover every rank once', () => {
    const r = verifyTpGroups(
      groups([
        [0, [0, 1]],
        [1, [2, 3]],
      ]),
      4,
    );
    expect(r.ok).toBe(true);
    expect(checks(r)).toEqual({ problems: [], warnings: [] });
  });

  it('names an empty layout and an empty group', () => {
    expect(checks(verifyTpGroups(groups([]), 0)).problems).toEqual(['tp-empty: no TP groups are defined']);
    const r = verifyTpGroups(
      groups([
        [0, [0]],
        [1, []],
      ]),
      1,
    );
    expect(r.ok).toBe(false);
    expect(checks(r).problems).toEqual(['tp-empty: group 1 has no ranks']);
  });

  it('names a rank listed twice, in two groups, out of range, and ranks in no group', () => {
    const r = verifyTpGroups(
      groups([
        [0, [0, 0, 1]],
        [1, [1, 4]],
      ]),
      4,
    );
    expect(r.ok).toBe(false);
    expect(checks(r).problems).toEqual([
      'tp-duplicate: group 0 lists rank 0 twice',
      'tp-overlap: rank 1 is in both group 0 and group 1',
      'rank-out-of-range: group 1: rank 4 is outside 0..3',
      'tp-outside-groups: ranks [2, 3] are in no TP group',
    ]);
  });

  it('warns (only) about group ids that are not 0..n-1', () => {
    const r = verifyTpGroups(
      groups([
        [0, [0]],
        [2, [1]],
      ]),
      2,
    );
    expect(r.ok).toBe(true);
    expect(checks(r).problems).toEqual([]);
    expect(checks(r).warnings).toHaveLength(1);
    expect(checks(r).warnings[0]).toMatch(/^tp-group-ids: group ids \[0, 2\] are not 0\.\.1; /);
  });
});
