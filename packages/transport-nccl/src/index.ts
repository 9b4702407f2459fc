export { type LibraryProbe, loadNative, type NativeNccl, PACKAGE_ROOT } from './native.js';
export { chunkBytes, type NcclOpenOptions, NcclTransport } from './nccl-transport.js';
export { probeLibraries, probeNccl } from './probe.js';
export { provider, provider as default } from './provider.js';
