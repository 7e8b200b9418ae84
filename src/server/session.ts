// What a command handler knows about who is asking: the per-connection state
// (protocol version, authentication, name, consistency levels). A Client is a
// Session bound to a socket; a command forwarded from another node runs in a
// Session of its own, with no socket.

import type { KeyValue } from '../kv/keyvalue.js';
import type { Server } from './server.js';

/** Per-connection consistency override (CONSISTENCY command); undefined = the node's default. */
export interface QuorumOverride {
  r?: number;
  w?: number;
}

export class Session {
  readonly createdAtMs = Date.now();
  lastActiveMs = Date.now();
  name = '';
  libName = '';
  libVer = '';
  resp3 = false;
  authenticated: boolean;
  /** The last command run, for CLIENT LIST. */
  lastCommand = 'NULL';
  quorum: QuorumOverride = {};
  /** A command forwarded by another node: it runs here, never routed again. */
  forwarded = false;
  /** The KeyValue with this connection's consistency levels, when it chose its own. */
  #kv: KeyValue | undefined;

  constructor(
    readonly server: Server,
    readonly id: number,
  ) {
    this.authenticated = server.config.requirepass === undefined;
  }

  /** Where this connection's commands read and write. */
  get kv(): KeyValue {
    return this.#kv ?? this.server.kv!;
  }

  /** Chooses this connection's consistency levels (CONSISTENCY, forwarded commands). */
  setQuorum(source: { withQuorum(q: QuorumOverride): KeyValue }, q: QuorumOverride): void {
    this.quorum = q;
    this.#kv = q.r === undefined && q.w === undefined ? undefined : source.withQuorum(q);
  }

  /** This connection's levels, falling back to the node's. */
  quorumLevels(defaults: { r: number; w: number }): { r: number; w: number } {
    return { r: this.quorum.r ?? defaults.r, w: this.quorum.w ?? defaults.w };
  }

  setResp(resp3: boolean): void {
    this.resp3 = resp3;
  }

  setAuthenticated(ok: boolean): void {
    this.authenticated = ok;
  }

  /** Closes after the replies queued so far are sent (QUIT); nothing to close without a socket. */
  closeAfterReply(): void {}

  /** Closes now (CLIENT KILL). */
  kill(): void {}

  get addr(): string {
    return '';
  }

  get laddr(): string {
    return '';
  }

  get unsentBytes(): number {
    return 0;
  }

  get queryBufferBytes(): number {
    return 0;
  }
}
