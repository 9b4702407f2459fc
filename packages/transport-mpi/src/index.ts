export { chunkBytes, MpiTransport } from './mpi-transport.js';
export { type LibraryProbe, loadNative, type NativeMpi, PACKAGE_ROOT } from './native.js';
export { probeMpi } from './probe.js';
export { provider, provider as default } from './provider.js';
export { MpiSession, type MpiWorld } from './session.js';
