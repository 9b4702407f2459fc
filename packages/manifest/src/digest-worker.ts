/**
 * The background digest check of mapped manifests (started by digest-check.ts): posts the digest
 * of the file's content, streamed from the file (binaryManifestFileDigest) or, where that does not
 * apply, from its decoded columns; the loading thread compares it with the stored one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  DIGEST_DONE,
  DIGEST_FAILED,
  type DigestReply,
  type DigestRequest,
  type DigestWorkerData,
} from './digest-check.js';
import { parseManifestBinary } from './manifest-binary.js';
import { computeManifestDigest } from './manifest-digest.js';
import { binaryManifestFileDigest } from './manifest-file-digest.js';
import { mapManifest } from './manifest-map.js';

const port = parentPort;
if (!port) throw new Error('digest-worker.ts runs as a worker thread (see digest-check.ts)');
const booted = new Int32Array((workerData as DigestWorkerData).booted);
Atomics.store(booted, 0, 1);
Atomics.notify(booted, 0);

/** The digest of the content of the binary manifest at `path`. */
async function contentDigest(path: string): Promise<string> {
  const streamed = binaryManifestFileDigest(path);
  if (streamed !== null) return streamed;
  const mapped = await mapManifest(path);
  if (!mapped) throw new Error(`${path} could not be mapped`);
  try {
    const m = parseManifestBinary(mapped.bytes, path, { lazyIndex: true });
    return computeManifestDigest(m, m.columns);
  } finally {
    mapped.unmap();
  }
}

port.on('message', async ({ path, signal, port: reply }: DigestRequest) => {
  let answer: DigestReply;
  try {
    answer = { digest: await contentDigest(path) };
  } catch (err) {
    answer = { error: (err as Error).message };
  }
  reply.postMessage(answer);
  reply.close();
  const slot = new Int32Array(signal);
  Atomics.store(slot, 0, 'digest' in answer ? DIGEST_DONE : DIGEST_FAILED);
  Atomics.notify(slot, 0);
});
