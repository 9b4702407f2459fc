export { chainPosition, chunkRanges, tagOf } from './chain.js';
export { probeUcx } from './probe.js';
export { provider, provider as default } from './provider.js';
export { assumedLayout, loadUcp, UCP_LIBRARY } from './ucp.js';
export { UcxTransport } from './ucx-transport.js';
