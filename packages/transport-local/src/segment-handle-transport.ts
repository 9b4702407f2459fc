/**
 * The `segment-handles` transport: a rank fills each bucket it consumes from the staging segment
 * of another rank on this host that already holds it (a shared-memory file, found e.g. through
 * the coordinator's node-scoped handles). It is how a worker that joined after the broadcasts
 * copies its share from a peer instead of re-reading the checkpoint. Nothing is sent: a broadcast
 * whose root is this rank leaves its bytes as they are. The Replicator still verifies every item
 * it lands, so a stale or wrong segment fails the update instead of committing bad bytes.
 */
import { open } from 'node:fs/promises';
import type { BroadcastRequest, Transport, TransportOptions, TransportProvider } from '@hotweights/core';
import { checkBroadcastRequest, TransportError } from '@hotweights/core';
import { abortReason } from './abort-reason.js';

/** Where a rank's staged bucket can be read on this host (its shared-memory segment file). */
export interface SegmentHandle {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  /** The rank that staged it. */
  readonly rank: number;
}

export function isSegmentHandle(v: unknown): v is SegmentHandle {
  const h = v as SegmentHandle | null;
  return (
    h !== null &&
    typeof h === 'object' &&
    typeof h.path === 'string' &&
    Number.isSafeInteger(h.offset) &&
    Number.isSafeInteger(h.length) &&
    Number.isSafeInteger(h.rank)
  );
}

export class SegmentHandleTransport implements Transport {
  readonly name = 'segment-handles';
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    /** Bucket id -> where its bytes are staged on this host. */
    private readonly handles: ReadonlyMap<number, SegmentHandle>,
  ) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new TransportError(`segment-handles transport: rank ${rank} is not in 0..${worldSize - 1}`);
  }

  async broadcast(req: BroadcastRequest): Promise<void> {
    if (req.signal?.aborted) throw abortReason(req.signal);
    checkBroadcastRequest(req, this.rank, this.worldSize);
    if (req.root === this.rank) return;
    const h = this.handles.get(req.bucketId);
    if (!h || h.length !== req.data.byteLength) {
      throw new TransportError(
        `segment-handles transport (rank ${this.rank}): no handle of ${req.data.byteLength} B for bucket ${req.bucketId}${h ? ` (the handle holds ${h.length} B)` : ''}`,
        { code: 'HW_TRANSPORT_HANDLE' },
      );
    }
    const fh = await open(h.path, 'r').catch((err: unknown) => {
      throw new TransportError(
        `segment-handles transport: cannot open the segment of rank ${h.rank} for bucket ${req.bucketId} (${h.path}): ${(err as Error).message}`,
        { cause: err, code: 'HW_TRANSPORT_HANDLE' },
      );
    });
    try {
      let done = 0;
      while (done < h.length) {
        if (req.signal?.aborted) throw abortReason(req.signal);
        const { bytesRead } = await fh.read(req.data, done, h.length - done, h.offset + done);
        if (bytesRead === 0) {
          throw new TransportError(
            `segment-handles transport: segment ${h.path} of rank ${h.rank} ends ${h.length - done} B before bucket ${req.bucketId} does`,
            { code: 'HW_TRANSPORT_HANDLE' },
          );
        }
        done += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {}
}

/** A provider over a fixed set of handles (for a TransportManager or the compliance suite). */
export function segmentHandleProvider(handles: ReadonlyMap<number, SegmentHandle>): TransportProvider {
  return {
    name: 'segment-handles',
    priority: 0,
    description: "copies buckets from peers' staging segments on this host",
    async probe() {
      return { available: true, detail: `${handles.size} handle(s)` };
    },
    async create(options: TransportOptions) {
      return new SegmentHandleTransport(options.rank, options.worldSize, handles);
    },
  };
}
