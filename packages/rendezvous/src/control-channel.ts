/**
 * Rendezvous the torchrun way, and the small control channel it leaves behind, shared by the
 * socket-bootstrapped transports (ucx: worker addresses; nccl: rank 0's NCCL unique id). Rank 0
 * listens on MASTER_ADDR:MASTER_PORT; every other rank connects, says who it is and sends its
 * address bytes; once all have come, rank 0 hands everyone the table of addresses. The sockets
 * stay open afterwards as a star carrying three rare messages as JSON lines: an abort (relayed by
 * rank 0 to the others), a lost rank (rank 0 tells the others when a socket drops without a
 * goodbye) and a goodbye before a clean close. Bytes of buckets never travel here.
 *
 * A host or link that goes down closes nothing: its sockets just fall silent, and TCP would wait
 * for minutes. So both ends of every control socket ping once a second, and a peer silent for the
 * peer timeout (the transport's, e.g. HOTWEIGHTS_UCX_PEER_TIMEOUT_S) counts as lost, like one
 * whose socket dropped.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AddressExchange, type MasterAddress, TransportError } from '@hotweights/core';

export type RendezvousAddress = MasterAddress;

/** What travels on the control channel after the table. */
export type ControlMessage =
  | { readonly t: 'abort'; readonly key: string; readonly from: number; readonly reason: string }
  | { readonly t: 'lost'; readonly rank: number; readonly why?: string }
  | { readonly t: 'bye'; readonly rank: number };

type Wire =
  | ControlMessage
  | { readonly t: 'hello'; readonly rank: number; readonly worldSize: number; readonly address: string }
  | { readonly t: 'table'; readonly addresses: readonly string[] }
  | { readonly t: 'ready' | 'go' | 'ping' };

export interface ControlEvents {
  onMessage(message: ControlMessage): void;
  /**
   * A socket dropped without a goodbye, or fell silent (`why` says so): rank 0 sees each rank,
   * the others see rank 0.
   */
  onLost(rank: number, why?: string): void;
}

export interface JoinOptions {
  /** The transport's name, which starts every error message (`ucx: rank 2 could not …`). */
  readonly label: string;
  /** The settings that tune the retries, named when rank 0 cannot be reached. */
  readonly retryHint: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly address: Uint8Array;
  readonly retries: number;
  /** The longest pause between two attempts to reach rank 0 (the first pauses are shorter). */
  readonly retryDelayMs: number;
  /** How long rank 0 waits for every rank, and the others for the table. */
  readonly timeoutMs: number;
  /**
   * Meet through someone else's rendezvous (the coordinator's) instead of a fixed MASTER_PORT:
   * rank 0 listens on any free port of the given host, and every rank posts its UCX address (rank 0
   * also where it listens) to the exchange, which hands each rank the full table.
   */
  readonly exchange?: AddressExchange;
  /** With `exchange`: the address of this rank's bucket server (serve.ts), posted alongside. */
  readonly serveAddress?: Uint8Array;
}

/** What each rank posts to an AddressExchange: its UCX worker address, and rank 0's control socket. */
export interface Posted {
  readonly ucx: string;
  readonly control?: string;
  /** Its bucket server's UCX address, for ranks that fetch after the broadcasts. */
  readonly serve?: string;
}

export const UCX_ROUND = 'ucx';

export function parsePosted(value: string, rank: number): Posted {
  try {
    const p = JSON.parse(value) as Posted;
    if (typeof p.ucx === 'string') return p;
  } catch {
    // Not JSON: refused below, with what was posted.
  }
  throw new TransportError(
    `rendezvous: rank ${rank} posted ${JSON.stringify(value.slice(0, 80))}, not a worker address`,
  );
}

/** Every rank's bucket server address (empty where it posted none). */
export function serveTable(table: readonly Posted[]): Uint8Array[] {
  return table.map((p) => new Uint8Array(Buffer.from(p.serve ?? '', 'base64')));
}

async function exchangeAddresses(
  exchange: AddressExchange,
  o: JoinOptions,
  control?: RendezvousAddress,
): Promise<{ addresses: Uint8Array[]; hub: RendezvousAddress; serve: Uint8Array[] }> {
  const mine: Posted = {
    ucx: Buffer.from(o.address).toString('base64'),
    ...(control ? { control: `${control.host}|${control.port}` } : {}),
    ...(o.serveAddress ? { serve: Buffer.from(o.serveAddress).toString('base64') } : {}),
  };
  const table = (await exchange(UCX_ROUND, JSON.stringify(mine))).map(parsePosted);
  const [host, port] = (table[HUB]?.control ?? '').split('|');
  if (!host || !port) throw new TransportError('rendezvous: rank 0 posted no control address');
  return {
    addresses: table.map((p) => new Uint8Array(Buffer.from(p.ucx, 'base64'))),
    hub: { host, port: Number(port) },
    serve: serveTable(table),
  };
}

