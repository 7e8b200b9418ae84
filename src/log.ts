// The node's logger: pino, JSON lines by default (one object per line, for
// machines), or colourised text with --log-format pretty (for people).

import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

export function createLogger(level: LogLevel, format: 'json' | 'pretty', nodeId?: string): Logger {
  const base = nodeId ? { node: nodeId } : {};
  if (format === 'pretty') {
    return pino({ level, base, transport: { target: 'pino-pretty', options: { colorize: true, destination: 2 } } });
  }
  // Logs go to stderr so that stdout stays free for what a command prints.
  return pino({ level, base }, pino.destination({ dest: 2, sync: false }));
}
