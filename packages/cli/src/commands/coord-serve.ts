import {
  CoordinatorServer,
  defaultPubEndpoint,
  isLoopbackEndpoint,
  metricsHostFor,
  openBackend,
} from '@hotweights/coordinator';
import { ConfigError } from '@hotweights/core';
import { createMetricsRegistry, startMetricsServer } from '@hotweights/runtime';
import type { CommandModule } from '../command.js';
import { onStop } from '../signals.js';

export const coordServeCommand: CommandModule = {
  name: 'coord-serve',
  register(program, ctx) {
    program
      .command('coord-serve')
      .description('Run the coordinator: requests on --endpoint, events on port + 1, metrics on :9100')
      .option(
        '--endpoint <url>',
        'where to listen, e.g. tcp://0.0.0.0:5555 (default: HOTWEIGHTS_COORD, else tcp://127.0.0.1:5555)',
      )
      .option('--pub-endpoint <url>', 'where to publish events (default: request port + 1)')
      .option('--backend <name>', 'state backend: memory or redis (default: HOTWEIGHTS_COORD_BACKEND)')
      .option('--metrics-port <port>', 'Prometheus metrics port (0: any free port, "off": none)', '9100')
      .option('--quiet', 'do not print events')
      .option(
        '--insecure',
        'listen on a non-loopback address without HOTWEIGHTS_COORD_TOKEN (anyone who reaches it can commit)',
      )
      .action(
        async (opts: {
          endpoint?: string;
          pubEndpoint?: string;
          backend?: string;
          metricsPort: string;
          quiet?: boolean;
          insecure?: boolean;
        }) => {
          const c = ctx();
          if (opts.backend !== undefined && opts.backend !== 'memory' && opts.backend !== 'redis') {
            throw new ConfigError(`--backend ${JSON.stringify(opts.backend)}: expected memory or redis`);
          }
          const endpoint = opts.endpoint ?? c.config.coordEndpoint ?? 'tcp://127.0.0.1:5555';
          const exposed = [endpoint, opts.pubEndpoint ?? defaultPubEndpoint(endpoint)].find(
            (e) => !isLoopbackEndpoint(e),
          );
          if (exposed && !c.config.coordToken) {
            if (!opts.insecure) {
              throw new ConfigError(
                `coord-serve on ${exposed} without a token: anyone who can reach it could submit and commit plans. Set HOTWEIGHTS_COORD_TOKEN (and give it to workers and the CLI), listen on 127.0.0.1, or pass --insecure on a network you trust`,
              );
            }
            c.err(`hotweights: warning: --insecure: ${exposed} accepts plans and commits from anyone`);
          }
          const registry = createMetricsRegistry({ component: 'coordinator' });
          const backend = await openBackend(c.config, opts.backend as 'memory' | 'redis' | undefined);
          const stamp = () => new Date().toISOString();
          const server = await CoordinatorServer.start({
            endpoint,
            pubEndpoint: opts.pubEndpoint,
            backend,
            token: c.config.coordToken,
            leaseS: c.config.leaseS,
            heartbeatS: c.config.heartbeatS,
            handleTtlS: c.config.handleTtlS,
            precommitReplyDelayMs: c.config.testPrecommitDelayMs,
            metricsRegistry: registry,
            log: opts.quiet ? undefined : (line) => c.err(`${stamp()} ${line}`),
          });
          let metricsUrl = 'off';
          let metrics: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
          if (opts.metricsPort !== 'off') {
            const port = Number(opts.metricsPort);
            if (!Number.isInteger(port) || port < 0 || port > 65535) {
              await server.close();
              throw new ConfigError(
                `--metrics-port ${JSON.stringify(opts.metricsPort)}: expected a port number or "off"`,
              );
            }
            try {
              metrics = await startMetricsServer(
                registry,
                port,
                c.config.metricsHost ?? metricsHostFor(server.endpoint, 'serving'),
              );
            } catch (err) {
              await server.close();
              throw err;
            }
            metricsUrl = metrics.url;
          }
          const st = server.service.status();
          // One parseable line: tests and scripts wait for it.
          c.out(
            `coordinator listening on ${server.endpoint} events ${server.pubEndpoint} backend ${backend.kind} auth ${c.config.coordToken ? 'token' : 'off'} metrics ${metricsUrl}`,
          );
          if (st.active)
            c.out(
              `recovered update ${st.active.version} (${st.active.state}) with ${st.workers.length} worker(s)`,
            );
          await new Promise<void>((resolve) => {
            onStop(() => resolve());
          });
          await server.close();
          await metrics?.close();
        },
      );
  },
};
