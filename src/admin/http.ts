// The HTTP sidecar: a small read-only window on the node for orchestrators and
// people. GET /health answers 200 when the node serves and 503 while it loads;
// GET /stats answers the INFO fields as JSON.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { Server } from '../server/server.js';
import { infoText } from '../server/commands/server.js';

export class AdminServer {
  private readonly http: http.Server;

  constructor(
    private readonly server: Server,
    log: Logger,
  ) {
    this.http = http.createServer((req, res) => this.handle(req, res));
    this.http.on('error', (err) => log.error({ err }, 'admin listener error'));
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen({ host, port }, () => {
        this.http.off('error', reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    this.http.closeAllConnections();
    return new Promise((resolve) => this.http.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.json(res, 405, { error: 'method not allowed' });
    switch (url.pathname) {
      case '/health': {
        const loading = this.server.loading;
        return this.json(res, loading ? 503 : 200, { node: this.server.nodeId, status: loading ? 'loading' : 'ok' });
      }
      case '/stats':
        return this.json(res, 200, parseInfo(infoText(this.server, ['everything'])));
      default:
        return this.json(res, 404, { error: 'not found', paths: ['/health', '/stats'] });
    }
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body) + '\n';
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

/** INFO text → { section: { field: value } }, numbers as numbers. */
export function parseInfo(text: string): Record<string, Record<string, string | number>> {
  const out: Record<string, Record<string, string | number>> = {};
  let section: Record<string, string | number> = {};
  for (const line of text.split('\r\n')) {
    if (line.startsWith('# ')) {
      section = {};
      out[line.slice(2).toLowerCase()] = section;
    } else if (line.includes(':')) {
      const i = line.indexOf(':');
      const v = line.slice(i + 1);
      section[line.slice(0, i)] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    }
  }
  return out;
}
