// The command table: every command the server knows, by lower-case name.
// Upper-case aliases are added so the common spelling is found without
// lower-casing the name on the hot path.

import type { CommandSpec } from '../command.js';
import { clusterCommands } from './cluster.js';
import { connectionCommands } from './connection.js';
import { keyCommands } from './keys.js';
import { serverCommands } from './server.js';
import { stringCommands } from './strings.js';

export function commandTable(): Map<string, CommandSpec> {
  const table = new Map<string, CommandSpec>();
  for (const spec of [...connectionCommands, ...serverCommands, ...stringCommands, ...keyCommands, ...clusterCommands]) {
    if (table.has(spec.name)) throw new Error(`command ${spec.name} declared twice`);
    table.set(spec.name, spec);
  }
  for (const spec of [...table.values()]) table.set(spec.name.toUpperCase(), spec);
  return table;
}
