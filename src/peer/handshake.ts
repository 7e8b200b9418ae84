// The first exchange on every peer connection (frames in protocol/peer.ts,
// prose in docs/peer.md): both sides name themselves and agree on a format
// version and, when a cluster secret is configured, each proves it knows the
// secret without sending it:
//
//   dialer                                   acceptor
//   hello(version, auth, id D, nonce nD)  ->
//                                         <- helloAck(version, auth, id A, nonce nA,
//                                                     proofA = HMAC(secret, "acceptor", v, nD, nA, D, A))
//   proof(proofD = HMAC(secret, "dialer", v, nD, nA, D, A)) ->
//                                         <- welcome
//
// Either side may answer `refuse(reason)` instead and close. Nothing but
// handshake frames is accepted until the exchange ends, and the whole
// exchange must finish within the handshake timeout.
//
// The steps are handled synchronously as frames arrive (not with awaits), so
// a connection is ready before the next frame of the same read is looked at.

import { randomBytes } from 'node:crypto';
import type { NodeId } from '../cluster/types.js';
import {
  HANDSHAKE_NONCE_BYTES,
  handshakeProof,
  PEER_FORMAT_VERSION,
  PEER_FORMAT_VERSION_MIN,
  proofMatches,
  type Handshake,
} from '../../protocol/peer.js';
import type { Connection } from './connection.js';
import { PeerError, type PeerErrorCode } from './errors.js';

export interface HandshakeOptions {
  selfId: NodeId;
  /** The cluster secret, or null for none (ids and version are still exchanged). */
  secret: Buffer | null;
  timeoutMs: number;
  /** Dialer only: the node we mean to reach; another id at that address fails the handshake. */
  expectedId?: NodeId | null;
}

/**
 * Runs the handshake on a fresh connection. Resolves with the other node's id
 * once the connection is ready; on any failure the connection is closed and
 * the promise rejects with a PeerError (HANDSHAKE, SELF or UNREACHABLE) whose
 * message says what to fix.
 */
