// RESP2/RESP3: the client wire format. Pure codec: bytes in, values out; no sockets.
//
// Requests (client → server) come in two shapes:
//
//   multibulk   *<argc>\r\n  then argc times  $<len>\r\n<len bytes>\r\n
//   inline      a line not starting with '*', split on spaces with quotes
//               ("..." with \n \r \t \b \a \\ \" \xHH escapes, '...' with \'),
//               ended by \n (a \r before it is dropped); empty lines are ignored.
//
// Replies (server → client), RESP2 types and their RESP3 additions:
//
//   +simple\r\n   -ERR error\r\n   :integer\r\n   $<len>\r\n<bytes>\r\n   *<n>\r\n<n replies>
//   RESP2 nulls: $-1\r\n (null bulk), *-1\r\n (null array)
//   RESP3: _\r\n null, ,<double>\r\n, #t/#f\r\n, =<len>\r\ntxt:<text>\r\n verbatim,
//          %<n>\r\n map of n key/value pairs, ~<n>\r\n set, ><n>\r\n push
//
// On a RESP2 connection RESP3-only types are downgraded: map → flat array of
// key, value, ...; set → array; double → bulk string; boolean → integer 1/0;
// verbatim → bulk string; null → $-1 (or *-1 for a null array).
//
// The parser enforces every limit where the bytes enter (Redis' texts, REFERENCE.md):
// bulk length, argument count, inline line length, total bytes buffered for one
// request, and the tighter limits for unauthenticated clients. A violation is
// returned as a ProtocolError value; the caller answers it and closes the connection.

const CR = 13;
const LF = 10;
const ASTERISK = 42; // '*'
const DOLLAR = 36; // '$'

/** A bulk argument at least this big is received into its own buffer instead of by concatenation. */
const bigBulkBytesMin = 32 * 1024;
/** Longest "*<n>" or "$<n>" header line we wait for before calling it garbage. */
const headerBytesMax = 64 * 1024;

export interface ParserLimits {
  /** Largest bulk argument (proto-max-bulk-len). */
  bulkBytesMax: number;
  /** Most arguments in one multibulk request. */
  argsMax: number;
  /** Longest inline request line. */
  inlineBytesMax: number;
  /** Most bytes buffered for one unfinished request (client-query-buffer-limit). */
  queryBufferBytesMax: number;
  /** Tighter limits while the client has not authenticated; undefined when no password is set. */
  unauthenticated?: { argsMax: number; bulkBytesMax: number };
}

export class ProtocolError {
  constructor(readonly message: string) {}
}

/**
 * Incremental request parser. Feed it every chunk read from the socket, then
 * call next() until it returns null (needs more bytes). Any split of the byte
 * stream gives the same commands.
 */
export class RequestParser {
  /** Unconsumed bytes; only the tail of the stream that did not form a whole token. */
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Arguments still expected by the multibulk in progress (0: at a request boundary). */
  private argsLeft = 0;
  private args: Buffer[] = [];
  /** Length of the bulk whose header was read and whose bytes are awaited; -1 when none. */
  private bulkLen = -1;
  /** A big bulk is copied into its own buffer as it arrives instead of re-concatenated. */
  private bigBulk: Buffer | null = null;
  private bigBulkFilled = 0;
  /** Bytes of the request in progress consumed so far, for the query buffer limit. */
  private requestBytes = 0;
  /** Set by the caller once the client has authenticated. */
  authenticated = true;
  private failed: ProtocolError | null = null;

  constructor(readonly limits: ParserLimits) {
    this.authenticated = limits.unauthenticated === undefined;
  }

