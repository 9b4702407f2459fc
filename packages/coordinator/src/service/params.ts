/** Parameter checks shared by several handlers. */
import type { JsonObject } from '@hotweights/manifest';
import { checkParams } from '../protocol.js';

export function checkBool(
  c: { fail(field: string, expected: string, v: unknown): never },
  v: unknown,
  field: string,
): boolean {
  if (typeof v !== 'boolean') c.fail(field, 'true or false', v);
  return v;
}

export function checkManifestDoc(method: string, value: unknown): JsonObject {
  return checkParams(method, (c) => {
    const m = c.object(value, 'manifest');
    c.literal(m.schema, 'manifest.schema', 'hotweights.manifest');
    c.string(m.version, 'manifest.version', { nonEmpty: true });
    return m;
  });
}
