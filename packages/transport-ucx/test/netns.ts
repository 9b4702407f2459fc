/**
 * Several "hosts" on one machine for tests: network namespaces joined by a bridge. Each host is a
 * namespace with loopback up and one veth (`eth0`) whose other end sits on a bridge in a switch
 * namespace of its own, so nothing is added to the machine's own namespace and deleting the
 * namespaces removes every link. Each host has its own address, node id, staging dir, state dir
 * and target, and `env` says so (and pins UCX to TCP on `eth0`: the namespaces still share
 * /dev/shm, and UCX would otherwise pass bytes through shared memory, around the links).
 *
 * Names are `hwlab<pid>-…`: a lab left by a killed run (its pid is gone) is removed by the next
 * one; a lab removes itself on destroy() and, as a last resort, when its process exits or is
 * interrupted. Needs root (CI runs as root): create() fails saying why otherwise.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { processAlive } from '@hotweights/shm';

const PREFIX = 'hwlab';
/** The UCX/control port every host can use: each namespace has its own port space. */
export const LAB_PORT = 29500;

export interface LabHost {
  readonly index: number;
  /** Namespace name. */
  readonly ns: string;
  /** The host's interface inside its namespace. */
  readonly ifname: string;
  readonly address: string;
  readonly nodeId: string;
  readonly dir: string;
  readonly staging: string;
  readonly target: string;
  /** Environment for processes of this host: node id, staging, state dir, UCX over eth0. */
  readonly env: Readonly<Record<string, string>>;
}

export interface LabProcess {
  readonly child: ChildProcess;
  readonly done: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>;
  /** Calls `onLine` for each stderr line from now on. */
  onErrorLine(onLine: (line: string) => void): void;
  /** Calls `onLine` for each stdout line from now on. */
  onLine(onLine: (line: string) => void): void;
}

function ip(args: readonly string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`ip ${args.join(' ')} failed: ${stderr || (err as Error).message}`);
  }
}

function ownNamespaces(match: (ns: string) => boolean): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((ns) => ns.startsWith(PREFIX) && match(ns));
}

/** Kills what still runs inside `ns` (only our own processes ever run there), then deletes it. */
function removeNamespace(ns: string): void {
  try {
    for (const pid of ip(['netns', 'pids', ns]).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // It exited between listing and killing.
      }
    }
    ip(['netns', 'del', ns]);
  } catch (err) {
    // Already gone (another cleanup got there first) is fine; anything else is worth seeing.
    if (ownNamespaces((n) => n === ns).length > 0)
      process.stderr.write(`netns: could not remove ${ns}: ${(err as Error).message}\n`);
  }
}

/** Labs of runs that died without cleaning up (their creator's pid is gone). */
export function removeStaleLabs(): string[] {
  const stale = ownNamespaces((ns) => {
    const pid = Number(/^hwlab(\d+)-/.exec(ns)?.[1]);
    return Number.isInteger(pid) && pid !== process.pid && !processAlive(pid);
  });
  for (const ns of stale) removeNamespace(ns);
  return stale;
}

/** The machine's IPv4 routes, as [network, prefix length]. */
function routes(): [number, number][] {
  const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  return ip(['-4', 'route', 'show', 'table', 'all'])
    .split('\n')
    .map((l) => /^(?:\S+ )?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [toInt(m[1] as string), Number(m[2] ?? 32)]);
}

/** A 10.213.x.0/24 that no route of the machine covers or falls inside. */
function freeSubnet(): string {
  const taken = routes();
  for (let k = 0; k < 250; k++) {
    const x = (20 + ((process.pid + k) % 230)) % 256;
    const net = ((10 * 256 + 213) * 256 + x) * 256;
    const clash = taken.some(([addr, len]) => {
      const shorter = Math.min(len, 24);
      const mask = shorter === 0 ? 0 : (0xffffffff << (32 - shorter)) >>> 0;
      return (addr & mask) >>> 0 === (net & mask) >>> 0;
    });
    if (!clash) return `10.213.${x}`;
  }
  throw new Error('netns lab: every 10.213.x.0/24 overlaps a route of this machine');
}

