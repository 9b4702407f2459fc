/**
 * The progress engine sleeps on the worker's event fd while nothing moves (issue: a rank waiting
 * on a slow link burned a whole core). Two real UCP workers in this process, over TCP on loopback.
 * CPU is what is asserted, not wall time: a loaded machine slows the clock-bound parts, but does
 * not make this process burn more CPU.
 */
import { randomFillSync } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '@hotweights/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadUcp } from '../src/ucp.js';
import { UcpWorker } from '../src/worker.js';

const { ucp, error } = loadUcp();
if (!ucp) throw new Error(`UCX is needed for this test: ${error}`);

let sender: UcpWorker;
let receiver: UcpWorker;
const RECEIVER = 1;

beforeAll(async () => {
  process.env.UCX_TLS = 'tcp';
  sender = UcpWorker.open(ucp, { netDevices: 'lo' });
  receiver = UcpWorker.open(ucp, { netDevices: 'lo' });
  sender.connect(RECEIVER, receiver.address);
  // One message first, so the endpoint's wire-up is over before anything is measured.
  const warm = receiver.recv(new Uint8Array(1), 1n, 'warm-up receive');
  await sender.send(RECEIVER, new Uint8Array([1]), 1n, 'warm-up send').done;
  await warm.done;
});

afterAll(async () => {
  await sender?.close();
  await receiver?.close();
});

const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

describe('the progress engine while nothing moves', () => {
  it('sleeps on the event fd: a receive with no sender for 1 s costs well under a core, then lands the bytes', async () => {
    expect(receiver.wakeup).toBe(true);
    const buffer = new Uint8Array(4 << 20);
    const received = receiver.recv(buffer, 7n, 'waiting receive');
    const before = process.cpuUsage();
    await sleep(1000);
    const idle = cpuSeconds(before);
    // Spinning costs ~1 CPU-second per second here; asleep, the 1 ms idle tick is what remains.
    // (A loaded machine only lowers this figure, so the bound holds under any load.)
    expect(idle).toBeLessThan(0.3);

    const data = randomFillSync(new Uint8Array(buffer.byteLength));
    const sent = sender.send(RECEIVER, data, 7n, 'late send');
    const length = await received.done;
    await sent.done;
    expect(length).toBe(data.byteLength);
    expect(Buffer.from(buffer).equals(Buffer.from(data))).toBe(true);
  });

  it('spins as before with a long HOTWEIGHTS_UCX_SPIN_US: the same wait never arms the worker', async () => {
    // Counted through the real library: how the engine waits, which CPU time under load cannot say
    // (a spinning engine given a tenth of a core still burns all of it, but only a tenth).
    const calls = { arm: 0, progress: 0 };
    const counted: typeof ucp = {
      ...ucp,
      workerArm: (w) => {
        calls.arm++;
        return ucp.workerArm(w);
      },
      workerProgress: (w) => {
        calls.progress++;
        return ucp.workerProgress(w);
      },
    };
    const wait = async (spinUs: number | undefined) => {
      calls.arm = 0;
      calls.progress = 0;
      const worker = UcpWorker.open(counted, {
        netDevices: 'lo',
        ...(spinUs === undefined ? {} : { spinUs }),
      });
      try {
        const received = worker.recv(new Uint8Array(16), 10n, 'counted receive');
        await sleep(500);
        received.cancel();
        await expect(received.done).rejects.toThrow(/counted receive/);
        return { ...calls };
      } finally {
        await worker.close();
      }
    };
    const { ucxSpinUs } = loadConfig({ HOTWEIGHTS_UCX_SPIN_US: '1000000000' });
    const spinning = await wait(ucxSpinUs);
    const sleeping = await wait(undefined);
    expect(spinning.arm).toBe(0);
    expect(sleeping.arm).toBeGreaterThan(0);
    // Asleep, progress runs on the 1 ms idle tick and after each poll; spinning, every few hundred ns.
    expect(spinning.progress).toBeGreaterThan(10 * sleeping.progress);
  });

  it('spins where it cannot wait on the event fd (no poll bound), and still moves the bytes', async () => {
    const { waitReadable: _, ...withoutPoll } = ucp;
    const spinner = UcpWorker.open(withoutPoll, { netDevices: 'lo' });
    try {
      expect(spinner.wakeup).toBe(false);
      const buffer = new Uint8Array(1 << 20);
      const received = spinner.recv(buffer, 11n, 'receive without wakeup');
      sender.connect(2, spinner.address);
      const data = randomFillSync(new Uint8Array(buffer.byteLength));
      await sender.send(2, data, 11n, 'send to the spinning worker').done;
      expect(await received.done).toBe(data.byteLength);
      expect(Buffer.from(buffer).equals(Buffer.from(data))).toBe(true);
    } finally {
      await spinner.close();
    }
  });

  it('settles a receive cancelled while asleep', async () => {
    const received = receiver.recv(new Uint8Array(16), 8n, 'receive to cancel');
    await sleep(50); // asleep by now
    received.cancel();
    await expect(received.done).rejects.toThrow(/receive to cancel: .*UCX status -16/);
  });

  it('closes a worker asleep on a pending receive (its poll woken) and rejects the receive', async () => {
    const lone = UcpWorker.open(ucp, { netDevices: 'lo' });
    const received = lone.recv(new Uint8Array(16), 9n, 'receive at close');
    await sleep(50);
    await lone.close();
    await expect(received.done).rejects.toThrow(/receive at close/);
  });
});
