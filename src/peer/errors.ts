// Every error the peer transport hands to its callers, in one place. A request
// that gets no answer rejects with a PeerError whose `code` says why, so the
// cluster core (which treats every rejection as "no answer") and the CLUSTER
// commands (which show it to an operator) can both use it.

export type PeerErrorCode =
  /** No answer within the request's timeout. */
  | 'TIMEOUT'
  /** No connection: refused, dropped, failed its handshake, or in reconnect backoff. */
  | 'UNREACHABLE'
  /** Too many requests to this peer are already awaiting an answer (constants.peerInflightMax). */
  | 'OVERLOADED'
  /** No address is known for this node id (setAddress / connectTo first). */
  | 'UNKNOWN_PEER'
  /** The other side refused the handshake, or proved the wrong secret. */
  | 'HANDSHAKE'
  /** The address answers with our own node id. */
  | 'SELF'
  /** The request would not fit in one peer frame (constants.peerFrameBytesMax). */
  | 'TOO_LARGE'
  /** The peer answered with a frame we could not decode. */
  | 'BAD_RESPONSE'
  /** The transport was closed. */
  | 'CLOSED';

export class PeerError extends Error {
  override name = 'PeerError';
  constructor(
    readonly code: PeerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function isPeerError(e: unknown, code?: PeerErrorCode): e is PeerError {
  return e instanceof PeerError && (code === undefined || e.code === code);
}
