export { LocalTransport, localTransportProvider } from './local-transport.js';
