/**
 * Child process of the control-plane benchmark: N simulated workers (ranks FIRST..FIRST+N-1), each
 * with its own DEALER client and SUB socket (subscribed to `begin`), like real worker processes. On every `begin` event a
 * worker fetches the plan and precommits with the digest of its share; no bytes move, so what is
 * measured is the control plane alone.
 * Usage: sim-workers.ts ENDPOINT PUB_ENDPOINT FIRST N WORLD
 */
import { CoordinatorClient, EventSubscriber, expectedDigest } from '@hotweights/coordinator';

const [endpoint, pubEndpoint, firstText, countText, worldText] = process.argv.slice(2);
const first = Number(firstText);
const count = Number(countText);
const world = Number(worldText);

const workers = await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const rank = first + i;
    const client = new CoordinatorClient(endpoint as string, { timeoutMs: 30_000 });
    const reg = await client.call<{ worker_id: string; lease_key: string }>('register', {
      rank,
      world_size: world,
      node_id: 'sim',
    });
    const sub = new EventSubscriber(
      pubEndpoint as string,
      (e) => {
        if (e.event !== 'begin' || typeof e.version !== 'string') return;
        const version = e.version;
        void (async () => {
          const { plan } = await client.getPlan(version);
          await client.precommit({
            version,
            rank,
            digest: expectedDigest(plan, rank),
            workerId: reg.worker_id,
            leaseKey: reg.lease_key,
          });
        })().catch((err: unknown) => process.stderr.write(`rank ${rank}: ${(err as Error).message}\n`));
      },
      { topics: ['begin'] },
    ); // as the real worker does: only the events that matter to it
    return { client, sub };
  }),
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  for (const w of workers) {
    w.sub.close();
    w.client.close();
  }
  process.exit(0);
});
