export { MemoryAdapter } from './adapter-memory.js';
