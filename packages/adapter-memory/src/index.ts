export { MemoryAdapter } from './adapter-memory.js';
// `provider` is the name plugin discovery looks for.
export { memoryAdapterProvider, memoryAdapterProvider as provider } from './provider.js';