/** A child's stream gathered whole and handed out line by line as it arrives. */
function lines(stream: Readable | null): { text(): string; onLine(listener: (line: string) => void): void } {
  let text = '';
  let partial = '';
  const listeners: ((line: string) => void)[] = [];
  stream?.setEncoding('utf8').on('data', (d: string) => {
    text += d;
    partial += d;
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      for (const l of listeners) l(line);
    }
  });
  return { text: () => text, onLine: (l) => void listeners.push(l) };
}

export class NetnsLab {
  readonly hosts: readonly LabHost[];
  readonly #switch: string;
  readonly #dir: string;
  readonly #children = new Set<ChildProcess>();
  readonly #onExit = () => this.#removeAll();
  readonly #onSignal = (signal: NodeJS.Signals) => {
    this.#removeAll();
    process.kill(process.pid, signal);
  };
  #destroyed = false;

  private constructor(hosts: LabHost[], sw: string, dir: string) {
    this.hosts = hosts;
    this.#switch = sw;
    this.#dir = dir;
    process.once('exit', this.#onExit);
    process.once('SIGINT', this.#onSignal);
    process.once('SIGTERM', this.#onSignal);
  }

  /** Builds `count` hosts (2..200) on one bridge. Throws saying why when namespaces are refused. */
  static create(count: number): NetnsLab {
    if (process.getuid?.() !== 0) {
      throw new Error(
        `netns lab: network namespaces need root (uid ${process.getuid?.()}); run the multi-host tests as root, as CI does`,
      );
    }
    removeStaleLabs();
    const tag = `${PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    const sw = `${tag}-sw`;
    const dir = mkdtempSync(join(tmpdir(), `${tag}-`));
    const made: string[] = [];
    try {
      const subnet = freeSubnet();
      ip(['netns', 'add', sw]);
      made.push(sw);
      ip(['-n', sw, 'link', 'set', 'lo', 'up']);
      ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', sw, 'link', 'set', 'br0', 'up']);
      const hosts: LabHost[] = [];
      for (let i = 0; i < count; i++) {
        const ns = `${tag}-h${i}`;
        ip(['netns', 'add', ns]);
        made.push(ns);
        ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        ip(['-n', sw, 'link', 'add', `h${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        ip(['-n', sw, 'link', 'set', `h${i}`, 'master', 'br0']);
        ip(['-n', sw, 'link', 'set', `h${i}`, 'up']);
        const address = `${subnet}.${i + 1}`;
        ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
        ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        const home = join(dir, `host${i}`);
        const host: LabHost = {
          index: i,
          ns,
          ifname: 'eth0',
          address,
          nodeId: `host${i}`,
          dir: home,
          staging: join(home, 'staging'),
          target: join(home, 'target'),
          env: {
            HOTWEIGHTS_NODE_ID: `host${i}`,
            HOTWEIGHTS_STAGING_DIR: join(home, 'staging'),
            HOTWEIGHTS_STATE_DIR: join(home, 'state'),
            HOTWEIGHTS_UCX_NET_DEVICES: 'eth0',
            UCX_TLS: 'tcp',
          },
        };
        mkdirSync(host.staging, { recursive: true });
        mkdirSync(host.target, { recursive: true });
        hosts.push(host);
      }
      return new NetnsLab(hosts, sw, dir);
    } catch (err) {
      for (const ns of made) removeNamespace(ns);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`netns lab: could not build ${count} hosts: ${(err as Error).message}`, { cause: err });
    }
  }

  host(i: number): LabHost {
    const h = this.hosts[i];
    if (!h) throw new Error(`netns lab: no host ${i}`);
    return h;
  }

  /** Runs `command` inside host `i`'s namespace with its env (plus `env`); killed at destroy(). */
  spawn(i: number, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): LabProcess {
    const h = this.host(i);
    const child = spawn('ip', ['netns', 'exec', h.ns, command, ...args], {
      env: { ...process.env, ...h.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    const out = lines(child.stdout);
    const err = lines(child.stderr);
    const done = new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      stdout: string;
      stderr: string;
    }>((resolve) =>
      child.on('close', (code, signal) => {
        this.#children.delete(child);
        resolve({ code, signal, stdout: out.text(), stderr: err.text() });
      }),
    );
    return { child, done, onLine: out.onLine, onErrorLine: err.onLine };
  }

  /** Runs a short command inside host `i`'s namespace and returns its stdout. */
  exec(i: number, command: string, args: readonly string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.host(i).ns, command, ...args], { encoding: 'utf8' });
  }

  /**
   * Resolves once something in host `i` listens on TCP `port` (read with `ss`), so a test can
   * start the other ranks only after rank 0 is there to be joined.
   */
  async listening(i: number, port: number, ms = 60_000): Promise<void> {
    const until = Date.now() + ms;
    while (this.exec(i, 'ss', ['-Hltn', `sport = :${port}`]).trim() === '') {
      if (Date.now() > until)
        throw new Error(`netns lab: nothing listens on port ${port} in host ${i} after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Pulls host `i`'s cable: its veth on the bridge goes down (the host sees no carrier). */
  linkDown(i: number): void {
    ip(['-n', this.#switch, 'link', 'set', `h${this.host(i).index}`, 'down']);
  }

  /**
   * Brings host `i`'s link back and returns once both ends report carrier (state UP) and no host
   * remembers it as unreachable: a test measures the update after the fault, not how fast the
   * kernel recovers from it.
   */
  async linkUp(i: number): Promise<void> {
    const h = this.host(i);
    ip(['-n', this.#switch, 'link', 'set', `h${h.index}`, 'up']);
    const up = () =>
      / state UP /.test(ip(['-n', this.#switch, '-o', 'link', 'show', `h${h.index}`])) &&
      / state UP /.test(ip(['-n', h.ns, '-o', 'link', 'show', 'eth0']));
    for (const deadline = Date.now() + 20_000; !up(); ) {
      if (Date.now() > deadline) throw new Error(`netns lab: host ${i}'s link never came back up`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Hosts that tried to reach host i while it was cut off hold a FAILED neighbour entry for it,
    // and connect() fails at once (EHOSTUNREACH) until the kernel retires the entry: forget them,
    // as a link that has been back for a while would have.
    for (const other of this.hosts) ip(['-n', other.ns, 'neigh', 'flush', 'dev', 'eth0']);
  }

  /**
   * Makes host `from` call host `to` unreachable for new TCP connections (connect() fails at once
   * with EHOSTUNREACH, as after a link came back while a FAILED neighbour entry lingers), except
   * for what it sends from `keepPort` (a control socket `to` connected to) on. `reachable` undoes it.
   */
  unreachable(from: number, to: number, keepPort: number): void {
    const { ns } = this.host(from);
    const dest = this.host(to).address;
    const proto = ['to', dest, 'ipproto', 'tcp'];
    ip(['-n', ns, 'rule', 'add', 'pref', '100', ...proto, 'sport', String(keepPort), 'lookup', 'main']);
    ip(['-n', ns, 'rule', 'add', 'pref', '101', ...proto, 'unreachable']);
  }

  reachable(from: number): void {
    const { ns } = this.host(from);
    for (const pref of ['101', '100']) ip(['-n', ns, 'rule', 'del', 'pref', pref]);
  }

  /** Caps what the bridge sends to host `i` (e.g. `8mbit`), so a transfer to it takes a while. */
  limitRate(i: number, rate: string): void {
    execFileSync('ip', [
      'netns',
      'exec',
      this.#switch,
      'tc',
      'qdisc',
      'replace',
      'dev',
      `h${i}`,
      'root',
      'tbf',
      'rate',
      rate,
      'burst',
      '32kb',
      'latency',
      '100ms',
    ]);
  }

  unlimitRate(i: number): void {
    execFileSync('ip', ['netns', 'exec', this.#switch, 'tc', 'qdisc', 'del', 'dev', `h${i}`, 'root']);
  }

  /** Kills what runs in the hosts, deletes every namespace (and so every link) and the dirs. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    const exits = [...this.#children].map((c) => new Promise((resolve) => c.once('close', resolve)));
    for (const c of this.#children) c.kill('SIGKILL');
    await Promise.all(exits);
    this.#removeAll();
  }

  /** Synchronous, so it also works from 'exit' and signal handlers. */
  #removeAll(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    process.off('exit', this.#onExit);
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
    for (const c of this.#children) c.kill('SIGKILL');
    for (const h of this.hosts) removeNamespace(h.ns);
    removeNamespace(this.#switch);
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Namespaces of this lab still present (for tests of the lab itself). */
  namespaces(): string[] {
    const names = new Set([this.#switch, ...this.hosts.map((h) => h.ns)]);
    return ownNamespaces((ns) => names.has(ns));
  }
}
