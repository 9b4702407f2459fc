/** The current manifest: what a delta plan is made against, moved on every commit. */
import type { JsonObject } from '@hotweights/manifest';
import { checkManifestDoc } from './params.js';
import { type CoordinatorState, refused } from './state.js';

export async function setCurrentManifest(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const manifest = checkManifestDoc('set_current_manifest', p.manifest);
  const active = s.active();
  if (active) throw refused(`set_current_manifest: update ${active.version} is ${active.state}`);
  await s.backend.set('current_manifest', manifest);
  s.current = {
    version: manifest.version as string,
    manifest_digest: typeof manifest.digest === 'string' ? manifest.digest : null,
    committed_at: s.current.committed_at,
  };
  await s.backend.set('current', s.current);
  await s.emit('manifest', { version: s.current.version });
  return { version: s.current.version };
}

export async function getCurrentManifest(s: CoordinatorState): Promise<unknown> {
  const manifest = (await s.backend.get<JsonObject>('current_manifest')) ?? null;
  return { version: s.current.version, manifest };
}
