// Connection commands: the handshake every client performs (HELLO, AUTH,
// SELECT, CLIENT SETNAME/SETINFO), liveness (PING, ECHO) and CLIENT
// introspection, in the shapes REFERENCE.md lists for each client library.

import * as crypto from 'node:crypto';
import { BulkText, ErrorReply, MapReply, OK, type Reply, VerbatimReply } from '../../../protocol/resp.js';
import { isKeyword, parseInteger, parseSafeInteger } from '../args.js';
import type { Session } from '../session.js';
import { type CommandSpec, command } from '../command.js';
import { Err, unknownSubcommand } from '../errors.js';

/** The Redis version we present: clients gate features on it (HELLO, RESP3, GETEX...). */
export const redisVersionCompat = '7.2.4';

/** Compares passwords in constant time so a timing attack learns nothing. */
function passwordMatches(expected: string, given: Buffer): boolean {
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(given).digest();
  return crypto.timingSafeEqual(a, b);
}

/** Checks AUTH's [username] password; only the "default" user exists. */
function authenticate(c: Session, user: Buffer | undefined, pass: Buffer): ErrorReply | undefined {
  const required = c.server.config.requirepass;
  if (required === undefined) {
    // Redis accepts "AUTH default <anything>" without a password only via HELLO; plain AUTH errs.
    return user === undefined ? Err.noPassword : user.toString() === 'default' ? undefined : Err.wrongPass;
  }
  if ((user !== undefined && user.toString() !== 'default') || !passwordMatches(required, pass)) {
    c.server.log.warn({ client: c.addr }, 'authentication failed');
    return Err.wrongPass;
  }
  c.setAuthenticated(true);
  return undefined;
}

/** Client names and library info may not hold spaces or control characters. */
function validName(b: Buffer): boolean {
  for (const ch of b) if (ch < 33 || ch > 126) return false;
  return true;
}

function hello(c: Session, args: Buffer[]): Reply {
  let proto = c.resp3 ? 3 : 2;
  if (args.length >= 2) {
    const v = parseInteger(args[1]!);
    if (v === undefined) return Err.protoNotInteger;
    if (v !== 2 && v !== 3) return Err.noProto;
    proto = v;
  }
  let name: Buffer | undefined;
  let authed = false;
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    if (isKeyword(a, 'AUTH') && i + 2 < args.length) {
      const err = authenticate(c, args[i + 1], args[i + 2]!);
      if (err) return err;
      authed = true;
      i += 2;
    } else if (isKeyword(a, 'SETNAME') && i + 1 < args.length) {
      name = args[++i];
      if (!validName(name!)) return Err.clientNameSpaces;
    } else {
      return new ErrorReply(`ERR Syntax error in HELLO option '${a.toString('latin1')}'`);
    }
  }
  if (!c.authenticated && !authed) return Err.helloNoAuth;
  if (name !== undefined) c.name = name.toString('latin1');
  c.setResp(proto === 3);
  return new MapReply([
    [new BulkText('server'), new BulkText('redis')],
    [new BulkText('version'), new BulkText(redisVersionCompat)],
    [new BulkText('proto'), proto],
    [new BulkText('id'), c.id],
    [new BulkText('mode'), new BulkText(c.server.cluster ? 'cluster' : 'standalone')],
    [new BulkText('role'), new BulkText('master')],
    [new BulkText('modules'), []],
  ]);
}

/** One CLIENT LIST line, with the fields and order Redis 7 prints. */
export function clientInfoLine(c: Session, now: number): string {
  const age = Math.floor((now - c.createdAtMs) / 1000);
  const idle = Math.floor((now - c.lastActiveMs) / 1000);
  return (
    `id=${c.id} addr=${c.addr} laddr=${c.laddr} fd=-1 name=${c.name} age=${age} idle=${idle} flags=N db=0 ` +
    `sub=0 psub=0 ssub=0 multi=-1 qbuf=${c.queryBufferBytes} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 ` +
    `obl=0 oll=0 omem=${c.unsentBytes} tot-mem=0 events=r cmd=${c.lastCommand} user=default redir=-1 ` +
    `resp=${c.resp3 ? 3 : 2} lib-name=${c.libName} lib-ver=${c.libVer}`
  );
}

