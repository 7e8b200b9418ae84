// One client connection: reads requests, runs them through the dispatcher,
// and sends replies in order with as few socket writes as it can. Replies to
// writes leave only after the store says those writes are durable (group
// commit: one wait covers every write of a batch, across all clients, see
// SegmentStore.whenDurable).
//
// Pipelining: a command whose handler goes async (a cold read, a quorum round)
// does not hold up the ones behind it unless they touch the same keys. A
// command may start while others are in flight when it names its keys (see
// pipelines below) and none of them is being written by a command in flight,
// nor, for a write, read; anything else (a keyless command, a conflict) waits
// until the commands it would overlap have finished. So the effects of one
// connection's commands on each key happen in the order they were sent, as in
// Redis, and replies always leave in that order; only commands on different
// keys overlap, which this connection cannot tell apart from running them one
// by one. (Another client may see one connection's writes to different keys
// land in a different order, as it may across the shards of Redis Cluster.)
//
// A plain SET waiting behind another command on its key, followed on this
// connection by a plain SET of the same key, is absorbed by it: it does not
// run, and its reply is the later SET's. Both were sent before either was
// answered, so no client can tell this from the two running back to back
// (nothing can read the key between them); a cluster then writes a run of
// pipelined SETs of one key in one quorum round instead of one round each.
//
// Flow control: when unsent replies pass replyBufferBytesHigh, or too many
// unparsed bytes pile up behind a waiting command, or pipelinedMax replies are
// held behind a command in flight, the socket stops being read until it drains.
import type { Socket } from 'node:net';
import { ErrorReply, ProtocolError, type Reply, ReplyWriter, RequestParser } from '../../protocol/resp.js';
import { pipelinedMax, replyBufferBytesHigh } from '../constants.js';
import { type CommandSpec, keysOf } from './command.js';
import type { Server } from './server.js';
import { Session } from './session.js';

/** Unparsed bytes we accept behind a waiting command before pausing the socket. */
const backlogBytesHigh = 1024 * 1024;

/**
 * Whether a command may overlap others of the same connection: it names its
 * keys and touches nothing else (no connection state, no whole keyspace).
 */
const pipelines = (spec: CommandSpec | undefined): spec is CommandSpec =>
  spec !== undefined && spec.firstKey > 0 && (spec.group === 'string' || spec.group === 'generic');

/** A parsed command that has not started: it conflicts with one in flight. */
interface Waiting {
  spec: CommandSpec | undefined;
  args: Buffer[];
  /** Sequence numbers of the earlier SETs it absorbed (see the file comment): they get its reply. */
  absorbed: number[] | null;
}

/** A parsed request read ahead of a waiting command (see absorb): a command, or the protocol error in its place. */
type Parsed = Buffer[] | ProtocolError;

/** SET key value, without options: a blind write whose only effect is the key's new value. */
const isPlainSet = (spec: CommandSpec | undefined, args: Buffer[]): boolean => spec !== undefined && spec.name === 'set' && args.length === 3;

/** A command's keys as the latin1 strings keysInFlight is keyed by. */
function keyNames(spec: CommandSpec, args: Buffer[]): string[] {
  return keysOf(spec, args).map((k) => k.toString('latin1'));
}

/** How the commands in flight use one key. */
interface KeyUse {
  readers: number;
  writers: number;
}

/** A command in flight that may overlap others. */
interface Flying {
  spec: CommandSpec;
  args: Buffer[];
  writes: boolean;
  /** Its keys, once they are counted in keysInFlight. */
  names: string[] | null;
}

export class Client extends Session {
  readonly #addr: string;
  readonly #laddr: string;

  private readonly parser: RequestParser;
  private readonly writer = new ReplyWriter(false);
  /**
   * Replies in command order, not yet sent: null for a command still in
   * flight; the rest wait for the ones before them and for the durability of
   * the writes among them.
   */
  private held: Array<Reply | null> = [];
  /** Sequence number of held[0] (each command gets the next one). */
  private heldBase = 0;
  /** How many of `held` are covered by the durability wait in progress (-1: none in progress). */
  private heldCoveredUpTo = -1;
  /** A write ran since the last durability wait began. */
  private wroteSinceWait = false;
  /** A command in flight that may not overlap anything (see pipelines); it starts only when nothing else is in flight. */
  private exclusive = false;
  /** The commands in flight that may overlap others. */
  private readonly flying: Flying[] = [];
  /**
   * Keys (latin1) of `flying`, built only when a command has to be checked
   * against them: with one command at a time (pipeline 1) nothing is counted.
   */
  private keysInFlight: Map<string, KeyUse> | null = null;
  /** The key names mayStart built for the command it let start, for count() to reuse. */
  private checked: { args: Buffer[]; names: string[] } | null = null;
  /** The next command, parsed, waiting for the commands it conflicts with. */
  private waiting: Waiting | null = null;
  /** The request after `waiting`, parsed to see whether it absorbs it (see absorb). */
  private lookahead: Parsed | null = null;
  /** Slots in `held` of absorbed SETs whose absorbing SET has not answered yet. */
  private absorbedPending = 0;
  private paused = false;
  /** A run is queued for after the commands settling in this microtask checkpoint (see settle). */
  private settling = false;
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

