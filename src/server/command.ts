// The shape of a command in the command table. Each command is declared once
// (see src/server/commands/): its name, arity, flags and key positions drive
// the dispatcher's checks, and COMMAND / COMMAND DOCS / INFO commandstats are
// generated from the same declarations.

import type { Reply } from '../../protocol/resp.js';
import type { Session } from './session.js';

export type CommandFlag =
  | 'write' // changes data; replies wait for durability
  | 'readonly'
  | 'admin'
  | 'fast' // O(1) or O(log N)
  | 'loading' // allowed while the dataset loads
  | 'stale'
  | 'noauth' // allowed before AUTH
  | 'noscript'
  | 'denyoom'
  | 'rmw'; // reads then writes its key: in a cluster it runs on the key's first owner

export type Handler = (session: Session, args: Buffer[]) => Reply | Promise<Reply>;

export interface CommandSpec {
  /** Lower-case name, or "parent|sub" for a subcommand. */
  name: string;
  /** As Redis: positive = exact argument count (name included), negative = at least -arity. */
  arity: number;
  flags: CommandFlag[];
  /** flags includes 'write' (its replies wait for durability); derived once for the hot path. */
  writes: boolean;
  /** In a cluster, whether this invocation must run on its key's first owner ('rmw' flag, or per arguments). */
  routed?: (args: Buffer[]) => boolean;
  /** Key positions (1-based, last may be negative counting from the end), 0 when none. */
  firstKey: number;
  lastKey: number;
  step: number;
  group: 'string' | 'generic' | 'connection' | 'server' | 'cluster' | 'keyspace';
  summary: string;
  since: string;
  complexity: string;
  /** ACL categories reported by COMMAND INFO (without the leading @). */
  acl: string[];
  handler: Handler;
  subcommands?: CommandSpec[];
}

/** Declares a command with the defaults most share; `spec` names what differs. */
export function command(
  name: string,
  arity: number,
  flags: CommandFlag[],
  keys: [first: number, last: number, step: number],
  meta: { group: CommandSpec['group']; summary: string; since: string; complexity?: string; acl?: string[] },
  handler: Handler,
  subcommands?: CommandSpec[],
): CommandSpec {
  const acl = meta.acl ?? [meta.group === 'generic' ? 'keyspace' : meta.group];
  if (flags.includes('write')) acl.push('write');
  if (flags.includes('readonly')) acl.push('read');
  if (flags.includes('fast')) acl.push('fast');
  else acl.push('slow');
  if (flags.includes('admin')) acl.push('admin', 'dangerous');
  return {
    name,
    arity,
    flags,
    writes: flags.includes('write'),
    routed: flags.includes('rmw') ? () => true : undefined,
    firstKey: keys[0],
    lastKey: keys[1],
    step: keys[2],
    group: meta.group,
    summary: meta.summary,
    since: meta.since,
    complexity: meta.complexity ?? 'O(1)',
    acl,
    handler,
    subcommands,
  };
}

/** Whether an argument count fits a Redis-style arity. */
export function arityOk(arity: number, argc: number): boolean {
  return arity >= 0 ? argc === arity : argc >= -arity;
}

/** The key arguments of a command invocation, per its key positions. */
export function keysOf(spec: CommandSpec, args: Buffer[]): Buffer[] {
  if (spec.firstKey === 0) return [];
  const last = spec.lastKey < 0 ? args.length + spec.lastKey : spec.lastKey;
  const keys: Buffer[] = [];
  for (let i = spec.firstKey; i <= last && i < args.length; i += spec.step) keys.push(args[i]!);
  return keys;
}