export function runHandshake(conn: Connection, role: 'dialer' | 'acceptor', opts: HandshakeOptions): Promise<NodeId> {
  return new Promise<NodeId>((resolve, reject) => {
    const { selfId, secret } = opts;
    const nonce = randomBytes(HANDSHAKE_NONCE_BYTES);
    let settled = false;
    // What the dialer sent in hello, kept by the acceptor for the proof check.
    let dialerHello: Extract<Handshake, { step: 'hello' }> | null = null;
    let version = 0;
    /** The step we expect next from the other side. */
    let step: 'hello' | 'helloAck' | 'proof' | 'welcome' = role === 'dialer' ? 'helloAck' : 'hello';

    const timer = setTimeout(() => fail('HANDSHAKE', `handshake with ${conn.who} did not finish within ${opts.timeoutMs} ms`), opts.timeoutMs);

    const done = (remoteId: NodeId): void => {
      settled = true;
      clearTimeout(timer);
      conn.onHandshake = null;
      conn.setReady(remoteId);
      resolve(remoteId);
    };
    /** Fails locally; `refusal` (if any) is sent to the other side first so it can log why. */
    const fail = (code: PeerErrorCode, message: string, refusal?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.onHandshake = null;
      if (refusal !== undefined) {
        conn.sendHandshake({ step: 'refuse', reason: refusal });
        conn.close(message, { graceful: true });
      } else {
        conn.close(message);
      }
      reject(new PeerError(code, message));
    };

    conn.whenClosed((reason) => fail('UNREACHABLE', `connection to ${conn.who} closed during the handshake: ${reason}`));

    const negotiate = (theirs: number): boolean => {
      version = Math.min(PEER_FORMAT_VERSION, theirs);
      if (version >= PEER_FORMAT_VERSION_MIN) return true;
      const why = `peer format version ${theirs} is not supported (this node speaks ${PEER_FORMAT_VERSION_MIN}..${PEER_FORMAT_VERSION}); upgrade the older node`;
      fail('HANDSHAKE', `${conn.who}: ${why}`, why);
      return false;
    };

    conn.onHandshake = (hs: Handshake): void => {
      if (settled) return;
      if (hs.step === 'refuse') {
        const self = dialerHello !== null && dialerHello.nodeId === selfId;
        fail(self ? 'SELF' : 'HANDSHAKE', `${conn.who} refused the connection: ${hs.reason}`);
        return;
      }
      if (hs.step !== step) {
        fail('HANDSHAKE', `${conn.who} sent handshake step ${hs.step}, expected ${step}`, `expected ${step}`);
        return;
      }
      switch (hs.step) {
        // --- acceptor ---
        case 'hello': {
          if (!negotiate(hs.version)) return;
          if (secret !== null && !hs.auth) {
            fail('HANDSHAKE', `${conn.who} (node ${hs.nodeId}) has no cluster secret but this node requires one`, 'this node requires the cluster secret; configure the same secret on every node');
            return;
          }
          if (secret === null && hs.auth) {
            fail('HANDSHAKE', `${conn.who} (node ${hs.nodeId}) uses a cluster secret but this node has none`, 'this node has no cluster secret; configure the same secret on every node');
            return;
          }
          // A node dialing itself is let through to helloAck so the dialer sees its own id
          // and reports SELF; the proof step below refuses it on this side anyway.
          dialerHello = hs;
          const proof = secret === null ? null : handshakeProof(secret, 'acceptor', version, hs.nonce, nonce, hs.nodeId, selfId);
          conn.sendHandshake({ step: 'helloAck', version: PEER_FORMAT_VERSION, auth: secret !== null, nodeId: selfId, nonce, proof });
          step = 'proof';
          return;
        }
        case 'proof': {
          const hello = dialerHello!;
          if (hello.nodeId === selfId) {
            fail('SELF', `${conn.who} claims this node's own id ${selfId}`, 'you claim my node id');
            return;
          }
          if (secret !== null) {
            const expected = handshakeProof(secret, 'dialer', version, hello.nonce, nonce, hello.nodeId, selfId);
            if (!proofMatches(expected, hs.proof)) {
              fail('HANDSHAKE', `${conn.who} (claiming node ${hello.nodeId}) failed to prove the cluster secret`, 'wrong cluster secret');
              return;
            }
          }
          conn.sendHandshake({ step: 'welcome' });
          done(hello.nodeId);
          return;
        }
        // --- dialer ---
        case 'helloAck': {
          if (!negotiate(hs.version)) return;
          if (hs.nodeId === selfId) {
            fail('SELF', `${conn.who} is this node itself (node id ${selfId})`, 'connected to itself');
            return;
          }
          if (opts.expectedId && hs.nodeId !== opts.expectedId) {
            fail(
              'HANDSHAKE',
              `${conn.who} is node ${hs.nodeId}, not the expected ${opts.expectedId} (the address now belongs to another node)`,
              `expected node ${opts.expectedId}`,
            );
            return;
          }
          if (secret === null) {
            if (hs.auth) {
              fail('HANDSHAKE', `${conn.who} requires a cluster secret and this node has none`, 'this node has no cluster secret');
              return;
            }
            conn.sendHandshake({ step: 'proof', proof: null });
          } else {
            if (!hs.auth) {
              fail('HANDSHAKE', `${conn.who} has no cluster secret but this node requires one`, 'this node requires the cluster secret');
              return;
            }
            const expected = handshakeProof(secret, 'acceptor', version, nonce, hs.nonce, selfId, hs.nodeId);
            if (!proofMatches(expected, hs.proof)) {
              fail('HANDSHAKE', `${conn.who} (node ${hs.nodeId}) failed to prove the cluster secret`, 'wrong cluster secret');
              return;
            }
            conn.sendHandshake({ step: 'proof', proof: handshakeProof(secret, 'dialer', version, nonce, hs.nonce, selfId, hs.nodeId) });
          }
          conn.remoteId = hs.nodeId; // for messages until `welcome` makes it official
          step = 'welcome';
          return;
        }
        case 'welcome':
          done(conn.remoteId!);
          return;
      }
    };

    if (role === 'dialer') {
      conn.sendHandshake({ step: 'hello', version: PEER_FORMAT_VERSION, auth: secret !== null, nodeId: selfId, nonce });
    }
  });
}