  /** Bytes buffered and not yet returned as part of a command. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.requestBytes + this.bigBulkFilled;
  }

  feed(chunk: Buffer): void {
    if (this.bigBulk !== null) {
      // Fill the big bulk straight from the chunk; only its tail (if any) is kept.
      const need = this.bigBulk.length - this.bigBulkFilled;
      const n = Math.min(need, chunk.length);
      chunk.copy(this.bigBulk, this.bigBulkFilled, 0, n);
      this.bigBulkFilled += n;
      chunk = chunk.subarray(n);
    }
    if (this.pos >= this.buf.length) {
      this.buf = chunk;
    } else if (chunk.length > 0) {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    } else {
      this.buf = this.buf.subarray(this.pos);
    }
    this.pos = 0;
  }

  /** The next complete command, null when more bytes are needed, or a ProtocolError (sticky). */
  next(): Buffer[] | null | ProtocolError {
    if (this.failed) return this.failed;
    for (;;) {
      if (this.argsLeft === 0) {
        if (this.pos >= this.buf.length) return null;
        if (this.buf[this.pos] !== ASTERISK) {
          const inline = this.parseInline();
          if (inline === null) return null;
          if (inline instanceof ProtocolError) return this.fail(inline);
          if (inline.length === 0) continue; // empty line: ignored, as Redis does
          return inline;
        }
        const argc = this.readHeaderNumber(ASTERISK);
        if (argc === null) {
          const err = this.checkBuffered('too big mbulk count string') ?? this.overQueryLimit();
          return err && this.fail(err);
        }
        if (argc instanceof ProtocolError) return this.fail(argc);
        const argcError = this.checkArgc(argc);
        if (argcError) return this.fail(argcError);
        if (argc <= 0) continue; // "*0" and "*-1" are empty requests, skipped
        this.argsLeft = argc;
        this.args = new Array<Buffer>();
      }
      const done = this.parseBulks();
      if (done === null) return null;
      if (done instanceof ProtocolError) return this.fail(done);
      return done;
    }
  }

  /** Redis' order: over the general limit is invalid, then the unauthenticated limit applies. */
  private checkArgc(argc: number): ProtocolError | null {
    if (argc > this.limits.argsMax) return new ProtocolError('invalid multibulk length');
    if (!this.authenticated && argc > this.limits.unauthenticated!.argsMax) {
      return new ProtocolError('unauthenticated multibulk length');
    }
    return null;
  }

  private fail(err: ProtocolError): ProtocolError {
    this.failed = err;
    return err;
  }

  /** Returns null (wait for more) unless the unfinished header already exceeds the limit. */
  private checkBuffered(what: string): null | ProtocolError {
    if (this.buf.length - this.pos > headerBytesMax) return this.fail(new ProtocolError(what));
    return null;
  }

  /** Reads the bulks of the multibulk in progress; returns the args when all are in. */
  private parseBulks(): Buffer[] | null | ProtocolError {
    while (this.argsLeft > 0) {
      if (this.bigBulk !== null) {
        if (this.bigBulkFilled < this.bigBulk.length) return null;
        // The bulk is whole; its trailing CRLF is in buf.
        if (this.buf.length - this.pos < 2) return null;
        this.pos += 2;
        this.args.push(this.bigBulk);
        this.requestBytes += this.bigBulk.length + 2;
        this.bigBulk = null;
        this.bigBulkFilled = 0;
        this.argsLeft--;
        if (this.requestBytes > this.limits.queryBufferBytesMax) return new ProtocolError('query buffer limit exceeded');
        continue;
      }
      if (this.bulkLen < 0) {
        if (this.pos >= this.buf.length) return this.overQueryLimit();
        if (this.buf[this.pos] !== DOLLAR) {
          const got = String.fromCharCode(this.buf[this.pos]!);
          return new ProtocolError(`expected '$', got '${got}'`);
        }
        const len = this.readHeaderNumber(DOLLAR);
        if (len === null) {
          if (this.buf.length - this.pos > headerBytesMax) return new ProtocolError('too big bulk count string');
          return this.overQueryLimit();
        }
        if (len instanceof ProtocolError) return new ProtocolError('invalid bulk length');
        if (len < 0 || len > this.limits.bulkBytesMax) return new ProtocolError('invalid bulk length');
        if (!this.authenticated && len > this.limits.unauthenticated!.bulkBytesMax) {
          return new ProtocolError('unauthenticated bulk length');
        }
        this.bulkLen = len;
        this.requestBytes += 16;
      }
      const len = this.bulkLen;
      const available = this.buf.length - this.pos;
      if (available >= len + 2) {
        this.args.push(this.buf.subarray(this.pos, this.pos + len));
        this.pos += len + 2;
        this.requestBytes += len + 2;
        this.bulkLen = -1;
        this.argsLeft--;
        // Checked as each argument is taken, not only while waiting for bytes: a request that
        // arrived whole in one read is as big as one that trickled in (Redis counts both too).
        if (this.requestBytes > this.limits.queryBufferBytesMax) return new ProtocolError('query buffer limit exceeded');
        continue;
      }
      if (len >= bigBulkBytesMin) {
        if (this.requestBytes + len > this.limits.queryBufferBytesMax) {
          return new ProtocolError('query buffer limit exceeded');
        }
        // Start receiving this bulk into its own buffer; feed() fills it.
        this.bigBulk = Buffer.allocUnsafe(len);
        const n = Math.min(len, available);
        this.buf.copy(this.bigBulk, 0, this.pos, this.pos + n);
        this.bigBulkFilled = n;
        this.pos += n;
        this.bulkLen = -1;
        continue; // loops back: either complete (CRLF pending) or waits
      }
      return this.overQueryLimit();
    }
    const args = this.args;
    this.args = [];
    this.requestBytes = 0;
    return args;
  }