  /** Starts what it can of the input, then sends what replies it can. */
  private run(): void {
    this.server.markClock();
    for (;;) {
      this.startAll();
      if (this.waiting !== null && this.parser.bufferedBytes > backlogBytesHigh) this.pause();
      if (this.heldFull) this.pause();
      this.flush();
      // A HELLO waiting for the replies before it to leave: the flush may just have sent them.
      if (this.closing || this.waiting === null || !this.drainFirst(this.waiting.spec) || this.held.length > 0) break;
    }
  }

  /**
   * HELLO switches the protocol replies are encoded in, and replies are
   * encoded when they are sent: so it starts only once every reply before it
   * has left, as Redis encodes each reply in the protocol it was computed in.
   */
  private drainFirst(spec: CommandSpec | undefined): boolean {
    return spec !== undefined && spec.name === 'hello';
  }

  /** Starts every complete request in the parser, in order, until one must wait or input runs out. */
  private startAll(): void {
    while (!this.closing && !this.heldFull) {
      let spec: CommandSpec | undefined;
      let args: Buffer[];
      let absorbed: number[] | null = null;
      if (this.waiting !== null) {
        ({ spec, args, absorbed } = this.waiting);
      } else {
        const parsed = this.lookahead ?? this.parser.next();
        this.lookahead = null;
        if (parsed === null) break;
        if (parsed instanceof ProtocolError) {
          this.server.log.warn({ client: this.addr, error: parsed.message }, 'protocol error, closing client');
          this.held.push(new ErrorReply(`ERR Protocol error: ${parsed.message}`));
          this.closing = true;
          break;
        }
        args = parsed;
        spec = this.server.lookup(args[0]!);
      }
      // With nothing in flight (the common case) there are no keys to look at.
      if ((this.inflight > 0 && !this.mayStart(spec, args)) || (this.held.length > 0 && this.drainFirst(spec))) {
        this.waiting ??= { spec, args, absorbed: null };
        if (this.absorb()) continue;
        break;
      }
      this.waiting = null;
      this.start(spec, args, absorbed);
    }
  }

  /**
   * The waiting command is a plain SET and the next request a plain SET of
   * the same key: the next one absorbs it (see the file comment) and waits in
   * its place. Otherwise the next request stays read ahead, and false.
   */
  private absorb(): boolean {
    const w = this.waiting!;
    if (!isPlainSet(w.spec, w.args) || this.heldFull) return false;
    const next = this.lookahead ?? this.parser.next();
    this.lookahead = null;
    if (next === null) return false;
    if (next instanceof ProtocolError || next.length !== 3 || !next[1]!.equals(w.args[1]!)) {
      this.lookahead = next;
      return false;
    }
    const spec = this.server.lookup(next[0]!);
    if (!isPlainSet(spec, next)) {
      this.lookahead = next;
      return false;
    }
    // The absorbed SET's reply slot keeps its place in the order; the absorbing SET fills it.
    (w.absorbed ??= []).push(this.heldBase + this.held.length);
    this.held.push(null);
    this.absorbedPending++;
    this.server.countAbsorbed(spec!);
    this.waiting = { spec, args: next, absorbed: w.absorbed };
    return true;
  }

  private start(spec: CommandSpec | undefined, args: Buffer[], absorbed: number[] | null = null): void {
    const reply = this.server.dispatch(this, spec, args);
    const wrote = spec !== undefined && spec.writes;
    if (!(reply instanceof Promise)) {
      if (wrote) this.wroteSinceWait = true;
      if (absorbed !== null) this.answerAbsorbed(absorbed, reply);
      this.held.push(reply);
      return;
    }
    const seq = this.heldBase + this.held.length;
    this.held.push(null);
    if (absorbed !== null) {
      reply.then(
        (r) => this.answerAbsorbed(absorbed, r),
        (err: unknown) => this.answerAbsorbed(absorbed, this.server.errorReply(err)),
      );
    }
    let flying: Flying | null = null;
    if (pipelines(spec)) {
      flying = { spec, args, writes: wrote, names: null };
      this.flying.push(flying);
      if (this.keysInFlight !== null) this.count(flying);
    } else {
      this.exclusive = true;
    }
    reply.then(
      (r) => this.settle(seq, r, wrote, flying),
      (err: unknown) => this.settle(seq, this.server.errorReply(err), wrote, flying),
    );
  }

