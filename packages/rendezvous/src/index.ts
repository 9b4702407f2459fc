export {
  ControlChannel,
  type ControlEvents,
  type ControlMessage,
  type JoinOptions,
  type Posted,
  parsePosted,
  type RendezvousAddress,
  serveTable,
  UCX_ROUND,
} from './control-channel.js';
