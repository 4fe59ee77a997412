// User-mode egress (issue 15) against a real VM, inside network namespaces
// this test makes (test/fixtures/netns.ts, egress-world.ts): `islet serve`
// runs in the "islet" namespace (which plays the host) in user mode and is
// driven over MCP stdio; a second islet serves MCP over HTTP there on
// 127.0.0.1 (islet's own control plane); the "inet" namespace plays the
// internet: a public address, the metadata address, private addresses, and a
// DNS server. With internet on, the guest reaches the public address through
// the egress proxy and nothing of the host, link-local or private; direct
// connections go nowhere (slirp restrict=on); a domain list and internet
// off apply live while a guest process keeps running.
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ExecOutput, NetworkPolicyOutput, WorkspaceInfo } from '../../src/service/types.js';
import { addEgressWorld, ALLOWED_PRIVATE, ALLOWED_PRIVATE_CIDR, METADATA, PRIVATE, PUBLIC } from '../fixtures/egress-world.js';
import { inetPeerArgs, ISLET_SIDE, makeTopology, netnsUnavailable, SITE_A, SITE_PORT, Topology } from '../fixtures/netns.js';
import { cleanupBefore, vmEnv } from './factory.js';

const skip = await netnsUnavailable();
const SLOW = { timeout: 300_000 };
const HOLD_PORT = 47200 + (process.pid % 500);
const ISLET_HTTP_PORT = HOLD_PORT + 1;

