/**
 * On-disk layout of a target directory:
 *
 *   DIR/current   -> versions/<v>      symlink, flipped atomically with rename (what users load)
 *   DIR/previous  -> versions/<v-1>    kept until the next commit, for instant rollback
 *   DIR/versions/<v>/…                 one complete checkpoint per kept version
 *   DIR/.hotweights/<v>.json           {version, manifest_digest, prepared_by} of each kept
 *                                      version (prepared_by: the pid that prepared it; a version
 *                                      never made live whose process is gone is removed by the
 *                                      next prepare)
 *   DIR/.hotweights/<v>.manifest.json  its manifest (the layout deltas are applied against)
 *   DIR/.hotweights/partials/<p>       the adapter's record of a version being prepared in
 *                                      versions/<p> (`<v>.partial-<pid>-<hex>`)
 *
 * The records in `.hotweights` are how the adapter knows what it made: it removes only entries of
 * `versions/` that have one, and leaves anything else there (another tool's folder) alone.
 *
 * `<v>` is the version made safe as a file name.
 */
import { join } from 'node:path';

export function safeVersion(version: string): string {
  const safe = version
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, 80);
  if (safe === version) return safe;
  let h = 0x811c9dc5;
  for (let i = 0; i < version.length; i++) h = Math.imul(h ^ version.charCodeAt(i), 0x01000193) >>> 0;
  return `${safe}~${h.toString(16).padStart(8, '0')}`;
}

export class TargetLayout {
  constructor(readonly root: string) {}
  get current(): string {
    return join(this.root, 'current');
  }
  get previous(): string {
    return join(this.root, 'previous');
  }
  get versionsDir(): string {
    return join(this.root, 'versions');
  }
  get metaDir(): string {
    return join(this.root, '.hotweights');
  }
  versionDir(dirName: string): string {
    return join(this.versionsDir, dirName);
  }
  /** Relative link text for a version dir (the target stays relocatable). */
  linkText(dirName: string): string {
    return join('versions', dirName);
  }
  metaFile(dirName: string): string {
    return join(this.metaDir, `${dirName}.json`);
  }
  manifestFile(dirName: string): string {
    return join(this.metaDir, `${dirName}.manifest.json`);
  }
  get partialsDir(): string {
    return join(this.metaDir, 'partials');
  }
  partialRecord(partialName: string): string {
    return join(this.partialsDir, partialName);
  }
}
