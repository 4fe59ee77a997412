// The user-mode egress policy file (what islet-egress reads at each
// connection) and the proxy environment every exec gets.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/core/config.js';
import { EGRESS_PROXY, egressPolicyJson, guestProxyEnv, installGuestProxyEnv, withProxyEnv, writeEgressPolicy } from '../../src/net/egress.js';

test('the policy file carries the workspace policy and the [network] egress settings', () => {
  const config = resolveConfig({ network: { allowed_private_cidrs: ['10.9.0.0/16'], egress_ports: [443], dns_upstream: ['198.18.0.2'] } });
  assert.deepEqual(JSON.parse(egressPolicyJson({ internet: true, allowedDomains: ['a.test'] }, config)), {
    version: 1, internet: true, allowed_domains: ['a.test'], allowed_ports: [443], allowed_cidrs: ['10.9.0.0/16'], resolvers: ['198.18.0.2:53'],
  });
});

test('writeEgressPolicy replaces the file whole, private to its owner, leaving no temp file', () => {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'islet-egress-')), 'vm', 'ws-1');
  try {
    const config = resolveConfig({});
    writeEgressPolicy(dir, { internet: false, allowedDomains: [] }, config);
    writeEgressPolicy(dir, { internet: true, allowedDomains: [] }, config);
    assert.equal((JSON.parse(readFileSync(path.join(dir, 'egress.json'), 'utf8')) as { internet: boolean }).internet, true);
    assert.deepEqual(readdirSync(dir), ['egress.json']);
    assert.equal(statSync(path.join(dir, 'egress.json')).mode & 0o077, 0);
  } finally {
    rmSync(path.dirname(path.dirname(dir)), { recursive: true, force: true });
  }
});

test('the guest proxy environment names the proxy address in both spellings and keeps loopback direct', () => {
  const e = guestProxyEnv();
  const url = `http://${EGRESS_PROXY.address}:${EGRESS_PROXY.port}`;
  for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) assert.equal(e[k], url);
  assert.equal(e.NO_PROXY, 'localhost,127.0.0.1,::1');
  assert.equal(e.no_proxy, e.NO_PROXY);
});

test('/etc/environment: islet\'s proxy lines replace earlier ones, other lines are kept', () => {
  const once = withProxyEnv('LANG=C.UTF-8\nhttp_proxy=http://old:1\n');
  assert.match(once, /^LANG=C\.UTF-8\n/);
  assert.doesNotMatch(once, /old:1/);
  assert.equal(once.match(/^http_proxy=/gm)?.length, 1);
  assert.equal(withProxyEnv(once), once, 'idempotent');
  assert.match(withProxyEnv(''), /^HTTP_PROXY=http:\/\/10\.0\.2\.100:3128\n/);
});

test('/etc/environment is written only when its proxy lines are missing or stale', async () => {
  const files = new Map<string, string>();
  let writes = 0;
  const guest = {
    readFile: async (p: string) => { const v = files.get(p); if (v === undefined) throw new Error('ENOENT'); return { data: Buffer.from(v) }; },
    writeFile: async (p: string, d: Buffer) => { writes++; files.set(p, d.toString('utf8')); },
  };
  assert.equal(await installGuestProxyEnv(guest), true, 'missing file: created');
  assert.equal(await installGuestProxyEnv(guest), false, 'up to date: left alone');
  files.set('/etc/environment', 'LANG=C\n');
  assert.equal(await installGuestProxyEnv(guest), true, 'no proxy lines: rewritten');
  assert.equal(writes, 2);
  assert.equal(files.get('/etc/environment'), withProxyEnv('LANG=C\n'));
});
