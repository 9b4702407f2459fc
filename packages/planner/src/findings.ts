/** Verification findings: what verify-plan and verify-tp report, capped per check. */

export interface Finding {
  /** Stable check name, e.g. `consumers-missing`, `tp-superset`, `overlap`. */
  readonly check: string;
  readonly message: string;
  readonly bucket_id?: number;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly problems: Finding[];
  readonly warnings: Finding[];
}

/** Caps repeated findings of one check so a broken million-item plan gives a readable report. */
export class Findings {
  readonly problems: Finding[] = [];
  readonly warnings: Finding[] = [];
  private readonly counts = new Map<string, number>();
  private static readonly MAX_PER_CHECK = 20;

  add(problem: boolean, f: Finding): void {
    const n = (this.counts.get(f.check) ?? 0) + 1;
    this.counts.set(f.check, n);
    const list = problem ? this.problems : this.warnings;
    if (n <= Findings.MAX_PER_CHECK) list.push(f);
    else if (n === Findings.MAX_PER_CHECK + 1)
      list.push({ check: f.check, message: `more ${f.check} findings not shown` });
  }

  report(): VerifyReport {
    return { ok: this.problems.length === 0, problems: this.problems, warnings: this.warnings };
  }
}