  /** Whether a command may start beside the ones in flight (see the file comment). */
  private mayStart(spec: CommandSpec | undefined, args: Buffer[]): boolean {
    if (this.exclusive || !pipelines(spec)) return false;
    if (this.keysInFlight === null) {
      this.keysInFlight = new Map();
      for (const f of this.flying) this.count(f);
    }
    const writes = spec.writes;
    const names = keyNames(spec, args);
    for (const n of names) {
      const use = this.keysInFlight.get(n);
      if (use !== undefined && (use.writers > 0 || (writes && use.readers > 0))) return false;
    }
    this.checked = { args, names }; // start() counts these very names
    return true;
  }

  /** Counts a command's keys in keysInFlight. */
  private count(f: Flying): void {
    const map = this.keysInFlight!;
    f.names = this.checked?.args === f.args ? this.checked.names : keyNames(f.spec, f.args);
    this.checked = null;
    for (const n of f.names) {
      let use = map.get(n);
      if (use === undefined) map.set(n, (use = { readers: 0, writers: 0 }));
      if (f.writes) use.writers++;
      else use.readers++;
    }
  }

  /** A command in flight finished: it no longer holds its keys. */
  private land(f: Flying): void {
    this.flying.splice(this.flying.indexOf(f), 1);
    if (this.flying.length === 0) {
      this.keysInFlight = null;
      return;
    }
    if (f.names === null || this.keysInFlight === null) return;
    for (const n of f.names) {
      const use = this.keysInFlight.get(n)!;
      if (f.writes) use.writers--;
      else use.readers--;
      if (use.writers === 0 && use.readers === 0) this.keysInFlight.delete(n);
    }
  }

  /** Absorbed SETs get the reply of the SET that absorbed them (before it settles: see start). */
  private answerAbsorbed(seqs: number[], reply: Reply): void {
    for (const seq of seqs) this.held[seq - this.heldBase] = reply;
    this.absorbedPending -= seqs.length;
  }

  private settle(seq: number, reply: Reply, wrote: boolean, flying: Flying | null): void {
    this.held[seq - this.heldBase] = reply;
    // An async write's durability is waited for only once it has written.
    if (wrote) this.wroteSinceWait = true;
    if (flying === null) this.exclusive = false;
    else this.land(flying);
    if (this.closed || this.settling) return;
    // Pipelined commands often finish together (one replica answer settles a batch of them, each in
    // its own microtask): send their replies in one write after the last of them, not one write each.
    this.settling = true;
    queueMicrotask(this.afterSettling);
  }

  private readonly afterSettling = (): void => {
    this.settling = false;
    if (this.closed) return;
    this.run();
    this.maybeResume();
  };

  /** Commands in flight (their handlers returned a Promise): an exclusive one, or those that overlap. */
  private get inflight(): number {
    return this.exclusive ? 1 : this.flying.length;
  }

  /** Replies at the front of `held` that are computed (those after the first in flight must wait). */
  private readyCount(): number {
    const held = this.held;
    if (this.inflight === 0 && this.absorbedPending === 0) return held.length;
    let n = 0;
    while (n < held.length && held[n] !== null) n++;
    return n;
  }

  /**
   * Commands started and not yet answered have reached pipelinedMax while one
   * is in flight: the replies behind it cannot leave before it does, so no
   * more are started (and the socket is not read) until it finishes. With
   * nothing in flight every reply can leave at once, as without pipelining.
   */
  private get heldFull(): boolean {
    return this.inflight > 0 && this.held.length >= pipelinedMax;
  }

  /** Nothing in flight or waiting to start. */
  private get idle(): boolean {
    return this.inflight === 0 && this.waiting === null && this.lookahead === null;
  }

  /**
   * Sends every held reply that may go: replies before the first in-flight
   * command, and only after their writes are durable.
   */
  private flush(): void {
    if (this.heldCoveredUpTo >= 0) return; // a durability wait is in progress; its callback flushes
    const ready = this.readyCount();
    if (ready <= 0) {
      if (this.closing && this.idle) this.end();
      return;
    }
    // (A cluster's writes resolve only once W owners have them durably: nothing more to wait for.)
    if (this.wroteSinceWait && !this.server.writesResolveDurable) {
      this.wroteSinceWait = false;
      this.heldCoveredUpTo = ready;
      this.server.whenDurable((err) => {
        const covered = this.heldCoveredUpTo;
        this.heldCoveredUpTo = -1;
        if (err) this.failWrites(covered, err);
        this.send(covered);
        if (this.waiting !== null && this.inflight === 0) this.run(); // a HELLO waiting for these replies to leave
        else this.flush();
      });
      return;
    }
    this.send(ready);
    if (this.closing && this.idle && this.held.length === 0) this.end();
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
    this.heldBase += n;
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
    if (this.waiting !== null && this.parser.bufferedBytes > backlogBytesHigh) return;
    if (this.heldFull) return;
    this.paused = false;
    this.socket.resume();
  }
}
