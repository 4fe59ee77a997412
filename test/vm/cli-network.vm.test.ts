// The real CLI for the network operations against a real daemon and VM:
// `ws create --allow-internet`, `ws forward add|list|rm` (a guest web
// server answers through the forward, and stops answering once it is
// removed), `ws ip`, and `ws policy` (show, change, and refuse a bad flag).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfig } from '../../src/core/config.js';
import { stopDaemon } from './daemon-stop.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-clinet-'));
const cfgFile = path.join(dataDir, 'islet.toml');
writeFileSync(cfgFile, `[storage]\ndata_dir = "${dataDir}"\ncache_dir = "${loadConfig().paths.cacheDir}"\n[pool]\nenabled = false\n`);
/** The CLI on this test's data dir; flags go before any `--`. */
function args(a: string[]): string[] {
  const i = a.indexOf('--');
  const flags = ['--config', cfgFile, '-q'];
  return [path.resolve('bin/islet.js'), ...(i < 0 ? [...a, ...flags] : [...a.slice(0, i), ...flags, ...a.slice(i)])];
}
const islet = (...a: string[]) => execFileSync(process.execPath, args(a), { encoding: 'utf8', timeout: 300_000 });
const isletJson = <T>(...a: string[]) => JSON.parse(islet(...a, '--json')) as T;

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

after(() => {
  spawnSync(process.execPath, args(['ws', 'destroy', 'net']), { timeout: 120_000 });
  stopDaemon(cfgFile);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('islet ws forward / ip / policy', { timeout: 600_000 }, () => {
  test('create --allow-internet, forward add/list/rm through a guest web server, ip, policy', async () => {
    const w = isletJson<{ allow_internet: boolean }>('ws', 'create', '--name', 'net', '--allow-internet');
    assert.equal(w.allow_internet, true);

    islet('ws', 'exec', 'net', '--sh', 'mkdir -p /root/www && echo hello-from-guest > /root/www/index.html');
    islet('ws', 'exec', 'net', '-d', '--sh', 'exec busybox httpd -f -p 8080 -h /root/www');
    const fwd = isletJson<{ host_port: number; guest_port: number }>('ws', 'forward', 'add', 'net', '8080');
    assert.equal(fwd.guest_port, 8080);
    assert.match(islet('ws', 'forward', 'list', 'net'), new RegExp(`127\\.0\\.0\\.1:${fwd.host_port} -> guest 8080`));
    let body = '';
    for (let i = 0; i < 30 && !body.includes('hello-from-guest'); i++) {
      body = await get(fwd.host_port).catch(() => '');
      if (!body) await delay(1_000);
    }
    assert.match(body, /hello-from-guest/);

    const ip = islet('ws', 'ip', 'net');
    assert.match(ip, /^mode: +user$/m);
    assert.match(ip, /^ip: +10\.0\.2\.15$/m);
    assert.match(ip, /^internet: +on$/m);
    assert.match(ip, new RegExp(`:${fwd.host_port} -> guest 8080`));

    assert.match(islet('ws', 'policy', 'net'), /^internet: +on$/m);
    const changed = isletJson<{ allow_internet: boolean; applied: string }>('ws', 'policy', 'net', '--internet', 'off');
    assert.equal(changed.allow_internet, false);
    assert.equal(changed.applied, 'live', 'user mode changes the egress policy of the running VM');
    assert.match(islet('ws', 'policy', 'net'), /^internet: +off$/m);
    assert.match(await get(fwd.host_port), /hello-from-guest/, 'the forward still works: the VM kept running');
    const ports = spawnSync(process.execPath, args(['ws', 'policy', 'net', '--ports', '80']), { encoding: 'utf8' });
    assert.notEqual(ports.status, 0);
    assert.match(ports.stderr, /error\[NOT_SUPPORTED\]: allowed_ports need \[network\] mode = "bridge"/);
    const bad = spawnSync(process.execPath, args(['ws', 'policy', 'net', '--internet', 'maybe']), { encoding: 'utf8' });
    assert.equal(bad.status, 64);
    assert.match(bad.stderr, /--internet must be on or off/);

    assert.match(islet('ws', 'forward', 'rm', 'net', String(fwd.host_port)), new RegExp(`removed the forward of host port ${fwd.host_port}`));
    assert.equal(islet('ws', 'forward', 'list', 'net'), 'no port forwards\n');
    await assert.rejects(get(fwd.host_port), 'nothing listens on the host port any more');
  });
});