  private overQueryLimit(): null | ProtocolError {
    if (this.bufferedBytes > this.limits.queryBufferBytesMax) return new ProtocolError('query buffer limit exceeded');
    return null;
  }

  /**
   * Parses "<prefix><integer>\r\n" at pos. Returns null when the line is not
   * complete, a ProtocolError when the number is malformed.
   */
  private readHeaderNumber(prefix: number): number | null | ProtocolError {
    const buf = this.buf;
    const end = buf.indexOf(CR, this.pos + 1);
    if (end < 0 || end + 1 >= buf.length) return null;
    if (buf[end + 1] !== LF) {
      return new ProtocolError(prefix === ASTERISK ? 'invalid multibulk length' : 'invalid bulk length');
    }
    let i = this.pos + 1;
    let negative = false;
    if (buf[i] === 45 /* - */) {
      negative = true;
      i++;
    }
    // Like Redis' string2ll: no leading zeros, no "-0".
    if (i === end || end - i > 18 || (buf[i] === 48 /* 0 */ && (end - i > 1 || negative))) {
      return new ProtocolError(prefix === ASTERISK ? 'invalid multibulk length' : 'invalid bulk length');
    }
    let n = 0;
    for (; i < end; i++) {
      const d = buf[i]! - 48;
      if (d < 0 || d > 9) {
        return new ProtocolError(prefix === ASTERISK ? 'invalid multibulk length' : 'invalid bulk length');
      }
      n = n * 10 + d;
    }
    this.pos = end + 2;
    return negative ? -n : n;
  }

  private parseInline(): Buffer[] | null | ProtocolError {
    const buf = this.buf;
    const nl = buf.indexOf(LF, this.pos);
    if (nl < 0) {
      if (buf.length - this.pos > this.limits.inlineBytesMax) return new ProtocolError('too big inline request');
      return null;
    }
    if (nl - this.pos > this.limits.inlineBytesMax) return new ProtocolError('too big inline request');
    let end = nl;
    if (end > this.pos && buf[end - 1] === CR) end--;
    const line = buf.subarray(this.pos, end);
    this.pos = nl + 1;
    const args = splitInlineArgs(line);
    if (args === null) return new ProtocolError('unbalanced quotes in request');
    return this.checkArgc(args.length) ?? args;
  }
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

function isSpace(c: number | undefined): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12 || c === 0;
}