const HUB = 0;
/** How often each end of a control socket says it is alive. */
const PING_MS = 1000;
/** The first pause before dialling rank 0 again; each next one doubles, up to retryDelayMs. */
const FIRST_RETRY_MS = 10;

/**
 * The pause before attempt `attempt + 1` to reach rank 0. Ranks start together, so rank 0 is
 * usually moments from listening when a rank finds it is not: a full retryDelayMs then would be
 * most of an update's fixed cost (250 ms of ~0.6 s across two hosts). Doubling from 10 ms keeps
 * a late rank 0 from being dialled more than a few times a second.
 */
function retryPause(attempt: number, longestMs: number): number {
  return Math.min(longestMs, FIRST_RETRY_MS * 2 ** Math.min(attempt, 30));
}

function lines(sock: Socket, onLine: (message: Wire) => void): void {
  let buffered = '';
  sock.setEncoding('utf8');
  sock.on('data', (text: string) => {
    buffered += text;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        onLine(JSON.parse(line) as Wire);
      } catch {
        sock.destroy(); // not one of ours
      }
    }
  });
}

function write(sock: Socket, message: Wire): void {
  if (!sock.destroyed) sock.write(`${JSON.stringify(message)}\n`);
}

/** The star of control sockets, once every rank has joined. */
export class ControlChannel {
  /** Every rank's address bytes, by rank. */
  readonly addresses: readonly Uint8Array[];
  /** Every rank's bucket server address (met through an exchange; empty where none). */
  serveAddresses: readonly Uint8Array[] = [];
  readonly #rank: number;
  readonly #label: string;
  readonly #peers: Map<number, Socket>;
  readonly #server: Server | undefined;
  readonly #departed = new Set<number>();
  #events: ControlEvents | undefined;
  /** The start barrier: ranks that said ready (rank 0), and what to call when it lifts. */
  readonly #ready = new Set<number>();
  #barrier: { lift(): void; fail(err: Error): void } | undefined;
  /** Set once the start barrier has lifted; a rank lost before that fails `started()`. */
  #started = false;
  #lostBeforeStart: TransportError | undefined;
  /** When a line last came from each peer, and the timer that pings them and checks. */
  readonly #heard = new Map<number, number>();
  #pulse: NodeJS.Timeout | undefined;
  /** While rank 0 lingers in close(): ends the wait once no peer is left. */
  #alone: (() => void) | undefined;

  private constructor(
    label: string,
    rank: number,
    addresses: Uint8Array[],
    peers: Map<number, Socket>,
    server?: Server,
  ) {
    this.#label = label;
    this.#rank = rank;
    this.addresses = addresses;
    this.#peers = peers;
    this.#server = server;
  }

  /** Joins the job: every rank calls it; resolves when rank 0 has handed out the address table. */
  static async join(at: RendezvousAddress, options: JoinOptions): Promise<ControlChannel> {
    if (options.worldSize === 1) return new ControlChannel(options.label, 0, [options.address], new Map());
    if (options.rank === HUB) return ControlChannel.#host(at, options);
    if (!options.exchange) return ControlChannel.#dial(at, options);
    const { addresses, hub, serve } = await exchangeAddresses(options.exchange, options);
    const channel = await ControlChannel.#dial(hub, options, addresses);
    channel.serveAddresses = serve;
    return channel;
  }

