// Error replies, with Redis' exact texts: clients and tools dispatch on the
// first word (ERR, WRONGTYPE, NOAUTH, LOADING, ...) and some match whole texts.

import { ErrorReply } from '../../protocol/resp.js';

export const Err = {
  syntax: new ErrorReply('ERR syntax error'),
  notInteger: new ErrorReply('ERR value is not an integer or out of range'),
  notFloat: new ErrorReply('ERR value is not a valid float'),
  overflow: new ErrorReply('ERR increment or decrement would overflow'),
  nanOrInfinity: new ErrorReply('ERR increment would produce NaN or Infinity'),
  noAuth: new ErrorReply('NOAUTH Authentication required.'),
  wrongPass: new ErrorReply('WRONGPASS invalid username-password pair or user is disabled.'),
  noPassword: new ErrorReply(
    'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
  ),
  noProto: new ErrorReply('NOPROTO unsupported protocol version'),
  protoNotInteger: new ErrorReply('ERR Protocol version is not an integer or out of range'),
  helloNoAuth: new ErrorReply(
    'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
  ),
  loading: new ErrorReply('LOADING Redis is loading the dataset in memory'),
  dbIndexOutOfRange: new ErrorReply('ERR DB index is out of range'),
  invalidCursor: new ErrorReply('ERR invalid cursor'),
  offsetOutOfRange: new ErrorReply('ERR offset is out of range'),
  stringTooLong: new ErrorReply('ERR string exceeds maximum allowed size (proto-max-bulk-len)'),
  maxClients: new ErrorReply('ERR max number of clients reached'),
  clientNameSpaces: new ErrorReply('ERR Client names cannot contain spaces, newlines or special characters.'),
} as const;

export const wrongArity = (name: string): ErrorReply =>
  new ErrorReply(`ERR wrong number of arguments for '${name}' command`);

export const invalidExpire = (name: string): ErrorReply => new ErrorReply(`ERR invalid expire time in '${name}' command`);

/** The bytes of an argument as C's "%.*s" prints it: up to the first NUL, at most `max` bytes. */
function cString(b: Buffer, max: number): Buffer {
  const nul = b.indexOf(0);
  return b.subarray(0, Math.min(nul < 0 ? b.length : nul, max));
}

/**
 * Redis' text for an error built from user bytes: each CR and LF becomes a
 * space. The bytes are decoded as UTF-8 because replies are encoded as UTF-8,
 * so valid UTF-8 (the usual case) comes back byte for byte.
 */
function userText(parts: Buffer[]): string {
  const b = Buffer.concat(parts);
  for (let i = 0; i < b.length; i++) if (b[i] === 13 || b[i] === 10) b[i] = 32;
  return b.toString('utf8');
}

/**
 * As Redis: the name is cut at 128 bytes; then arguments are quoted one by one,
 * each cut to the room left, until the quoted list (quotes and spaces counted)
 * reaches 128 bytes.
 */
export function unknownCommand(args: Buffer[]): ErrorReply {
  const parts: Buffer[] = [Buffer.from("ERR unknown command '"), cString(args[0]!, 128), Buffer.from("', with args beginning with: ")];
  let len = 0;
  for (let i = 1; i < args.length && len < 128; i++) {
    const a = cString(args[i]!, 128 - len);
    parts.push(Buffer.from("'"), a, Buffer.from("' "));
    len += a.length + 3;
  }
  return new ErrorReply(userText(parts));
}

export const unknownSubcommand = (sub: Buffer, cmd: string): ErrorReply =>
  new ErrorReply(userText([Buffer.from("ERR unknown subcommand '"), cString(sub, 128), Buffer.from(`'. Try ${cmd.toUpperCase()} HELP.`)]));

/** A write refused because the disk failed (as Redis' MISCONF when its AOF cannot be written). */
export const diskWriteFailed = (reason: string): ErrorReply =>
  new ErrorReply(`MISCONF Errors writing to the data directory: ${reason}`);
