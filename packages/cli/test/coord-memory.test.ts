/**
 * A peer without the token cannot make a real `hotweights coord-serve` hold more than a few MiB:
 * 16 raw connections each announce and stream a 200 MiB frame, and 16 clients with a wrong token
 * try to submit an 8 MB plan, all at once. The coordinator's peak RSS (VmHWM) grows by less than
 * BOUND_MIB and it keeps serving; the token holder's large plan goes through.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { CoordinatorClient } from '@hotweights/coordinator';
import type { CoordinatorError } from '@hotweights/core';
import { afterEach, describe, expect, it } from 'vitest';
import { makePlan } from '../../coordinator/test/plans.js';
import { type CoordProcess, startCoordProcess } from './coord-process.js';

const TOKEN = 'memory-test-token';
const FRAME_MIB = 200;
const PEERS = 16;
/** Peak RSS growth allowed over the idle coordinator's (32 hostile connections: 2 MiB each). */
const BOUND_MIB = 64;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function statusMib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** ZMTP 3.0 by hand: a NULL-mechanism DEALER that announces one `mib` MiB frame and streams it. */
function floodFrame(port: number, mib: number): Promise<number> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const greeting = Buffer.alloc(64);
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting.write('NULL', 12, 'ascii');
    const prop = (name: string, value: string) => {
      const b = Buffer.alloc(1 + name.length + 4 + value.length);
      b[0] = name.length;
      b.write(name, 1, 'ascii');
      b.writeUInt32BE(value.length, 1 + name.length);
      b.write(value, 5 + name.length, 'ascii');
      return b;
    };
    const readyBody = Buffer.concat([Buffer.from('\x05READY', 'latin1'), prop('Socket-Type', 'DEALER')]);
    const header = Buffer.alloc(9);
    header[0] = 0x02; // long frame, last part
    header.writeBigUInt64BE(BigInt(mib) * 1024n * 1024n, 1);
    const chunk = Buffer.alloc(1024 * 1024, 0x7b);
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(sent);
    };
    sock.on('error', finish);
    sock.on('close', finish);
    sock.on('data', () => {}); // the server's greeting, READY and any reply
    sock.on('connect', async () => {
      sock.write(greeting);
      sock.write(Buffer.concat([Buffer.from([0x04, readyBody.length]), readyBody]));
      sock.write(header);
      for (let i = 0; i < mib && !done; i++) {
        sent++;
        if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
      }
      // Sent everything (the old server takes it all): give it time to buffer, then hang up.
      setTimeout(finish, 2000);
    });
  });
}

describe('coordinator memory under unauthenticated load', () => {
  it(`holds < ${BOUND_MIB} MiB more for ${PEERS} parallel ${FRAME_MIB} MiB frames and wrong-token uploads`, async () => {
    const coord: CoordProcess = await startCoordProcess({ HOTWEIGHTS_COORD_TOKEN: TOKEN });
    cleanups.push(() => coord.stop('SIGKILL'));
    const pid = coord.child.pid ?? 0;
    const port = Number(coord.endpoint.split(':').pop());
    const right = new CoordinatorClient(coord.endpoint, { token: TOKEN, timeoutMs: 60_000 });
    cleanups.push(() => right.close());
    await right.ping();
    const idle = statusMib(pid, 'VmRSS');

    const buckets = Array.from({ length: 25_000 }, (_, id) => ({ id, consumers: [0] }));
    const plan = makePlan({ version: 'big', buckets }); // ~8 MB of JSON: several parts
    const wrong = Array.from({ length: PEERS }, () => {
      const c = new CoordinatorClient(coord.endpoint, { token: 'not-the-token', timeoutMs: 60_000 });
      cleanups.push(() => c.close());
      return c;
    });
    const [streamed, refusals] = await Promise.all([
      Promise.all(Array.from({ length: PEERS }, () => floodFrame(port, FRAME_MIB))),
      Promise.all(
        wrong.map((c) =>
          c.submitPlan(plan).then(
            () => 'accepted',
            (e: CoordinatorError) => e.code,
          ),
        ),
      ),
    ]);
    const peak = statusMib(pid, 'VmHWM');
    console.log(`coordinator VmRSS idle ${idle.toFixed(1)} MiB, VmHWM under load ${peak.toFixed(1)} MiB`);
    expect(peak - idle).toBeLessThan(BOUND_MIB);
    // Each raw peer was cut off long before its frame's end; no wrong-token upload was accepted.
    expect(streamed.every((mib) => mib < FRAME_MIB)).toBe(true);
    expect(new Set(refusals)).toEqual(new Set(['HW_COORD_UNAUTHORIZED']));

    // Still serving, and the token holder's large plan is accepted in parts.
    expect((await right.submitPlan(plan)).version).toBe('big');
    expect((await right.getPlan('big')).plan.buckets.length).toBe(25_000);
    expect(coord.output()).toMatch(/refused upload from peer [0-9a-f]+: HW_COORD_UNAUTHORIZED/);
    expect(coord.output()).not.toContain(TOKEN);
  }, 120_000);
});
