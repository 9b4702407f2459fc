/** The text rendering `hotweights transports` and `hotweights adapters` share. */
import type { ProbeResult } from '@hotweights/core';

/** `available (detail)` or `unavailable: reason`. */
export function probeStatus(result: ProbeResult): string {
  if (result.available) return `available${result.detail ? ` (${result.detail})` : ''}`;
  return `unavailable: ${result.reason}`;
}

/** Columns padded to their widest cell; the last column is left as is. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const fmt = (r: readonly string[]) =>
    r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ');
  return [fmt(header), ...rows.map(fmt)];
}
