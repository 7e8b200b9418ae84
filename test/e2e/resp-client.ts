// A raw RESP test client shared by the end-to-end tests (limits, protocol,
// differential, commands): frameEnd finds where one complete RESP2/RESP3
// reply ends, encode builds a request as a RESP array of bulk strings, and
// Conn is one TCP connection that sends raw bytes and reads replies one at a
// time, exactly as the server sent them (as latin1 text, or as raw bytes).

import * as net from 'node:net';

/** Index just past one complete RESP2/RESP3 reply starting at pos, or -1 if incomplete. */
export function frameEnd(buf: Buffer, pos: number): number {
  if (pos >= buf.length) return -1;
  const type = String.fromCharCode(buf[pos]!);
  const cr = buf.indexOf('\r\n', pos);
  if (cr < 0) return -1;
  const line = buf.toString('latin1', pos + 1, cr);
  const after = cr + 2;
  switch (type) {
    case '+': case '-': case ':': case '_': case ',': case '#': case '(':
      return after;
    case '$': case '!': case '=': {
      const n = Number(line);
      if (n < 0) return after;
      return buf.length >= after + n + 2 ? after + n + 2 : -1;
    }
    case '*': case '~': case '%': case '>': case '|': {
      let n = Number(line);
      if (n < 0) return after;
      if (type === '%' || type === '|') n *= 2;
      let p = after;
      for (let i = 0; i < n; i++) {
        p = frameEnd(buf, p);
        if (p < 0) return -1;
      }
      // An attribute precedes the reply it annotates.
      return type === '|' ? frameEnd(buf, p) : p;
    }
    default:
      throw new Error(`not RESP at ${pos}: ${JSON.stringify(buf.toString('latin1', pos, pos + 40))}`);
  }
}

export type Arg = string | Buffer | number;

/** One request: a RESP array of bulk strings. */
export function encode(args: Arg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A raw RESP connection to 127.0.0.1:port. */
export class Conn {
  private chunks: Buffer[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }

  static connect(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }

  /** Sends raw bytes; resolves once they are handed to the OS (awaiting is optional). */
  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve) => this.sock.write(data, () => resolve()));
  }

  private take(): void {
    if (this.chunks.length > 0) {
      this.buf = Buffer.concat([this.buf, ...this.chunks]);
      this.chunks = [];
    }
  }

  /** The raw bytes of the next reply. */
  async replyBytes(timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.take();
      const end = frameEnd(this.buf, 0);
      if (end >= 0) {
        const r = this.buf.subarray(0, end);
        this.buf = this.buf.subarray(end);
        return r;
      }
      if (this.closed) throw new Error(`closed; pending ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply in ${timeoutMs} ms; pending ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** The next reply as latin1 text. */
  async reply(timeoutMs = 5000): Promise<string> {
    return (await this.replyBytes(timeoutMs)).toString('latin1');
  }

  /** Sends one command; resolves to the raw bytes of its reply. */
  callBytes(...args: Arg[]): Promise<Buffer> {
    void this.write(encode(args));
    return this.replyBytes();
  }

  /** Sends one command; resolves to its reply as latin1 text. */
  call(...args: Arg[]): Promise<string> {
    void this.write(encode(args));
    return this.reply();
  }

  /** Everything the server sends until it closes the connection (rejects if it stays open). */
  async untilClosed(timeoutMs = 3000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`still open after ${timeoutMs} ms; got ${JSON.stringify(this.rest().slice(0, 200))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.rest();
  }

  /** Resolves true once the server has closed the connection (false after the timeout). */
  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.closed;
  }

  /** Whatever has arrived and not been read as a reply yet, as latin1 text (consumed). */
  rest(): string {
    this.take();
    const s = this.buf.toString('latin1');
    this.buf = Buffer.alloc(0);
    return s;
  }

  close(): void {
    this.sock.destroy();
  }
}