const clientHelp = [
  'CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'GETNAME',
  '    Return the name of the current connection.',
  'ID',
  '    Return the ID of the current connection.',
  'INFO',
  '    Return information about the current client connection.',
  'KILL ID <client-id>',
  '    Kill the connection with that id.',
  'LIST [TYPE normal] [ID <id> [<id> ...]]',
  '    Return information about client connections.',
  'NO-EVICT (ON|OFF)',
  '    Accepted for compatibility; nothing is evicted.',
  'NO-TOUCH (ON|OFF)',
  '    Accepted for compatibility.',
  'SETINFO <LIB-NAME|LIB-VER> <value>',
  '    Set client meta attributes.',
  'SETNAME <name>',
  '    Assign the name <name> to the current connection.',
  'HELP',
  '    Print this help.',
];

function clientList(c: Session, args: Buffer[]): Reply {
  let ids: Set<number> | undefined;
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    if (isKeyword(a, 'TYPE') && i + 1 < args.length) {
      const t = args[++i]!.toString('latin1').toLowerCase();
      if (!['normal', 'master', 'replica', 'pubsub'].includes(t)) {
        return new ErrorReply(`ERR Unknown client type '${t}'`);
      }
      if (t !== 'normal') return new VerbatimReply('');
    } else if (isKeyword(a, 'ID') && i + 1 < args.length) {
      ids = new Set();
      while (i + 1 < args.length) {
        const id = parseSafeInteger(args[++i]!);
        if (id === undefined || id <= 0) return new ErrorReply(`ERR Invalid client ID`);
        ids.add(id);
      }
    } else {
      return Err.syntax;
    }
  }
  const now = Date.now();
  const lines: string[] = [];
  for (const other of c.server.clients.values()) {
    if (ids === undefined || ids.has(other.id)) lines.push(clientInfoLine(other, now) + '\n');
  }
  return new VerbatimReply(lines.join(''));
}

const onOff = (handler: (c: Session, on: boolean) => void) => (c: Session, args: Buffer[]): Reply => {
  const a = args[2]!;
  if (isKeyword(a, 'ON')) handler(c, true);
  else if (isKeyword(a, 'OFF')) handler(c, false);
  else return Err.syntax;
  return OK;
};

const K = { group: 'connection' as const };

const clientSubcommands: CommandSpec[] = [
  command('client|id', 2, ['noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the unique client ID of the connection.', since: '5.0.0' }, (c) => c.id),
  command('client|getname', 2, ['noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the name of the connection.', since: '2.6.9' }, (c) =>
    c.name === '' ? null : new BulkText(c.name),
  ),
  command('client|setname', 3, ['noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Sets the connection name.', since: '2.6.9' }, (c, a) => {
    if (!validName(a[2]!)) return Err.clientNameSpaces;
    c.name = a[2]!.toString('latin1');
    return OK;
  }),
  command('client|setinfo', 4, ['noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Sets information specific to the client or connection.', since: '7.2.0' }, (c, a) => {
    const attr = a[2]!;
    if (!validName(a[3]!)) {
      return new ErrorReply(`ERR ${attr.toString('latin1')} cannot contain spaces, newlines or special characters.`);
    }
    if (isKeyword(attr, 'LIB-NAME')) c.libName = a[3]!.toString('latin1');
    else if (isKeyword(attr, 'LIB-VER')) c.libVer = a[3]!.toString('latin1');
    else return new ErrorReply(`ERR Unrecognized option '${attr.toString('latin1')}'`);
    return OK;
  }),
  command('client|list', -2, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Lists open connections.', since: '2.4.0', complexity: 'O(N) where N is the number of client connections' }, clientList),
  command('client|info', 2, ['noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns information about the connection.', since: '6.2.0' }, (c) =>
    new VerbatimReply(clientInfoLine(c, Date.now()) + '\n'),
  ),
  command('client|kill', -3, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Terminates open connections.', since: '2.4.0' }, (c, a) => {
    // Old form, CLIENT KILL addr:port: OK or "No such client".
    if (a.length === 3) {
      const addr = a[2]!.toString('latin1');
      const target = [...c.server.clients.values()].find((o) => o.addr === addr);
      if (target === undefined) return new ErrorReply('ERR No such client');
      if (target === c) c.closeAfterReply();
      else target.kill();
      return OK;
    }
    // New form, filters: the number killed; the caller itself is skipped unless SKIPME no.
    let id: number | undefined;
    let addr: string | undefined;
    let laddr: string | undefined;
    let skipMe = true;
    for (let i = 2; i < a.length; i += 2) {
      if (i + 1 >= a.length) return Err.syntax;
      const opt = a[i]!;
      const v = a[i + 1]!;
      if (isKeyword(opt, 'ID')) {
        const n = parseInteger(v);
        if (n === undefined || n < 1) return new ErrorReply('ERR client-id should be greater than 0');
        id = Number(n);
      } else if (isKeyword(opt, 'ADDR')) addr = v.toString('latin1');
      else if (isKeyword(opt, 'LADDR')) laddr = v.toString('latin1');
      else if (isKeyword(opt, 'SKIPME')) {
        if (isKeyword(v, 'YES')) skipMe = true;
        else if (isKeyword(v, 'NO')) skipMe = false;
        else return Err.syntax;
      } else return Err.syntax;
    }
    let killed = 0;
    for (const o of [...c.server.clients.values()]) {
      if ((id !== undefined && o.id !== id) || (addr !== undefined && o.addr !== addr) || (laddr !== undefined && o.laddr !== laddr)) continue;
      if (o === c) {
        if (skipMe) continue;
        c.closeAfterReply();
      } else o.kill();
      killed++;
    }
    return killed;
  }),
  command('client|no-evict', 3, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Sets the client eviction mode of the connection.', since: '7.0.0' }, onOff(() => {})),
  command('client|no-touch', 3, ['noscript', 'loading', 'stale'], [0, 0, 0], { ...K, summary: 'Controls whether commands sent by the client affect the LRU/LFU of accessed keys.', since: '7.2.0' }, onOff(() => {})),
  command('client|help', 2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'Returns helpful text about the different subcommands.', since: '5.0.0' }, () =>
    clientHelp.map((l) => l),
  ),
];

