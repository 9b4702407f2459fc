/**
 * Where rank 0 listens: TransportOptions.rendezvous (keys MASTER_ADDR and MASTER_PORT), else the
 * MASTER_ADDR / MASTER_PORT variables that torchrun and most launchers set. Core reads them the
 * same way for every transport that meets its peers through rank 0, so this template uses it.
 */
export { type MasterAddress as Rendezvous, readMasterAddress as readRendezvous } from '@hotweights/core';
