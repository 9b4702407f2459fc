/**
 * What an operator opens: the Grafana dashboard and the alert rules in `dashboards/`, checked
 * against a real Prometheus (Debian's `prometheus`, with `promtool`) scraping a real coordinator
 * and real workers during a real update. A dashboard query that names a metric nothing exports,
 * or that Prometheus cannot evaluate, fails the test.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fleet, makeFleet, startWorker, type WorkerProcess } from './coord-fixture.js';
import { type CoordProcess, freePort, startCoordProcess } from './coord-process.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const run = promisify(execFile);
const DASHBOARDS = join(REPO_ROOT, 'dashboards');
const FAST = { HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' };

interface Dashboard {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
}

interface PromAnswer<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
}

/** The queries of every panel, with Grafana's range variables set as Grafana would. */
function dashboardQueries(d: Dashboard): Array<{ panel: string; expr: string }> {
  return d.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      panel: p.title,
      expr: t.expr
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '5m')
        .replaceAll('$__interval', '15s'),
    })),
  );
}

describe('dashboards and alert rules', () => {
  it('the alert rules are valid and their unit tests pass (promtool)', async () => {
    const check = await run('promtool', ['check', 'rules', 'alerts.yml'], { cwd: DASHBOARDS });
    expect(check.stdout).toContain('SUCCESS: 5 rules found');
    const unit = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: DASHBOARDS });
    expect(unit.stdout).toContain('SUCCESS');
  });

  describe('a real Prometheus scraping a coordinator and two workers through an update', {
    timeout: 240_000,
  }, () => {
    let work = '';
    let fleet: Fleet;
    let coord: CoordProcess;
    const workers: WorkerProcess[] = [];
    let prometheus: ChildProcess | undefined;
    let promUrl = '';

    async function api<T>(path: string): Promise<PromAnswer<T>> {
      const res = await fetch(`${promUrl}${path}`);
      return (await res.json()) as PromAnswer<T>;
    }

    async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
      const deadline = Date.now() + ms;
      for (;;) {
        const got = await probe().catch(() => undefined);
        if (got !== undefined) return got;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }

    /** The value of a one-series instant query, or undefined while it has no series. */
    async function scalar(expr: string): Promise<number | undefined> {
      const r = await api<{ result: Array<{ value: [number, string] }> }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}`,
      );
      const first = r.data.result[0];
      return first ? Number(first.value[1]) : undefined;
    }

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'hw-prometheus-'));
      fleet = await makeFleet(2);
      coord = await startCoordProcess(FAST);
      for (const rank of [0, 1]) {
        const w = startWorker({
          rank,
          worldSize: 2,
          endpoint: coord.endpoint,
          pubEndpoint: coord.pubEndpoint,
          fleet,
          env: FAST,
        });
        workers.push(w);
        // The metrics line follows registration: wait for it, not just for the registration.
        await w.waitFor('registered as');
        await w.waitFor('worker metrics on');
      }
      const hostPort = (url: string) => new URL(url).host;
      const coordMetrics = /metrics (http:\/\/\S+)/.exec(coord.output())?.[1];
      const workerMetrics = workers.map((w) => /worker metrics on (http:\/\/\S+)/.exec(w.output())?.[1]);
      if (!coordMetrics || workerMetrics.some((u) => !u))
        throw new Error(
          `metrics URLs not printed:\n${coord.output()}\n${workers.map((w) => w.output()).join('\n')}`,
        );

      const config = join(work, 'prometheus.yml');
      await writeFile(
        config,
        [
          'global: { scrape_interval: 1s, evaluation_interval: 1s }',
          `rule_files: [${JSON.stringify(join(DASHBOARDS, 'alerts.yml'))}]`,
          'scrape_configs:',
          '  - job_name: hotweights',
          `    static_configs: [{ targets: [${JSON.stringify(hostPort(coordMetrics))}] }]`,
          '  - job_name: hotweights-workers',
          `    static_configs: [{ targets: [${workerMetrics.map((u) => JSON.stringify(hostPort(u as string))).join(', ')}] }]`,
          '',
        ].join('\n'),
      );
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      let log = '';
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(work, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      prometheus.stderr?.setEncoding('utf8').on('data', (d: string) => {
        log += d;
      });
      await until('Prometheus to be ready', async () => {
        if (prometheus?.exitCode !== null) throw new Error(`prometheus exited:\n${log}`);
        return (await fetch(`${promUrl}/-/ready`)).ok ? true : undefined;
      }).catch((err: Error) => {
        throw new Error(`${err.message}\n${log}`);
      });

      // A real update, then one refused RPC (an unknown version), so that the error counters the
      // dashboard plots exist as they would in any fleet that has seen a mistake.
      const env = { HOTWEIGHTS_COORD: coord.endpoint, ...FAST };
      const submitted = await runCli(['coord-submit-plan', '--plan', fleet.planV0], { env });
      expect(submitted.code).toBe(0);
      const begun = await runCli(['begin', '--version', 'v0', '--wait'], { env, timeoutMs: 120_000 });
      expect(begun.stdout).toContain('update v0: committed');
      const refused = await runCli(['commit', '--version', 'no-such-version'], { env });
      expect(refused.code).not.toBe(0);

      // Wait until Prometheus has scraped what the update left behind on every process (scrapes of
      // the three targets are not simultaneous).
      await until('the committed update on every process in Prometheus', async () => {
        const workersDone = await scalar('sum(hotweights_worker_updates_total{result="committed"})');
        const errors = await scalar('sum(hotweights_coord_rpc_errors_total)');
        return workersDone === 2 && errors ? true : undefined;
      });
    }, 240_000);

    afterAll(async () => {
      prometheus?.kill('SIGKILL');
      await Promise.all(workers.map((w) => w.kill('SIGKILL')));
      await coord?.stop('SIGKILL');
      await fleet?.cleanup();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('the update shows in the metrics the dashboard reads', async () => {
      expect(await scalar('sum(hotweights_coord_updates_total{result="committed"})')).toBe(1);
      // The local transport lands every bucket on both ranks: twice the checkpoint's bytes.
      const checkpointBytes = (
        await Promise.all(['a.bin', 'b.bin'].map((f) => stat(join(fleet.ckptA, f))))
      ).reduce((n, s) => n + s.size, 0);
      expect(await scalar('sum(hotweights_bytes_replicated_total{role="land"})')).toBe(2 * checkpointBytes);
      expect(await scalar('max(hotweights_coord_workers)')).toBe(2);
    });

    it('every dashboard query names only exported metrics and evaluates', async () => {
      const dashboard = JSON.parse(await readFile(join(DASHBOARDS, 'hotweights.json'), 'utf8')) as Dashboard;
      const names = new Set((await api<string[]>('/api/v1/label/__name__/values')).data);
      const queries = dashboardQueries(dashboard);
      expect(queries.length).toBeGreaterThanOrEqual(18);
      const unknown: string[] = [];
      const failed: string[] = [];
      for (const q of queries) {
        for (const name of q.expr.match(/\bhotweights_[a-z0-9_]+/g) ?? [])
          if (!names.has(name)) unknown.push(`${q.panel}: ${name}`);
        const r = await api<unknown>(`/api/v1/query?query=${encodeURIComponent(q.expr)}`);
        if (r.status !== 'success') failed.push(`${q.panel}: ${q.expr}: ${r.error}`);
      }
      expect(unknown, 'dashboard queries naming metrics nothing exports').toEqual([]);
      expect(failed, 'dashboard queries Prometheus cannot evaluate').toEqual([]);
    });

    it('Prometheus loads every alert rule and evaluates it without error', async () => {
      type Rules = {
        groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }>;
      };
      const rules = await until('a rule evaluation', async () => {
        const r = await api<Rules>('/api/v1/rules');
        const group = r.data.groups.find((g) => g.name === 'hotweights');
        return group?.rules.every((rule) => rule.health !== 'unknown') ? group.rules : undefined;
      });
      expect(rules.map((r) => [r.name, r.health, r.lastError ?? ''])).toEqual(
        [
          'HotweightsUpdateStuck',
          'HotweightsWorkerLost',
          'HotweightsWorkerCannotReachCoordinator',
          'HotweightsCommitFailed',
          'HotweightsVerifyFailures',
        ].map((name) => [name, 'ok', '']),
      );
      // Every metric a rule reads is exported by the fleet (a renamed metric would silence it).
      const names = new Set((await api<string[]>('/api/v1/label/__name__/values')).data);
      const ruleText = await readFile(join(DASHBOARDS, 'alerts.yml'), 'utf8');
      const read = [...new Set(ruleText.match(/\bhotweights_[a-z0-9_]+(?=[{[ )<>=]|$)/gm) ?? [])];
      expect(read.filter((n) => !names.has(n))).toEqual([]);
      expect(read.length).toBeGreaterThanOrEqual(7);
    });
  });
});
