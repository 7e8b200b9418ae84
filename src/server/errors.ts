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
  selectNotAllowed: new ErrorReply('ERR SELECT is not allowed in cluster mode'),
  invalidCursor: new ErrorReply('ERR invalid cursor'),
  offsetOutOfRange: new ErrorReply('ERR offset is out of range'),
  stringTooLong: new ErrorReply('ERR string exceeds maximum allowed size (proto-max-bulk-len)'),
  maxClients: new ErrorReply('ERR max number of clients reached'),
  timeoutNotInteger: new ErrorReply('ERR timeout is not an integer or out of range'),
  clientNameSpaces: new ErrorReply('ERR Client names cannot contain spaces, newlines or special characters.'),
} as const;

export const wrongArity = (name: string): ErrorReply =>
  new ErrorReply(`ERR wrong number of arguments for '${name}' command`);

export const invalidExpire = (name: string): ErrorReply => new ErrorReply(`ERR invalid expire time in '${name}' command`);

/** Redis quotes at most 128 bytes of the name and of each argument, printing up to ~128 bytes of args. */
export function unknownCommand(args: Buffer[]): ErrorReply {
  let text = `ERR unknown command '${args[0]!.toString('latin1').slice(0, 128)}', with args beginning with: `;
  let room = 128;
  for (let i = 1; i < args.length && room > 0; i++) {
    const a = args[i]!.toString('latin1').slice(0, room);
    room -= a.length;
    text += `'${a}' `;
  }
  return new ErrorReply(text);
}

export const unknownSubcommand = (sub: string, cmd: string): ErrorReply =>
  new ErrorReply(`ERR unknown subcommand '${sub.slice(0, 128)}'. Try ${cmd.toUpperCase()} HELP.`);

/** A write refused because the disk failed (as Redis' MISCONF when its AOF cannot be written). */
export const diskWriteFailed = (reason: string): ErrorReply =>
  new ErrorReply(`MISCONF Errors writing to the data directory: ${reason}`);