describe('user-mode egress in a network namespace', { timeout: 1_200_000, skip }, () => {
  const vm = vmEnv('net-egress', {
    network: { mode: 'user', dns_upstream: [SITE_A], allowed_private_cidrs: [ALLOWED_PRIVATE_CIDR] },
    pool: { enabled: false },
    server: { stdio_owner: 'egress-test' },
  });
  // A second islet, islet's own control plane on the host, with no VMs.
  const httpVm = vmEnv('net-egress-http', { network: { mode: 'none' }, pool: { enabled: false } });
  const cfgFile = vm.cfgFile;
  let topo: Topology;
  let client: Client;
  let stderr = '';
  let islet: ChildProcess | undefined;
  let ws: WorkspaceInfo;

  const call = async (name: string, args: Record<string, unknown>) => await client.callTool({ name, arguments: args }, undefined, SLOW) as CallToolResult;
  const ok = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
    const r = await call(name, args);
    assert.notEqual(r.isError, true, `${name} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as T;
  };
  const policy = (p: Record<string, unknown>) => ok<NetworkPolicyOutput>('network_policy', { workspace_id: ws.workspace_id, ...p });
  const sh = async (command: string) => (await ok<ExecOutput>('exec', { workspace_id: ws.workspace_id, command, timeout_ms: 60_000 }));
  /** curl in the guest with the proxy settings every exec gets (even for localhost); tunnel: through CONNECT (as https would go). */
  const get = async (url: string, tunnel = false) => {
    const r = await sh(`curl -sS -m 10 --noproxy '' ${tunnel ? '-p ' : ''}${url} 2>&1; echo " rc=$?"`);
    return r.stdout.trim();
  };
  /** Both ways through the proxy must be refused with the proxy's 403, and nothing of the target may come back. */
  const refused = async (url: string, why: RegExp) => {
    const plain = await get(url);
    assert.match(plain, /islet egress: refused/, `${url}: ${plain}`);
    assert.match(plain, why, `${url}: ${plain}`);
    assert.doesNotMatch(plain, /site |held/, url);
    const tunnel = await get(url, true);
    assert.match(tunnel, /403/, `${url} (CONNECT): ${tunnel}`);
    assert.doesNotMatch(tunnel, /site |held|rc=0$/, url);
  };
  /** A raw TCP connection that bypasses the proxy. */
  const direct = async (ip: string, port: number) => (await sh(`echo x | timeout 6 busybox nc ${ip} ${port} 2>&1; echo rc=$?`)).stdout.trim();
  vm.note('islet serve stderr', () => stderr.slice(-4000));

  before(async () => {
    topo = await makeTopology(`ne${process.pid}`);
    // VMs and the egress proxies live in the islet namespace: the leftover cleanup runs there too.
    for (const e of [vm, httpVm]) e.cleanupUnder(['ip', 'netns', 'exec', topo.islet]);
    await topo.peer(topo.inet, inetPeerArgs()); // DNS for allowed.test / blocked.test on SITE_A
    await addEgressWorld(topo);
    // Two host listeners: one on loopback, one on the host's own (non-loopback) address.
    await topo.peer(topo.islet, ['hold', '127.0.0.1', String(HOLD_PORT)]);
    await topo.peer(topo.islet, ['hold', ISLET_SIDE, String(HOLD_PORT)]);
    islet = httpVm.track(spawn('ip', ['netns', 'exec', topo.islet, process.execPath, path.resolve('bin/islet.js'), 'serve', '--http', '--port', String(ISLET_HTTP_PORT),
      '--config', httpVm.cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] }));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`islet serve --http did not start: ${err}`)), 60_000);
      islet!.stderr!.on('data', (c: Buffer) => { err += c.toString(); if (/Streamable HTTP on/.test(err)) { clearTimeout(t); resolve(); } });
      islet!.once('exit', (code) => { clearTimeout(t); reject(new Error(`islet serve --http exited (${code}): ${err}`)); });
    });
    const up = await topo.exec(topo.islet, [process.execPath, path.resolve('dist/test/fixtures/net-peer.js'), 'get', '127.0.0.1', String(ISLET_HTTP_PORT)], { allowFailure: true });
    assert.doesNotMatch(up.stdout, /^error/, 'islet HTTP answers on the host');

    const transport = vm.track(new StdioClientTransport({
      command: 'ip', args: ['netns', 'exec', topo.islet, process.execPath, path.resolve('bin/islet.js'), 'serve', '--config', cfgFile], stderr: 'pipe',
    }));
    transport.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    client = new Client({ name: 'islet-egress-test', version: '0' });
    await client.connect(transport);
    ws = await ok<WorkspaceInfo>('workspace_create', { name: 'egress', allow_internet: true });
  }, { timeout: 600_000 });

  after(async () => {
    if (ws) await ok('workspace_destroy', { workspace_id: ws.workspace_id }).catch(() => undefined);
    await client?.close().catch(() => undefined);
    // The factories' teardown (the daemon, the HTTP islet, leftover VMs) runs in the namespace, so before it goes.
    await cleanupBefore([vm, httpVm], async () => topo?.close());
  }, { timeout: 600_000 });

  test('every exec has the proxy settings; slirp answers no DNS and opens no direct connection', async () => {
    const env = await sh('env | grep -i _proxy | sort');
    assert.match(env.stdout, /^HTTPS_PROXY=http:\/\/10\.0\.2\.100:3128$/m);
    assert.match(env.stdout, /^http_proxy=http:\/\/10\.0\.2\.100:3128$/m);
    assert.match(env.stdout, /^NO_PROXY=localhost,127\.0\.0\.1,::1$/m);
    const etc = await sh('cat /etc/environment');
    assert.match(etc.stdout, /^https_proxy=http:\/\/10\.0\.2\.100:3128$/m, 'login shells and services learn it too');
    const dns = await sh('timeout 4 busybox nslookup allowed.test 10.0.2.3 2>&1; echo rc=$?');
    assert.doesNotMatch(dns.stdout, /198\.18\.0\.2/, dns.stdout);
    for (const [ip, port] of [['10.0.2.2', HOLD_PORT], [ISLET_SIDE, HOLD_PORT], ['10.0.2.2', ISLET_HTTP_PORT], [PUBLIC, SITE_PORT], [METADATA, 80]] as const) {
      const r = await direct(ip, port);
      assert.match(r, /rc=[1-9]/, `direct ${ip}:${port}: ${r}`);
      assert.doesNotMatch(r, /held|site /);
    }
  });

  test('through the proxy the host is refused: its loopback, islet\'s HTTP endpoint, its own address', async () => {
    await refused(`http://127.0.0.1:${HOLD_PORT}/`, /loopback/);
    await refused(`http://localhost:${HOLD_PORT}/`, /loopback/);
    await refused(`http://10.0.2.2:${HOLD_PORT}/`, /private/);
    await refused(`http://127.0.0.1:${ISLET_HTTP_PORT}/mcp`, /loopback/);
    await refused(`http://${ISLET_SIDE}:${HOLD_PORT}/`, /an address of this host/);
  });

  test('link-local (the metadata address) and private addresses are refused; an allowed private range is reached', async () => {
    await refused(`http://${METADATA}:${SITE_PORT}/latest/meta-data/`, /link-local/);
    await refused(`http://${PRIVATE}:${SITE_PORT}/`, /private address/);
    assert.match(await get(`http://${ALLOWED_PRIVATE}:${SITE_PORT}/`), new RegExp(`^site ${ALLOWED_PRIVATE}`));
  });

  test('a public address is reached, as plain HTTP and through CONNECT', async () => {
    assert.match(await get(`http://${PUBLIC}:${SITE_PORT}/`), new RegExp(`^site ${PUBLIC}\\s+rc=0$`));
    assert.match(await get(`http://${PUBLIC}:${SITE_PORT}/`, true), new RegExp(`^site ${PUBLIC}\\s+rc=0$`));
    assert.match(await get(`http://blocked.test:${SITE_PORT}/`), /^site 198\.18\.0\.3/, 'any name resolves while no domain list is set');
  });

  test('policy changes apply live and a guest process survives them: a domain list, then internet off', async () => {
    await sh("setsid sh -c 'echo $$ > /tmp/bg.pid; while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null &");
    const alive = async () => (await sh('sleep 1; kill -0 "$(cat /tmp/bg.pid)" && cat /tmp/bg.pid')).stdout.trim();
    const pid = await alive();
    assert.match(pid, /^\d+$/, 'the background process runs');
    const p = await policy({ allowed_domains: ['allowed.test'] });
    assert.deepEqual([p.applied, p.allowed_domains], ['live', ['allowed.test']]);
    assert.match(await get(`http://allowed.test:${SITE_PORT}/`), /^site 198\.18\.0\.2\s+rc=0$/);
    assert.match(await get(`http://allowed.test:${SITE_PORT}/`, true), /^site 198\.18\.0\.2\s+rc=0$/);
    await refused(`http://blocked.test:${SITE_PORT}/`, /not an allowed domain/);
    await refused(`http://${PUBLIC}:${SITE_PORT}/`, /by name/);
    const off = await policy({ allow_internet: false });
    assert.deepEqual([off.applied, off.allow_internet], ['live', false]);
    await refused(`http://allowed.test:${SITE_PORT}/`, /internet access is off/);
    const on = await policy({ allow_internet: true, allowed_domains: [] });
    assert.equal(on.applied, 'live');
    assert.match(await get(`http://${PUBLIC}:${SITE_PORT}/`), new RegExp(`^site ${PUBLIC}`));
    assert.equal(await alive(), pid, 'the process outlived every change');
    const info = await ok<WorkspaceInfo>('workspace_info', { workspace_id: ws.workspace_id });
    assert.equal(info.state, 'running');
  });
});