/** Splits an inline request line like Redis' sdssplitargs; null on unbalanced quotes. */
export function splitInlineArgs(line: Buffer): Buffer[] | null {
  const args: Buffer[] = [];
  let i = 0;
  const n = line.length;
  for (;;) {
    while (i < n && isSpace(line[i])) i++;
    if (i >= n) return args;
    const out: number[] = [];
    let inDouble = false;
    let inSingle = false;
    for (;;) {
      if (inDouble) {
        if (i >= n) return null;
        const c = line[i]!;
        if (c === 92 /* \ */ && i + 3 < n && line[i + 1] === 120 /* x */ && isHexDigit(line[i + 2]!) && isHexDigit(line[i + 3]!)) {
          out.push(parseInt(String.fromCharCode(line[i + 2]!, line[i + 3]!), 16));
          i += 4;
          continue;
        }
        if (c === 92 && i + 1 < n) {
          const e = line[i + 1]!;
          const map: Record<number, number> = { 110: 10, 114: 13, 116: 9, 98: 8, 97: 7 };
          out.push(map[e] ?? e);
          i += 2;
          continue;
        }
        if (c === 34 /* " */) {
          // A closing quote must be followed by a space or the end.
          if (i + 1 < n && !isSpace(line[i + 1])) return null;
          i++;
          break;
        }
        out.push(c);
        i++;
      } else if (inSingle) {
        if (i >= n) return null;
        const c = line[i]!;
        if (c === 92 && i + 1 < n && line[i + 1] === 39 /* ' */) {
          out.push(39);
          i += 2;
          continue;
        }
        if (c === 39) {
          if (i + 1 < n && !isSpace(line[i + 1])) return null;
          i++;
          break;
        }
        out.push(c);
        i++;
      } else {
        if (i >= n) break;
        const c = line[i]!;
        if (c === 32 || c === 9 || c === 13 || c === 10 || c === 0) break;
        if (c === 34) inDouble = true;
        else if (c === 39) inSingle = true;
        else out.push(c);
        i++;
      }
    }
    args.push(Buffer.from(out));
  }
}

// --- Replies -----------------------------------------------------------------

/** An error reply; `message` starts with its code word (ERR, WRONGTYPE, ...). */
export class ErrorReply {
  constructor(readonly message: string) {}
}
/** RESP3 map; flattened to an array on RESP2. */
export class MapReply {
  constructor(readonly entries: Array<[Reply, Reply]>) {}
}
/** RESP3 set; an array on RESP2. */
export class SetReply {
  constructor(readonly items: Reply[]) {}
}
/** RESP3 double; a bulk string on RESP2. */
export class DoubleReply {
  constructor(readonly value: number) {}
}
/** RESP3 boolean; integer 1/0 on RESP2. */
export class BooleanReply {
  constructor(readonly value: boolean) {}
}
/** RESP3 verbatim string (INFO, CLIENT INFO); a bulk string on RESP2. */
export class VerbatimReply {
  constructor(
    readonly text: string,
    readonly format = 'txt',
  ) {}
}
/** A reply already encoded (by another node, for this connection's protocol): written as is. */
export class RawReply {
  constructor(readonly bytes: Buffer) {}
}
/** A bulk string built from JS text, encoded as UTF-8 without an intermediate Buffer. */
export class BulkText {
  constructor(readonly text: string) {}
}
/** The null array (RESP2 `*-1`), e.g. a missing BLPOP result. */
export const NullArray = Symbol('null-array');

/**
 * A reply value:
 *   null → null bulk; string → simple status (no CR/LF); number|bigint → integer;
 *   Buffer → bulk string; Reply[] → array; the classes above → their types.
 */
export type Reply =
  | null
  | string
  | number
  | bigint
  | Buffer
  | Reply[]
  | ErrorReply
  | MapReply
  | SetReply
  | DoubleReply
  | BooleanReply
  | VerbatimReply
  | BulkText
  | RawReply
  | typeof NullArray;

/** Common replies, allocated once. */
export const OK = 'OK';

const outChunkBytes = 64 * 1024;
/** Bulk values at least this big are queued as their own chunk rather than copied. */
const zeroCopyBytesMin = 16 * 1024;

/** Formats a double as Redis does (%.17g, with inf/-inf/nan spelled out). */
export function formatDouble(v: number): string {
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Number.isNaN(v)) return 'nan';
  if (Number.isInteger(v) && Math.abs(v) < 1e17) return v.toString();
  return String(v);
}

/**
 * Accumulates encoded replies for one connection into as few buffers as
 * possible, so a pipeline of replies leaves in one socket write.
 */
export class ReplyWriter {
  private chunks: Buffer[] = [];
  private cur: Buffer = Buffer.allocUnsafe(outChunkBytes);
  private len = 0;
  /** Bytes encoded and not yet taken. */
  pendingBytes = 0;

  constructor(public resp3 = false) {}

  private ensure(n: number): void {
    if (this.len + n <= this.cur.length) return;
    if (this.len > 0) this.chunks.push(this.cur.subarray(0, this.len));
    this.cur = Buffer.allocUnsafe(Math.max(outChunkBytes, n));
    this.len = 0;
  }

  private ascii(s: string): void {
    this.ensure(s.length);
    this.len += this.cur.write(s, this.len, 'latin1');
    this.pendingBytes += s.length;
  }

