// One client connection: reads requests, runs them strictly in order through
// the dispatcher, and sends replies in order with as few socket writes as it
// can. Replies to writes leave only after the store says those writes are
// durable (group commit: one wait covers every write of a batch, across all
// clients, see SegmentStore.whenDurable).
//
// Flow control: while a command is in flight (a cold read, a quorum round)
// later requests wait in the parser; when unsent replies pass
// replyBufferBytesHigh, or too many unparsed bytes pile up behind an in-flight
// command, the socket stops being read until it drains.

import type { Socket } from 'node:net';
import { ErrorReply, ProtocolError, type Reply, ReplyWriter, RequestParser } from '../../protocol/resp.js';
import { replyBufferBytesHigh } from '../constants.js';
import type { Server } from './server.js';
import { Session } from './session.js';

/** Unparsed bytes we accept behind a command in flight before pausing the socket. */
const backlogBytesHigh = 1024 * 1024;

export class Client extends Session {
  readonly #addr: string;
  readonly #laddr: string;

  private readonly parser: RequestParser;
  private readonly writer = new ReplyWriter(false);
  /** Replies computed but not yet encoded: they wait for durability of the writes among them. */
  private held: Reply[] = [];
  /** How many of `held` are covered by the durability wait in progress (-1: none in progress). */
  private heldCoveredUpTo = -1;
  /** A write ran since the last durability wait began. */
  private wroteSinceWait = false;
  /** A command is in flight (its handler returned a Promise). */
  private busy = false;
  private paused = false;
  private closing = false;
  closed = false;

  constructor(
    server: Server,
    readonly socket: Socket,
    id: number,
  ) {
    super(server, id);
    this.parser = new RequestParser(server.parserLimits());
    this.parser.authenticated = this.authenticated;
    this.#addr = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#laddr = `${socket.localAddress}:${socket.localPort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.maybeResume());
    socket.on('error', () => {}); // a reset by the peer ends here; 'close' follows
    socket.on('close', () => {
      this.closed = true;
      server.onClientClosed(this);
    });
  }

  override get addr(): string {
    return this.#addr;
  }

  override get laddr(): string {
    return this.#laddr;
  }

  override setAuthenticated(ok: boolean): void {
    super.setAuthenticated(ok);
    this.parser.authenticated = ok;
  }

  /** Closes after the replies queued so far are sent (QUIT, protocol errors). */
  override closeAfterReply(): void {
    this.closing = true;
  }

  /** Closes now (CLIENT KILL, shutdown). */
  override kill(): void {
    this.closing = true;
    this.socket.destroy();
  }

  override get unsentBytes(): number {
    return this.socket.writableLength + this.writer.pendingBytes;
  }

  override get queryBufferBytes(): number {
    return this.parser.bufferedBytes;
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.lastActiveMs = Date.now();
    this.parser.feed(chunk);
    this.run();
  }

  /** Executes every complete request in the parser, in order, until one goes async or input runs out. */
  private run(): void {
    this.server.markClock();
    while (!this.busy && !this.closing) {
      const args = this.parser.next();
      if (args === null) break;
      if (args instanceof ProtocolError) {
        this.server.log.warn({ client: this.addr, error: args.message }, 'protocol error, closing client');
        this.held.push(new ErrorReply(`ERR Protocol error: ${args.message}`));
        this.closing = true;
        break;
      }
      const spec = this.server.lookup(args[0]!);
      const reply = this.server.dispatch(this, spec, args);
      const wrote = spec !== undefined && spec.writes;
      if (reply instanceof Promise) {
        this.busy = true;
        // Its slot stays the last one: nothing runs after it until it settles (sends only trim the front).
        this.held.push(null);
        reply.then(
          (r) => this.settle(r, wrote),
          (err: unknown) => this.settle(this.server.errorReply(err), wrote),
        );
        break;
      }
      if (wrote) this.wroteSinceWait = true;
      this.held.push(reply);
    }
    if (this.busy && this.parser.bufferedBytes > backlogBytesHigh) this.pause();
    this.flush();
  }

  private settle(reply: Reply, wrote: boolean): void {
    this.held[this.held.length - 1] = reply;
    // An async write's durability is waited for only once it has written.
    if (wrote) this.wroteSinceWait = true;
    this.busy = false;
    if (this.closed) return;
    this.run();
    this.maybeResume();
  }

  /**
   * Sends every held reply that may go: replies before the first in-flight
   * command, and only after their writes are durable.
   */
  private flush(): void {
    if (this.heldCoveredUpTo >= 0) return; // a durability wait is in progress; its callback flushes
    const ready = this.busy ? this.held.length - 1 : this.held.length;
    if (ready <= 0) {
      if (this.closing && !this.busy) this.end();
      return;
    }
    if (this.wroteSinceWait) {
      this.wroteSinceWait = false;
      this.heldCoveredUpTo = ready;
      this.server.whenDurable((err) => {
        const covered = this.heldCoveredUpTo;
        this.heldCoveredUpTo = -1;
        if (err) this.failWrites(covered, err);
        this.send(covered);
        this.flush();
      });
      return;
    }
    this.send(ready);
    if (this.closing && !this.busy) this.end();
  }

  /** Replaces the replies of the first n held that were acknowledgements of writes by the disk error. */
  private failWrites(n: number, err: Error): void {
    const reply = this.server.errorReply(err); // a StorageWriteError: -MISCONF ...
    for (let i = 0; i < n; i++) {
      const r = this.held[i];
      // Acknowledgements of writes are +OK or integers/bulks; we cannot tell a
      // read from a write by its reply, so every reply of the batch becomes the
      // error: the client must treat the whole batch as failed, none as done.
      if (!(r instanceof ErrorReply)) this.held[i] = reply;
    }
  }

  private send(n: number): void {
    if (this.closed) return;
    const w = this.writer;
    w.resp3 = this.resp3;
    const held = this.held;
    for (let i = 0; i < n; i++) w.write(held[i]!);
    this.held = n === held.length ? [] : held.slice(n);
    const chunks = w.take();
    if (chunks.length === 1) {
      this.socket.write(chunks[0]!);
    } else if (chunks.length > 1) {
      this.socket.cork();
      for (const c of chunks) this.socket.write(c);
      this.socket.uncork();
    }
    if (this.socket.writableLength > replyBufferBytesHigh) this.pause();
  }

  private end(): void {
    if (!this.closed) this.socket.end();
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private maybeResume(): void {
    if (!this.paused || this.closed) return;
    if (this.socket.writableLength > replyBufferBytesHigh / 2) return;
    if (this.busy && this.parser.bufferedBytes > backlogBytesHigh) return;
    this.paused = false;
    this.socket.resume();
  }
}