  static async #host(at: RendezvousAddress, o: JoinOptions): Promise<ControlChannel> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new TransportError(`${o.label}: rank 0 cannot listen on ${at.host}:${at.port}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      server.listen({ host: at.host, port: at.port }, resolve);
    });
    server.on('error', () => {}); // accept errors after listening: the deadline reports them
    const peers = new Map<number, Socket>();
    let addresses: Uint8Array[] = [o.address];
    let serve: Uint8Array[] = [];
    let channel: ControlChannel | undefined;
    const early: [number, Wire][] = [];
    const bound = { host: at.host, port: (server.address() as { port: number }).port };
    try {
      const exchanged = o.exchange ? exchangeAddresses(o.exchange, o, bound) : undefined;
      exchanged?.catch(() => {}); // awaited below, after the others have connected
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new TransportError(
                `${o.label}: only ${peers.size + 1} of ${o.worldSize} ranks reached ${bound.host}:${bound.port} within ${o.timeoutMs} ms`,
              ),
            ),
          o.timeoutMs,
        );
        server.on('connection', (sock) => {
          sock.setNoDelay(true);
          sock.on('error', () => {}); // 'close' follows
          let peer = -1;
          lines(sock, (m) => {
            if (peer >= 0) {
              // With an exchange, a peer may have the table and say 'ready' before this rank has
              // read the exchange's answer: keep what comes early for the channel.
              if (channel) channel.#receive(peer, m);
              else early.push([peer, m]);
              return;
            }
            const valid =
              m.t === 'hello' &&
              m.worldSize === o.worldSize &&
              Number.isInteger(m.rank) &&
              m.rank > 0 &&
              m.rank < o.worldSize &&
              !peers.has(m.rank);
            if (!valid) return void sock.destroy(); // another job, a duplicate rank, a stray client
            peer = m.rank;
            peers.set(peer, sock);
            addresses[peer] = new Uint8Array(Buffer.from(m.address, 'base64'));
            if (peers.size < o.worldSize - 1) return;
            clearTimeout(timer);
            server.close(); // the job is complete: no late joiners
            const table = addresses.map((a) => Buffer.from(a).toString('base64'));
            for (const s of peers.values()) write(s, { t: 'table', addresses: table });
            resolve();
          });
          sock.on('close', () => {
            if (peer < 0 || peers.get(peer) !== sock) return;
            if (channel) channel.#dropped(peer);
            else early.push([peer, { t: 'lost', rank: peer }]);
          });
        });
        // A failed exchange (a rank never posted) ends the wait at once, with its reason.
        exchanged?.catch(reject);
      });
      if (exchanged) ({ addresses, serve } = await exchanged);
    } catch (err) {
      server.close();
      for (const s of peers.values()) s.destroy();
      throw err;
    }
    channel = new ControlChannel(o.label, HUB, addresses, peers, server);
    channel.serveAddresses = serve;
    for (const [peer, m] of early) {
      if (m.t === 'lost') channel.#dropped(peer);
      else channel.#receive(peer, m);
    }
    return channel;
  }

  /** `known`: the addresses the exchange gave (the hub's table then only says the job started). */
  static async #dial(at: RendezvousAddress, o: JoinOptions, known?: Uint8Array[]): Promise<ControlChannel> {
    let sock: Socket | undefined;
    for (let attempt = 0; !sock; attempt++) {
      try {
        sock = await dial(at);
      } catch (err) {
        // rank 0 may not be listening yet
        if (attempt >= o.retries) {
          throw new TransportError(
            `${o.label}: rank ${o.rank} could not reach rank 0 at ${at.host}:${at.port} after ${attempt + 1} attempts (${o.retryHint}): ${(err as Error).message}`,
            { cause: err },
          );
        }
        await sleep(retryPause(attempt, o.retryDelayMs));
      }
    }
    const hub = sock;
    hub.setNoDelay(true);
    hub.on('error', () => {}); // 'close' follows
    let channel: ControlChannel | undefined;
    let hungUp = false;
    const addresses = await new Promise<Uint8Array[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        hub.destroy();
        reject(
          new TransportError(
            `${o.label}: the job did not start within ${o.timeoutMs} ms (are all ${o.worldSize} ranks running?)`,
          ),
        );
      }, o.timeoutMs);
      lines(hub, (m) => {
        if (channel) return channel.#receive(HUB, m);
        if (m.t !== 'table') return;
        clearTimeout(timer);
        resolve(m.addresses.map((a) => new Uint8Array(Buffer.from(a, 'base64'))));
      });
      hub.on('close', () => {
        clearTimeout(timer);
        if (channel) return channel.#dropped(HUB);
        hungUp = true;
        reject(
          new TransportError(
            `${o.label}: rank 0 at ${at.host}:${at.port} hung up before the job started (does its WORLD_SIZE equal ${o.worldSize}? is rank ${o.rank} started twice?)`,
          ),
        );
      });
      write(hub, {
        t: 'hello',
        rank: o.rank,
        worldSize: o.worldSize,
        address: Buffer.from(o.address).toString('base64'),
      });
    });
    channel = new ControlChannel(o.label, o.rank, known ?? addresses, new Map([[HUB, hub]]));
    // Rank 0 may hang up in the same read as its table (it gave up at once), before the channel
    // existed to hear it: the loss must still fail the start barrier, not leave this rank waiting.
    if (hungUp) channel.#dropped(HUB);
    return channel;
  }

  /**
   * The start barrier, after every rank has created its endpoints: no rank may start (and perhaps
   * close and free what the peers connect to) while another still connects to it.
   */
  async started(timeoutMs: number): Promise<void> {
    // A rank that left while this one was still creating its endpoints is gone from #peers: the
    // barrier would otherwise lift without it (rank 0) or not wait at all (the others).
    if (this.#lostBeforeStart) throw this.#lostBeforeStart;
    if (this.#peers.size === 0) {
      this.#started = true;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new TransportError(
              `${this.#label}: rank ${this.#rank}: the ranks did not all connect within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      this.#barrier = {
        lift: () => {
          clearTimeout(timer);
          resolve();
        },
        fail: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      if (this.#rank === HUB) this.#maybeGo();
      else this.#send({ t: 'ready' }, this.#rank);
    });
    this.#barrier = undefined;
    this.#started = true;
  }

  #maybeGo(): void {
    if (!this.#barrier || this.#ready.size < this.#peers.size) return;
    this.#send({ t: 'go' }, HUB);
    this.#barrier.lift();
  }

  /**
   * Starts delivering events; the sockets no longer keep the process alive on their own. A peer
   * silent for `peerTimeoutMs` (0: never) is dropped as lost.
   */
  listen(events: ControlEvents, peerTimeoutMs = 0): void {
    this.#events = events;
    for (const s of this.#peers.values()) s.unref();
    if (peerTimeoutMs > 0 && this.#peers.size > 0) this.#startPulse(peerTimeoutMs);
  }

  #startPulse(timeoutMs: number): void {
    const every = Math.min(PING_MS, timeoutMs / 2);
    let last = Date.now();
    for (const peer of this.#peers.keys()) this.#heard.set(peer, last);
    this.#pulse = setInterval(() => {
      const now = Date.now();
      // A tick far behind schedule means this process stalled, not its peers: their pings are
      // still waiting unread in the sockets, so the silence is not theirs.
      const stalled = now - last > 2 * every + 250;
      last = now;
      for (const [peer, sock] of this.#peers) {
        write(sock, { t: 'ping' });
        const silent = now - (this.#heard.get(peer) ?? now);
        if (stalled) this.#heard.set(peer, now);
        else if (silent > timeoutMs) {
          sock.destroy();
          this.#dropped(
            peer,
            `nothing heard from it for ${(silent / 1000).toFixed(1)} s: its host or the link to it is down`,
          );
        }
      }
    }, every);
    this.#pulse.unref();
  }

  /** Tells the others (through rank 0) that this rank aborted the broadcast keyed `key`. */
  abort(key: string, reason: string): void {
    this.#send({ t: 'abort', key, from: this.#rank, reason }, this.#rank);
  }

  #send(message: Wire, except: number): void {
    for (const [peer, sock] of this.#peers) if (peer !== except) write(sock, message);
  }

  #receive(from: number, message: Wire): void {
    this.#heard.set(from, Date.now());
    if (message.t === 'ping') return;
    if (message.t === 'ready' && this.#rank === HUB) {
      this.#ready.add(from);
      this.#maybeGo();
      return;
    }
    if (message.t === 'go') {
      this.#barrier?.lift();
      return;
    }
    if (message.t !== 'abort' && message.t !== 'lost' && message.t !== 'bye') return;
    if (message.t === 'bye') this.#departed.add(message.rank);
    // Rank 0 relays what the others need to know: aborts and departures.
    if (this.#rank === HUB) this.#send(message, from);
    this.#events?.onMessage(message);
  }

  #dropped(peer: number, why?: string): void {
    this.#peers.delete(peer);
    if (this.#peers.size === 0) this.#alone?.();
    if (!this.#started) {
      this.#lostBeforeStart ??= new TransportError(
        `${this.#label}: rank ${peer} left before the job started`,
      );
      this.#barrier?.fail(this.#lostBeforeStart);
    }
    if (this.#departed.has(peer)) return;
    this.#departed.add(peer);
    if (this.#rank === HUB) this.#send({ t: 'lost', rank: peer, ...(why ? { why } : {}) }, peer);
    this.#events?.onLost(peer, why);
  }

  /**
   * Says goodbye and hangs up. Rank 0 first waits (up to `lingerMs`) for the others to leave, as
   * they may still relay aborts through it.
   */
  async close(lingerMs: number): Promise<void> {
    this.#events = undefined;
    clearInterval(this.#pulse);
    if (this.#rank === HUB && lingerMs > 0 && this.#peers.size > 0) {
      // Woken by the last peer's hang-up (#dropped), not by polling: rank 0 is the last process
      // of an update to exit, so every poll interval here was added to the update's time.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, lingerMs);
        this.#alone = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#alone = undefined;
    }
    for (const [peer, sock] of this.#peers) {
      this.#departed.add(peer);
      write(sock, { t: 'bye', rank: this.#rank });
      sock.end();
    }
    this.#peers.clear();
    this.#server?.close();
  }
}

function dial(at: RendezvousAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: at.host, port: at.port });
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', reject);
  });
}
