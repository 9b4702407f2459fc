export { DirectoryAdapter, type DirectoryAdapterOptions } from './directory-adapter.js';
export { safeVersion, TargetLayout } from './layout.js';
// `provider` is the name plugin discovery looks for.
export { directoryAdapterProvider, directoryAdapterProvider as provider } from './provider.js';