  private header(prefix: string, n: number): void {
    this.ascii(prefix + n + '\r\n');
  }

  private bulk(b: Buffer): void {
    this.header('$', b.length);
    if (b.length >= zeroCopyBytesMin) {
      if (this.len > 0) this.chunks.push(this.cur.subarray(0, this.len));
      this.chunks.push(b);
      this.cur = this.cur.subarray(this.len);
      this.len = 0;
      this.pendingBytes += b.length;
      this.ascii('\r\n');
      return;
    }
    this.ensure(b.length + 2);
    b.copy(this.cur, this.len);
    this.len += b.length;
    this.cur[this.len++] = CR;
    this.cur[this.len++] = LF;
    this.pendingBytes += b.length + 2;
  }

  private text(prefix: string, s: string): void {
    const bytes = Buffer.byteLength(s);
    this.header(prefix, bytes);
    this.ensure(bytes + 2);
    this.len += this.cur.write(s, this.len, 'utf8');
    this.cur[this.len++] = CR;
    this.cur[this.len++] = LF;
    this.pendingBytes += bytes + 2;
  }

  write(r: Reply): void {
    if (r === null) {
      this.ascii(this.resp3 ? '_\r\n' : '$-1\r\n');
    } else if (typeof r === 'string') {
      this.ascii('+' + r + '\r\n');
    } else if (typeof r === 'number') {
      this.ascii(':' + r + '\r\n');
    } else if (Buffer.isBuffer(r)) {
      this.bulk(r);
    } else if (Array.isArray(r)) {
      this.header('*', r.length);
      for (const item of r) this.write(item);
    } else if (r instanceof ErrorReply) {
      // A simple error; CR/LF inside would break the framing, so they become spaces.
      const msg = /[\r\n]/.test(r.message) ? r.message.replace(/[\r\n]+/g, ' ') : r.message;
      const bytes = Buffer.byteLength(msg);
      this.ensure(bytes + 3);
      this.cur[this.len++] = 45; // '-'
      this.len += this.cur.write(msg, this.len, 'utf8');
      this.cur[this.len++] = CR;
      this.cur[this.len++] = LF;
      this.pendingBytes += bytes + 3;
    } else if (typeof r === 'bigint') {
      this.ascii(':' + r.toString() + '\r\n');
    } else if (r instanceof BulkText) {
      this.text('$', r.text);
    } else if (r instanceof MapReply) {
      if (this.resp3) {
        this.header('%', r.entries.length);
      } else {
        this.header('*', r.entries.length * 2);
      }
      for (const [k, v] of r.entries) {
        this.write(k);
        this.write(v);
      }
    } else if (r instanceof SetReply) {
      this.header(this.resp3 ? '~' : '*', r.items.length);
      for (const item of r.items) this.write(item);
    } else if (r instanceof DoubleReply) {
      if (this.resp3) this.ascii(',' + formatDouble(r.value) + '\r\n');
      else this.text('$', formatDouble(r.value));
    } else if (r instanceof BooleanReply) {
      if (this.resp3) this.ascii(r.value ? '#t\r\n' : '#f\r\n');
      else this.ascii(r.value ? ':1\r\n' : ':0\r\n');
    } else if (r instanceof VerbatimReply) {
      if (this.resp3) this.text('=', r.format + ':' + r.text);
      else this.text('$', r.text);
    } else if (r instanceof RawReply) {
      this.ensure(r.bytes.length);
      r.bytes.copy(this.cur, this.len);
      this.len += r.bytes.length;
      this.pendingBytes += r.bytes.length;
    } else if (r === NullArray) {
      this.ascii(this.resp3 ? '_\r\n' : '*-1\r\n');
    } else {
      throw new TypeError(`not a reply: ${String(r)}`);
    }
  }

  /** Returns the encoded bytes (one or more buffers) and resets. */
  take(): Buffer[] {
    const out = this.chunks;
    if (this.len > 0) {
      out.push(this.cur.subarray(0, this.len));
      this.cur = this.cur.subarray(this.len);
      if (this.cur.length < 1024) this.cur = Buffer.allocUnsafe(outChunkBytes);
      this.len = 0;
    }
    this.chunks = [];
    this.pendingBytes = 0;
    return out;
  }
}