export const connectionCommands: CommandSpec[] = [
  command('ping', -1, ['fast', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the server\'s liveliness response.', since: '1.0.0' }, (_c, a) => {
    if (a.length > 2) return new ErrorReply("ERR wrong number of arguments for 'ping' command");
    return a.length === 2 ? a[1]! : 'PONG';
  }),
  command('echo', 2, ['fast', 'stale'], [0, 0, 0], { ...K, summary: 'Returns the given string.', since: '1.0.0' }, (_c, a) => a[1]!),
  command('hello', -1, ['noscript', 'loading', 'stale', 'fast', 'noauth'], [0, 0, 0], { ...K, summary: 'Handshakes with the Redis server.', since: '6.0.0' }, hello),
  command('auth', -2, ['noscript', 'loading', 'stale', 'fast', 'noauth'], [0, 0, 0], { ...K, summary: 'Authenticates the connection.', since: '1.0.0' }, (c, a) => {
    if (a.length > 3) return Err.syntax;
    const err = a.length === 3 ? authenticate(c, a[1], a[2]!) : authenticate(c, undefined, a[1]!);
    return err ?? OK;
  }),
  command('select', 2, ['loading', 'stale', 'fast'], [0, 0, 0], { ...K, summary: 'Changes the selected database.', since: '1.0.0' }, (_c, a) => {
    // As Redis' getIntFromObjectOrReply: an int64 outside int32 has its own message.
    const db = parseInteger(a[1]!);
    if (db === undefined) return Err.notInteger;
    if (db < -2147483648 || db > 2147483647) return new ErrorReply('ERR value is out of range, value must between -2147483648 and 2147483647');
    return db === 0 ? OK : Err.dbIndexOutOfRange;
  }),
  command('quit', -1, ['noscript', 'loading', 'stale', 'fast', 'noauth'], [0, 0, 0], { ...K, summary: 'Closes the connection.', since: '1.0.0' }, (c) => {
    c.closeAfterReply();
    return OK;
  }),
  command('reset', 1, ['noscript', 'loading', 'stale', 'fast', 'noauth'], [0, 0, 0], { ...K, summary: 'Resets the connection.', since: '6.2.0' }, (c) => {
    c.setResp(false);
    c.name = '';
    c.setAuthenticated(c.server.config.requirepass === undefined);
    return 'RESET';
  }),
  command('client', -2, ['loading', 'stale'], [0, 0, 0], { ...K, summary: 'A container for client connection commands.', since: '2.4.0', complexity: 'Depends on subcommand.' }, (_c, a) =>
    unknownSubcommand(a[1] ?? Buffer.alloc(0), 'client'),
    clientSubcommands,
  ),
];
