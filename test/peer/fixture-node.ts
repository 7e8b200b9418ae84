// A PeerTransport in its own process, for tests that kill a node for real
// (SIGKILL: no FIN from a tidy close, the kernel resets the sockets).
// argv: <node number> <port>. Echoes every request, except that a readBatch for
// the key "hang" is never answered. Prints "listening <port>" when ready.

import { pino } from 'pino';
import { PeerTransport } from '../../src/peer/index.js';
import { nodeId } from './helpers.js';

const n = Number(process.argv[2]);
const port = Number(process.argv[3]);
const transport = new PeerTransport({ nodeId: nodeId(n), logger: pino({ level: 'silent' }) });
transport.setHandler((_from, msg) => {
  if (msg.type === 'readBatch' && msg.items[0]!.key.toString() === 'hang') return new Promise(() => {});
  return msg;
});
const bound = await transport.listen('127.0.0.1', port);
process.stdout.write(`listening ${bound}\n`);
