/** A coordinator on loopback for a test, and its client; both closed by the test's `cleanups`. */
import { CoordinatorClient, CoordinatorServer } from '../src/index.js';

export type ServeOptions = Partial<Parameters<typeof CoordinatorServer.start>[0]>;

export async function serve(
  cleanups: Array<() => unknown>,
  opts: ServeOptions = {},
): Promise<{ server: CoordinatorServer; client: CoordinatorClient }> {
  const server = await CoordinatorServer.start({
    endpoint: 'tcp://127.0.0.1:0',
    pubEndpoint: 'tcp://127.0.0.1:0',
    ...opts,
  });
  cleanups.push(() => server.close());
  const client = new CoordinatorClient(server.endpoint, { timeoutMs: 10_000 });
  cleanups.push(() => client.close());
  return { server, client };
}
