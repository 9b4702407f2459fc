// The entry of a worker thread started from TypeScript sources (worker-module.ts): registers tsx
// in this thread, then runs the module named by the last argument. Only used from sources; built
// packages start their compiled `.js` workers directly.
import { register } from 'tsx/esm/api';

register();
await import(process.argv[process.argv.length - 1]);
