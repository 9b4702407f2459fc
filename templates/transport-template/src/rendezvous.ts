/**
 * Where rank 0 listens. Taken from TransportOptions.rendezvous (keys MASTER_ADDR and MASTER_PORT),
 * else from the MASTER_ADDR / MASTER_PORT variables that torchrun and most launchers set.
 */

export interface Rendezvous {
  readonly host: string;
  readonly port: number;
}

type Source = Readonly<Record<string, string | undefined>>;

/** The rendezvous, or why there is none (the probe reports that reason as-is). */
export function readRendezvous(
  explicit: Source | undefined,
  env: Source = process.env,
): Rendezvous | { readonly missing: string } {
  const host = explicit?.MASTER_ADDR ?? env.MASTER_ADDR;
  const portText = explicit?.MASTER_PORT ?? env.MASTER_PORT;
  if (!host || !portText) {
    return { missing: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)' };
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    return { missing: `MASTER_PORT=${JSON.stringify(portText)} is not a TCP port (1..65535)` };
  }
  return { host, port };
}
