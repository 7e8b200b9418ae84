// Configuration: precedence flag > env > file > default, and errors that name the bad key.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig, parseBytes } from '../../src/config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkv-config-'));
const file = path.join(dir, 'node.yaml');
fs.writeFileSync(file, 'port: 7000\nfsync: always\ndata-dir: /tmp/x\ncache-bytes: 64mb\n');

t.test('defaults', async (t) => {
  const c = loadConfig({}, {});
  t.equal(c.port, 6379);
  t.equal(c.host, '127.0.0.1');
  t.equal(c.dataDir, './data');
  t.equal(c.adminPort, 8080);
  t.equal(c.fsync, 'everysec');
});

t.test('precedence: flag > env > file > default', async (t) => {
  const fromFile = loadConfig({}, {}, file);
  t.equal(fromFile.port, 7000);
  t.equal(fromFile.fsync, 'always');
  t.equal(fromFile.cacheBytes, 64 * 1024 * 1024);
  const fromEnv = loadConfig({}, { DISTRI_KV_PORT: '7100', DISTRI_KV_DATA_DIR: '/tmp/y' }, file);
  t.equal(fromEnv.port, 7100);
  t.equal(fromEnv.dataDir, '/tmp/y');
  t.equal(fromEnv.fsync, 'always', 'file value kept where env is silent');
  const fromFlag = loadConfig({ port: '7200' }, { DISTRI_KV_PORT: '7100' }, file);
  t.equal(fromFlag.port, 7200);
});

t.test('errors name the setting and what it accepts', async (t) => {
  t.throws(() => loadConfig({ fsync: 'sometimes' }, {}), new ConfigError('fsync (from --fsync): expected one of always, everysec, no, got \'sometimes\''));
  t.throws(() => loadConfig({}, { DISTRI_KV_PORT: '99999' }), /port \(from environment DISTRI_KV_PORT\): expected a port number 0-65535/);
  t.throws(() => loadConfig({ cacheBytes: 'lots' }, {}), /cache-bytes .*units b, kb, mb, gb allowed/);
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, 'prot: 1\n');
  t.throws(() => loadConfig({}, {}, bad), /unknown setting 'prot'/);
  fs.writeFileSync(bad, 'port: [1\n');
  t.throws(() => loadConfig({}, {}, bad), /not valid YAML/);
  t.throws(() => loadConfig({}, {}, path.join(dir, 'missing.yaml')), /config file .*missing.yaml/);
});

t.test('parseBytes', async (t) => {
  t.equal(parseBytes('1024'), 1024);
  t.equal(parseBytes('64kb'), 65536);
  t.equal(parseBytes('1GB'), 1024 ** 3);
  t.equal(parseBytes('1k'), 1000);
  t.equal(parseBytes('12 parsecs'), undefined);
});
