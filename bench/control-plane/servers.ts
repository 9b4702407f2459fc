/**
 * Child process of the control-plane benchmark: the coordinator (memory or Redis backend) and, beside it,
 * a raw ZeroMQ ROUTER that echoes every request unparsed: the floor any RPC over ZeroMQ pays.
 * Prints one JSON line with the endpoints, then serves until killed.
 */
import { CoordinatorServer, RedisBackend } from '@hotweights/coordinator';
import { Router } from 'zeromq';

// argv[2]: a Redis URL to use the Redis backend (write-through on every change), else memory.
const redisUrl = process.argv[2];
const server = await CoordinatorServer.start({
  backend: redisUrl
    ? await RedisBackend.connect({ url: redisUrl, namespace: `bench:${process.pid}:` })
    : undefined,
  endpoint: 'tcp://127.0.0.1:0',
  pubEndpoint: 'tcp://127.0.0.1:0',
  leaseS: 600,
  heartbeatS: 1,
});
const raw = new Router({ linger: 0, sendTimeout: 0 });
await raw.bind('tcp://127.0.0.1:*');
process.stdout.write(
  `${JSON.stringify({ endpoint: server.endpoint, pubEndpoint: server.pubEndpoint, raw: raw.lastEndpoint })}\n`,
);
for await (const frames of raw) await raw.send(frames);
