/**
 * Whether the UCX transport can run here. Never throws. It needs a rendezvous (MASTER_ADDR and
 * MASTER_PORT, as torchrun sets, or the coordinator's when `ctx.exchange`), libucp >= 1.12, and a UCX context that finds a usable transport
 * (honouring UCX_TLS and HOTWEIGHTS_UCX_NET_DEVICES): the probe creates and frees one context,
 * which opens no connection and sends nothing. The library check is cached per process.
 */
import { type ProbeContext, type ProbeResult, readMasterAddress } from '@hotweights/core';
import { loadUcp, MIN_UCX, UCP_LIBRARY } from './ucp.js';
import { createContext } from './worker.js';

const contexts = new Map<string, string | undefined>();

export function probeUcx(ctx: ProbeContext, rendezvous?: Readonly<Record<string, string>>): ProbeResult {
  try {
    // A fleet meeting through the coordinator needs no MASTER_ADDR: addresses travel through it.
    const at = ctx.exchange ? undefined : readMasterAddress(rendezvous);
    if (at && 'missing' in at) return { available: false, reason: at.missing };
    const { ucp, error } = loadUcp();
    if (!ucp) return { available: false, reason: error ?? `${UCP_LIBRARY} could not be opened` };
    const { major, minor, release } = ucp.version;
    const version = `UCX ${major}.${minor}.${release}`;
    if (major < MIN_UCX.major || (major === MIN_UCX.major && minor < MIN_UCX.minor)) {
      return {
        available: false,
        reason: `${version} is too old: the ucx transport needs UCX >= ${MIN_UCX.major}.${MIN_UCX.minor}`,
      };
    }
    const devices = ctx.config.ucxNetDevices;
    const key = `${devices ?? ''}|${process.env.UCX_TLS ?? ''}`;
    if (!contexts.has(key)) {
      try {
        ucp.cleanup(createContext(ucp, { netDevices: devices }));
        contexts.set(key, undefined);
      } catch (err) {
        contexts.set(key, (err as Error).message);
      }
    }
    const failed = contexts.get(key);
    if (failed) {
      return {
        available: false,
        reason: `${version} has no usable transport (${failed}); check UCX_TLS and HOTWEIGHTS_UCX_NET_DEVICES`,
      };
    }
    const where = !at
      ? 'addresses through the coordinator'
      : ctx.rank === 0
        ? `rank 0 listens on ${at.host}:${at.port}`
        : `rank 0 at ${at.host}:${at.port}`;
    return { available: true, detail: `${version}, ${ctx.worldSize} ranks, ${where}` };
  } catch (err) {
    return { available: false, reason: `probing UCX failed: ${(err as Error).message}` };
  }
}
