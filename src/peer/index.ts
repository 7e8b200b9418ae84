// The peer transport's public face: what src/node.ts and the CLUSTER commands import.

export { PeerTransport, peerLimitsDefault } from './transport.js';
export type { PeerLimits, PeerStats, PeerTransportOptions, TransportStats } from './transport.js';
export { PeerError, isPeerError } from './errors.js';
export type { PeerErrorCode } from './errors.js';
export type { TrafficCounters } from './connection.js';
