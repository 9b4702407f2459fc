/**
 * The background digest check of mapped manifests (started by digest-check.ts): maps the file,
 * decodes its columns and posts the digest of its content; the loading thread compares it with
 * the stored one.
 */
import { parentPort } from 'node:worker_threads';
import { DIGEST_DONE, DIGEST_FAILED, type DigestReply, type DigestRequest } from './digest-check.js';
import { parseManifestBinary } from './manifest-binary.js';
import { computeManifestDigest } from './manifest-digest.js';
import { mapManifest } from './manifest-map.js';

const port = parentPort;
if (!port) throw new Error('digest-worker.ts runs as a worker thread (see digest-check.ts)');

port.on('message', async ({ path, signal, port: reply }: DigestRequest) => {
  let answer: DigestReply;
  let mapped: Awaited<ReturnType<typeof mapManifest>> = null;
  try {
    mapped = await mapManifest(path);
    if (!mapped) throw new Error(`${path} could not be mapped`);
    const m = parseManifestBinary(mapped.bytes, path, { lazyIndex: true });
    answer = { digest: computeManifestDigest(m, m.columns) };
  } catch (err) {
    answer = { error: (err as Error).message };
  } finally {
    mapped?.unmap();
  }
  reply.postMessage(answer);
  reply.close();
  const slot = new Int32Array(signal);
  Atomics.store(slot, 0, 'digest' in answer ? DIGEST_DONE : DIGEST_FAILED);
  Atomics.notify(slot, 0);
});
