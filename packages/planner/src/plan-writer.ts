/**
 * writePlan: plan JSON that people can read (one item per line) and that streams to disk in
 * pieces, so a million-item plan never becomes one giant string. Atomic: temp file + rename.
 */
import type { Plan } from '@hotweights/core';
import { writeAtomically } from './atomic-write.js';
import { itemJsonText } from './plan-digest.js';

function* planChunks(plan: Plan): Generator<string> {
  const { buckets, removed, digest, ...head } = plan;
  yield '{\n';
  for (const [k, v] of Object.entries(head)) yield `  ${JSON.stringify(k)}: ${JSON.stringify(v)},\n`;
  yield '  "buckets": [';
  for (const [b, bucket] of buckets.entries()) {
    const { items, ...bhead } = bucket;
    const fields = Object.entries(bhead).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    yield `${b === 0 ? '' : ','}\n    {${fields.join(', ')}, "items": [`;
    let batch = '';
    for (const [i, item] of items.entries()) {
      batch += `${i === 0 ? '' : ','}\n      ${itemJsonText(item)}`;
      if (batch.length > 1 << 20) {
        yield batch;
        batch = '';
      }
    }
    yield `${batch}${items.length ? '\n    ' : ''}]}`;
  }
  yield `${buckets.length ? '\n  ' : ''}],\n`;
  yield `  "removed": ${JSON.stringify(removed)},\n`;
  yield `  "digest": ${JSON.stringify(digest)}\n}\n`;
}

export async function writePlan(plan: Plan, path: string): Promise<void> {
  await writeAtomically(path, planChunks(plan));
}
