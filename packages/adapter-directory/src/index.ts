export { DirectoryAdapter, type DirectoryAdapterOptions } from './directory-adapter.js';
export { safeVersion, TargetLayout } from './layout.js';
