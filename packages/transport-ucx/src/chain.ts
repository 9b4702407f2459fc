/**
 * The shape of one pipelined chain broadcast: who comes before and after this rank, how the bucket
 * splits into chunks, and the 64-bit UCX tag of every message. Pure functions, no UCX.
 *
 * The chain starts at the root and visits the other participants in rank order (wrapping around),
 * so the root sends each byte once, every other rank receives it once and forwards it at most
 * once, whatever the number of consumers. The last rank acknowledges to the root.
 */

export interface ChainPosition {
  readonly previous: number | undefined;
  readonly next: number | undefined;
  readonly last: number;
}

/** Where `rank` sits in the chain of `ranks` (sorted) rooted at `root`. */
export function chainPosition(ranks: readonly number[], root: number, rank: number): ChainPosition {
  const start = ranks.indexOf(root);
  const order = [...ranks.slice(start), ...ranks.slice(0, start)];
  const at = order.indexOf(rank);
  return { previous: order[at - 1], next: order[at + 1], last: order[order.length - 1] as number };
}

/** Byte ranges of the chunks (at least one, possibly empty, so a 0-byte bucket still travels). */
export function chunkRanges(size: number, chunkBytes: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (let start = 0; start < size; start += chunkBytes)
    out.push({ start, end: Math.min(size, start + chunkBytes) });
  if (out.length === 0) out.push({ start: 0, end: 0 });
  return out;
}

// Tag layout, high bit first: kind 1 | root 12 | seq 8 | bucket id 24 | chunk 19.
const KIND_BITS = 1n;
const ROOT_BITS = 12n;
const SEQ_BITS = 8n;
const BUCKET_BITS = 24n;
const CHUNK_BITS = 19n;
export const MAX_RANKS = 1 << Number(ROOT_BITS);
export const MAX_BUCKET_ID = (1 << Number(BUCKET_BITS)) - 1;
export const MAX_CHUNKS = 1 << Number(CHUNK_BITS);

export const TagKind = { Data: 0, Ack: 1 } as const;
export type TagKind = (typeof TagKind)[keyof typeof TagKind];

/**
 * The tag of chunk `chunk` (or of the acknowledgement) of the `seq`-th broadcast of (`root`,
 * `bucketId`) this rank issued. Sequence numbers wrap at 256: only broadcasts 256 reuses apart of
 * the same bucket could meet, and the window never holds that many.
 */
export function tagOf(kind: TagKind, root: number, seq: number, bucketId: number, chunk: number): bigint {
  let tag = BigInt(kind);
  tag = (tag << ROOT_BITS) | BigInt(root);
  tag = (tag << SEQ_BITS) | BigInt(seq & 0xff);
  tag = (tag << BUCKET_BITS) | BigInt(bucketId);
  tag = (tag << CHUNK_BITS) | BigInt(chunk);
  return tag & ((1n << (KIND_BITS + ROOT_BITS + SEQ_BITS + BUCKET_BITS + CHUNK_BITS)) - 1n);
}
