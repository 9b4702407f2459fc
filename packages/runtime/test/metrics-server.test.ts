import { HotweightsError } from '@hotweights/core';
import { createMetricsRegistry, startMetricsServer } from '@hotweights/runtime';
import { Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';

describe('metrics server', () => {
  it('serves the registry in Prometheus text format and 404s elsewhere', async () => {
    const registry = createMetricsRegistry({ component: 'test' });
    const c = new Counter({ name: 'hotweights_test_total', help: 'test counter', registers: [registry] });
    c.inc(3);
    const server = await startMetricsServer(registry, 0, '127.0.0.1');
    try {
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('hotweights_test_total{component="test"} 3');
      expect((await fetch(server.url.replace('/metrics', '/other'))).status).toBe(404);
      await expect(startMetricsServer(registry, server.port, '127.0.0.1')).rejects.toThrowError(
        HotweightsError,
      );
    } finally {
      await server.close();
    }
  });
});
