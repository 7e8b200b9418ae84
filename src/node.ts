// One Distri-KV node, wired together: the client server starts listening at
// once (answering -LOADING), the segment store recovers, then the KeyValue
// service is switched in and the node serves. close() is the orderly shutdown
// SIGTERM runs: stop accepting, flush, fsync, release the data directory.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminServer } from './admin/http.js';
import type { Config } from './config.js';
import { ClusterMember } from './cluster-member.js';
import { LocalKeyValue } from './kv/local.js';
import { type Logger, createLogger } from './log.js';
import { Server } from './server/server.js';
import { SegmentStore } from './storage/store.js';

export interface RunningNode {
  readonly nodeId: string;
  readonly server: Server;
  readonly port: number;
  readonly adminPort: number | undefined;
  /** Resolves when the store has loaded and the node serves data. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** The node id: from config, else the one kept in the data directory, else a new one kept there. */
export function resolveNodeId(config: Config): string {
  if (config.nodeId) return config.nodeId;
  fs.mkdirSync(config.dataDir, { recursive: true });
  const file = path.join(config.dataDir, 'node-id');
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{40}$/.test(id)) return id;
  } catch {
    /* no id yet */
  }
  // 40 hex characters, the shape of a Redis Cluster node id.
  const id = crypto.randomBytes(20).toString('hex');
  fs.writeFileSync(file + '.tmp', id + '\n');
  fs.renameSync(file + '.tmp', file);
  return id;
}

/**
 * A data directory holds plain values (standalone) or versioned objects
 * (cluster member); the two do not mix, so the mode is recorded on first start
 * and a node refuses to start in the other mode.
 */
export function checkDataMode(config: Config): void {
  const file = path.join(config.dataDir, 'mode');
  const want = config.clusterEnabled ? 'cluster' : 'standalone';
  let have: string | undefined;
  try {
    have = fs.readFileSync(file, 'utf8').trim();
  } catch {
    /* first start */
  }
  if (have === undefined) {
    fs.mkdirSync(config.dataDir, { recursive: true });
    fs.writeFileSync(file, want + '\n');
  } else if (have !== want) {
    throw new Error(
      `data directory ${config.dataDir} holds ${have} data but the node is configured as ${want}; ` +
        `start it as ${have === 'cluster' ? 'a cluster member (--cluster-enabled yes)' : 'standalone (without --seeds / --cluster-enabled)'} or use another --data-dir`,
    );
  }
}

export async function startNode(config: Config, log?: Logger): Promise<RunningNode> {
  const nodeId = resolveNodeId(config);
  log ??= createLogger(config.logLevel, config.logFormat, nodeId);
  const server = new Server(config, nodeId, log);
  const addr = await server.listen(config.host, config.port);
  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  if (config.adminPort !== 0) {
    admin = new AdminServer(server, log);
    adminPort = (await admin.listen(config.host, config.adminPort)).port;
  }
  log.info({ host: config.host, port: addr.port, adminPort, dataDir: path.resolve(config.dataDir), fsync: config.fsync }, 'listening; loading data');

  let progress = { bytesDone: 0, bytesTotal: 0, startedAtMs: Date.now() };
  server.storage = { stats: () => ({}), loadingProgress: () => progress };
  let store: SegmentStore | undefined;
  let member: ClusterMember | undefined;
  checkDataMode(config);
  const ready = SegmentStore.open({
    dir: config.dataDir,
    fsync: config.fsync,
    segmentBytesMax: config.segmentBytesMax,
    cacheBytes: config.cacheBytes,
    compressBytesMin: config.compressBytesMin,
    compressLevel: config.compressLevel,
    compaction: config.compaction,
    compactionMinDeadRatio: config.compactionMinDeadPercent / 100,
    compactionRateMB: config.compactionRateMb,
    tombstoneGraceSeconds: config.tombstoneGraceSeconds,
    logger: log.child({ module: 'storage' }),
    onProgress: (bytesDone: number, bytesTotal: number) => {
      progress = { ...progress, bytesDone, bytesTotal };
    },
  }).then(async (s) => {
    store = s;
    server.storage = {
      stats: () => s.stats() as unknown as Record<string, unknown>,
      loadingProgress: () => undefined,
      compactInBackground: () => {
        if (s.stats().compaction.running) return false;
        s.compactNow().catch((err) => log.error({ err }, `BGREWRITEAOF: compaction failed: ${(err as Error).message}`));
        return true;
      },
    };
    if (config.clusterEnabled) {
      member = new ClusterMember(config, nodeId, server, s, addr.port, log.child({ module: 'cluster' }));
      await member.start();
      server.cluster = member;
      server.kv = member.coordinator;
    } else {
      server.kv = new LocalKeyValue(s);
    }
    log.info({ keys: s.size, loadMs: Date.now() - progress.startedAtMs, cluster: config.clusterEnabled }, 'data loaded; serving');
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info('shutting down');
      await server.close();
      await ready.catch(() => {});
      await member?.close();
      await admin?.close();
      await store?.close();
      log.info('shut down cleanly');
      log.flush();
    })());

  return { nodeId, server, port: addr.port, adminPort, ready, close };
}
