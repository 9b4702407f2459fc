export { LocalTransport, localTransportProvider } from './local-transport.js';
export {
  isSegmentHandle,
  type SegmentHandle,
  SegmentHandleTransport,
  segmentHandleProvider,
} from './segment-handle-transport.js';
export { SelfTransport, selfTransportProvider } from './self-transport.js';
