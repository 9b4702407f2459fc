/**
 * The manifest: what a checkpoint version is made of. One entry per tensor of every safetensors
 * file (plus one for each file's header), one entry per other file. The on-disk layout is compact
 * (columnar, paths stored once) so a million entries load fast; this module is the in-memory view.
 */

export const MANIFEST_SCHEMA = 'hotweights.manifest' as const;

export type ManifestEntryKind = 'tensor' | 'header' | 'file';

export interface ManifestEntry {
  /** `<tensor>:<shard_rank>` */
  readonly key: string;
  readonly tensor: string;
  readonly shard_rank: number;
  readonly kind: ManifestEntryKind;
  /** File relative to the checkpoint root. */
  readonly file: string;
  readonly file_offset: number;
  readonly nbytes: number;
  readonly dtype: string | null;
  readonly shape: readonly number[] | null;
  /** `<algo>:<hex>` */
  readonly hash: string;
}

export interface ManifestFile {
  /** Relative, `/`-separated path inside the checkpoint root. */
  readonly path: string;
  readonly size: number;
  readonly kind: 'safetensors' | 'file';
}

export interface Manifest {
  readonly schema: typeof MANIFEST_SCHEMA;
  readonly version: string;
  readonly model_id: string | null;
  readonly created_at: string;
  /**
   * Absolute path of the directory that was published, where `plan` looks for the bytes by
   * default. Informational: not part of the digest (the same bytes elsewhere are the same version).
   */
  readonly checkpoint_root?: string | null;
  readonly hash_algo: string;
  readonly files: readonly ManifestFile[];
  /** Number of entries. */
  readonly size: number;
  /** Total bytes of all files. */
  readonly total_bytes: number;
  /** Entry at index i (0 <= i < size). */
  entry(index: number): ManifestEntry;
  /** Entry by key, or undefined. */
  get(key: string): ManifestEntry | undefined;
  /** Entries of one file ordered by file_offset; together they cover the whole file. */
  entriesOfFile(path: string): readonly ManifestEntry[];
  /** `sha256:<hex>` identifying the manifest's content. */
  readonly digest: string;
}
