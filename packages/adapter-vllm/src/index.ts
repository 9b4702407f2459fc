export {
  checkKvHeadMap,
  deriveKvHeadMap,
  type KvHeadLayout,
  type KvHeadOrder,
  kvGroupSize,
  parseKvHeadMap,
} from './kv-head-map.js';
export { type PayloadOptions, type PreparePayload, preparePayload } from './prepare-payload.js';
// `provider` is the name plugin discovery looks for.
export { vllmAdapterOptions, vllmAdapterProvider, vllmAdapterProvider as provider } from './provider.js';
export { VllmAdapter, type VllmAdapterOptions } from './vllm-adapter.js';
export { type PauseMode, VllmServer } from './vllm-server.js';
