// Bridge mode against real VMs, entirely inside network namespaces this test
// makes (test/fixtures/netns.ts): `islet serve` runs in the "islet"
// namespace (ip netns exec) and is driven over MCP stdio; a second namespace
// joined by a veth pair plays the internet (HTTP on two addresses, DNS for
// two names). Two workspaces, booted once, go through: own addresses, no
// guest-to-guest traffic by default, allowed_ports, inter-VM on both sides,
// internet only when allowed (DNS with it), a domain allowlist, port
// forwards with bad input, and nothing of islet's left after shutdown. The
// host's own network is never used.
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ExecOutput, NetworkPolicyOutput, WorkspaceInfo, WorkspaceIpOutput } from '../../src/service/types.js';
import { addEgressWorld, ALLOWED_PRIVATE, ALLOWED_PRIVATE_CIDR, METADATA, PRIVATE, PUBLIC } from '../fixtures/egress-world.js';
import { inetPeerArgs, ISLET_SIDE, makeTopology, netnsUnavailable, SITE_A, SITE_B, SITE_PORT, Topology } from '../fixtures/netns.js';
import { daemonPidFor, stopDaemon } from './daemon-stop.js';
import { cleanupBefore, vmEnv } from './factory.js';

const skip = await netnsUnavailable();
const HOST_PORT = 47700 + (process.pid % 200);
const ISLET_HTTP_PORT = HOST_PORT + 1;
const SLOW = { timeout: 300_000 };

describe('bridge networking in a network namespace', { timeout: 1_200_000, skip }, () => {
  const vm = vmEnv('net-bridge', {
    network: { mode: 'bridge', dns_upstream: [SITE_A], allowed_private_cidrs: [ALLOWED_PRIVATE_CIDR] },
    server: { stdio_owner: 'bridge-test' },
  });
  // A second islet: its own HTTP endpoint on the host, with no VMs.
  const httpVm = vmEnv('net-bridge-http', { network: { mode: 'none' }, pool: { enabled: false }, server: { tokens: [{ token: 't'.repeat(32), owner: 'x' }] } });
  const cfgFile = vm.cfgFile;
  let topo: Topology;
  let client: Client;
  let stderr = '';
  let serverGone: Promise<void>;
  let servePid: number | null = null;
  let a: WorkspaceInfo;
  let b: WorkspaceInfo;
  let ipA = '';
  let ipB = '';
  let ipForwardBefore = '';
  let isletHttp: ChildProcess | undefined;

  const call = async (name: string, args: Record<string, unknown>) => await client.callTool({ name, arguments: args }, undefined, SLOW) as CallToolResult;
  const ok = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
    const r = await call(name, args);
    assert.notEqual(r.isError, true, `${name} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as T;
  };
  const errorText = async (name: string, args: Record<string, unknown>): Promise<string> => {
    const r = await call(name, args);
    assert.equal(r.isError, true, `${name} should fail, got ${JSON.stringify(r.structuredContent)}`);
    return (r.content[0] as { text: string }).text;
  };
  const coded = async (name: string, args: Record<string, unknown>, code: string) => {
    const text = await errorText(name, args);
    assert.equal((JSON.parse(text) as { code: string }).code, code, text);
  };
  const policy = (ws: WorkspaceInfo, p: Record<string, unknown>) => ok<NetworkPolicyOutput>('network_policy', { workspace_id: ws.workspace_id, ...p });
  const sh = (ws: WorkspaceInfo, command: string) => ok<ExecOutput>('exec', { workspace_id: ws.workspace_id, command, timeout_ms: 30_000 });
  /** An HTTP GET from inside a guest: the body, or "FAILED rc=N". Dropped SYNs end at the 4 s timeout. */
  const guestGet = async (ws: WorkspaceInfo, url: string) => {
    const r = await sh(ws, `timeout 4 busybox wget -q -O - ${url} 2>/dev/null || echo "FAILED rc=$?"`);
    return r.stdout.trim();
  };
  /** An HTTP GET from the islet namespace (the host side of the bridge). */
  const hostGet = async (host: string, port: number) =>
    (await topo.exec(topo.islet, [process.execPath, path.resolve('dist/test/fixtures/net-peer.js'), 'get', host, String(port)], { allowFailure: true })).stdout.trim();
  vm.note('islet serve stderr', () => stderr.slice(-4000));
  vm.note('nft ruleset', async () => (await topo.exec(topo.islet, ['nft', 'list', 'ruleset'], { allowFailure: true })).stdout);

  /** Starts `islet serve` inside the islet namespace and connects to it over stdio. */
  const connect = async () => {
    const transport = vm.track(new StdioClientTransport({
      command: 'ip', args: ['netns', 'exec', topo.islet, process.execPath, path.resolve('bin/islet.js'), 'serve', '--config', cfgFile], stderr: 'pipe',
    }));
    transport.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    client = new Client({ name: 'islet-bridge-test', version: '0' });
    await client.connect(transport);
    serverGone = new Promise((r) => { transport.onclose = () => r(); });
    servePid = transport.pid;
  };

  before(async () => {
    topo = await makeTopology(`nb${process.pid}`);
    // The bridge, TAPs and nft table live in the islet namespace: the leftover cleanup runs there too, never on the host.
    for (const e of [vm, httpVm]) e.cleanupUnder(['ip', 'netns', 'exec', topo.islet]);
    await topo.peer(topo.inet, inetPeerArgs());
    await addEgressWorld(topo);
    // What a guest with internet must still never reach on the host: a listener on every host address, and islet's own HTTP endpoint.
    await topo.peer(topo.islet, ['hold', '0.0.0.0', String(HOST_PORT)]);
    isletHttp = httpVm.track(spawn('ip', ['netns', 'exec', topo.islet, process.execPath, path.resolve('bin/islet.js'), 'serve', '--http', '--host', '0.0.0.0',
      '--port', String(ISLET_HTTP_PORT), '--config', httpVm.cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] }));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`islet serve --http did not start: ${err}`)), 60_000);
      isletHttp!.stderr!.on('data', (c: Buffer) => { err += c.toString(); if (/Streamable HTTP on/.test(err)) { clearTimeout(t); resolve(); } });
      isletHttp!.once('exit', (code) => { clearTimeout(t); reject(new Error(`islet serve --http exited (${code}): ${err}`)); });
    });
    ipForwardBefore = (await topo.exec(topo.islet, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim();
    await connect();
    [a, b] = await Promise.all([
      ok<WorkspaceInfo>('workspace_create', { name: 'nb-a', memory_mb: 256 }),
      ok<WorkspaceInfo>('workspace_create', { name: 'nb-b', memory_mb: 256 }),
    ]);
    await Promise.all([a, b].map(async (ws) => {
      await ok('file_write', { workspace_id: ws.workspace_id, path: '/root/www/index.html', content: `hello from ${ws.name}\n` });
      const r = await sh(ws, 'busybox httpd -p 8080 -h /root/www && busybox httpd -p 9090 -h /root/www && echo started');
      assert.match(r.stdout, /started/, r.stderr);
    }));
  }, { timeout: 600_000 });

  after(async () => {
    await client?.close().catch(() => undefined);
    // The factories' teardown (the daemon, the HTTP islet, leftover VMs and so the bridge) runs in the namespace, so before it goes.
    await cleanupBefore([vm, httpVm], async () => topo?.close());
  }, { timeout: 600_000 });

  test('each workspace gets its own stable address, configured in the guest; its TAP is on the bridge', async () => {
    const [ia, ib] = await Promise.all([a, b].map((w) => ok<WorkspaceIpOutput>('workspace_ip', { workspace_id: w.workspace_id })));
    ipA = ia!.ip!;
    ipB = ib!.ip!;
    assert.deepEqual([ipA, ipB].sort(), ['10.42.0.2', '10.42.0.3']);
    for (const i of [ia!, ib!]) {
      assert.equal(i.mode, 'bridge');
      assert.deepEqual([i.gateway, i.dns, i.allow_internet, i.allow_inter_vm, i.allowed_ports, i.allowed_domains], ['10.42.0.1', '10.42.0.1', false, false, [], []]);
    }
    for (const [ws, ip] of [[a, ipA], [b, ipB]] as const) {
      const r = await sh(ws, 'busybox ip -4 addr show eth0; busybox ip route; cat /etc/resolv.conf; cat /sys/class/net/eth0/address');
      assert.match(r.stdout, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/16 `));
      assert.match(r.stdout, /default via 10\.42\.0\.1 dev eth0/);
      assert.match(r.stdout, /nameserver 10\.42\.0\.1/);
      assert.match(r.stdout, new RegExp(`02:15:0a:2a:00:0${ip.slice(-1)}`));
    }
    const ports = (await topo.exec(topo.islet, ['ip', '-o', 'link', 'show', 'master', 'br-islet'])).stdout;
    for (const ws of [a, b]) assert.match(ports, new RegExp(`isl-${ws.workspace_id.slice(3, 14)}`));
  });

  test('by default guests cannot reach each other, and the host reaches no guest port', async () => {
    assert.equal(await guestGet(a, `http://${ipA}:8080/`), 'hello from nb-a', 'a guest reaches itself');
    assert.match(await guestGet(a, `http://${ipB}:8080/`), /^FAILED/);
    assert.match(await guestGet(b, `http://${ipA}:8080/`), /^FAILED/);
    assert.match(await hostGet(ipB, 8080), /^error/);
  });

  test('allowed_ports opens exactly the listed guest port, to other guests and to the host, live', async () => {
    const p = await policy(b, { allowed_ports: [8080] });
    assert.equal(p.applied, 'live');
    assert.ok(p.apply_ms !== null && p.apply_ms > 0);
    assert.equal(await guestGet(a, `http://${ipB}:8080/`), 'hello from nb-b');
    assert.match(await guestGet(a, `http://${ipB}:9090/`), /^FAILED/);
    assert.equal(await hostGet(ipB, 8080), 'hello from nb-b');
    assert.match(await hostGet(ipB, 9090), /^error/);
    assert.match(await guestGet(b, `http://${ipA}:8080/`), /^FAILED/, 'the other direction stays closed');
  });

  test('inter-VM traffic flows only while both sides allow it', async () => {
    await policy(a, { allow_inter_vm: true });
    assert.match(await guestGet(a, `http://${ipB}:9090/`), /^FAILED/, 'only one side allows it');
    await policy(b, { allow_inter_vm: true });
    assert.equal(await guestGet(a, `http://${ipB}:9090/`), 'hello from nb-b');
    assert.equal(await guestGet(b, `http://${ipA}:9090/`), 'hello from nb-a');
    await policy(a, { allow_inter_vm: false });
    assert.match(await guestGet(a, `http://${ipB}:9090/`), /^FAILED/, 'revoked live');
  });

  test('the internet is reachable only when allowed; DNS then works, and not before', async () => {
    const site = `http://${SITE_A}:${SITE_PORT}/`;
    assert.match(await guestGet(a, site), /^FAILED/);
    const refused = await sh(a, 'timeout 5 busybox nslookup blocked.test; echo rc=$?');
    assert.doesNotMatch(refused.stdout, new RegExp(SITE_B.replace(/\./g, '\\.')));
    const p = await policy(a, { allow_internet: true });
    assert.deepEqual([p.applied, p.allow_internet], ['live', true]);
    assert.equal(await guestGet(a, site), `site ${SITE_A}`);
    const ns = await sh(a, 'timeout 5 busybox nslookup blocked.test');
    assert.match(ns.stdout, new RegExp(`Address:\\s*${SITE_B.replace(/\./g, '\\.')}`), ns.stdout + ns.stderr);
    assert.equal(await guestGet(a, `http://blocked.test:${SITE_PORT}/`), `site ${SITE_B}`, 'by name, through the forwarder');
    assert.match(await guestGet(b, site), /^FAILED/, 'b still has no internet');
  });

  test('internet never includes the host (any address, islet\'s HTTP endpoint), link-local or private ranges; public and allowed ranges are reached', async () => {
    // a has internet (the test before turned it on).
    assert.equal(await guestGet(a, `http://${PUBLIC}:${SITE_PORT}/`), `site ${PUBLIC}`);
    assert.equal(await guestGet(a, `http://${ALLOWED_PRIVATE}:${SITE_PORT}/`), `site ${ALLOWED_PRIVATE}`);
    for (const url of [
      `http://10.42.0.1:${HOST_PORT}/`, `http://${ISLET_SIDE}:${HOST_PORT}/`, // the host's listener, on the gateway and on another host address
      `http://10.42.0.1:${ISLET_HTTP_PORT}/mcp`, `http://${ISLET_SIDE}:${ISLET_HTTP_PORT}/mcp`, // islet's own HTTP endpoint
      `http://${METADATA}:${SITE_PORT}/`, `http://${PRIVATE}:${SITE_PORT}/`,
    ]) {
      assert.match(await guestGet(a, url), /^FAILED/, url);
    }
    const host = await hostGet(ISLET_SIDE, HOST_PORT);
    assert.equal(host, 'held', 'the listener itself answers on the host');
  });

  test('a domain allowlist: only the listed name resolves, and only its addresses are reachable', async () => {
    const p = await policy(a, { allowed_domains: ['allowed.test'] });
    assert.deepEqual(p.allowed_domains, ['allowed.test']);
    // Not resolved yet: even the allowed site's address is closed.
    assert.match(await guestGet(a, `http://${SITE_A}:${SITE_PORT}/`), /^FAILED/);
    const blocked = await sh(a, 'timeout 5 busybox nslookup blocked.test; echo rc=$?');
    assert.doesNotMatch(blocked.stdout, new RegExp(`Address:\\s*${SITE_B.replace(/\./g, '\\.')}`));
    assert.match(await guestGet(a, `http://blocked.test:${SITE_PORT}/`), /^FAILED/);
    assert.match(await guestGet(a, `http://${SITE_B}:${SITE_PORT}/`), /^FAILED/, 'the unlisted site by address');
    assert.equal(await guestGet(a, `http://allowed.test:${SITE_PORT}/`), `site ${SITE_A}`);
    assert.equal(await guestGet(a, `http://${SITE_A}:${SITE_PORT}/`), `site ${SITE_A}`, 'its address, once resolved');
    // Lifting the list opens everything again, live.
    await policy(a, { allowed_domains: [] });
    assert.equal(await guestGet(a, `http://${SITE_B}:${SITE_PORT}/`), `site ${SITE_B}`);
  });

  test('port forwards: 127.0.0.1:H reaches the guest by DNAT; bad ports, a bound port and a taken forward are errors', async () => {
    const f = await ok<{ host_port: number; guest_port: number; host_address: string }>('port_forward', { workspace_id: b.workspace_id, guest_port: 9090 });
    assert.deepEqual([f.host_address, f.guest_port], ['127.0.0.1', 9090]);
    assert.equal(await hostGet('127.0.0.1', f.host_port), 'hello from nb-b', 'a forward works even to a port allowed_ports does not open');
    const ip = await ok<WorkspaceIpOutput>('workspace_ip', { workspace_id: b.workspace_id });
    assert.deepEqual(ip.forwards.map((x) => [x.host_port, x.guest_port]), [[f.host_port, 9090]]);

    for (const bad of [{ guest_port: 0 }, { guest_port: 70000 }, { guest_port: 80, host_port: 0 }, { guest_port: 80, host_port: 70000 }]) {
      assert.match(await errorText('port_forward', { workspace_id: b.workspace_id, ...bad }), /"code":"INVALID_ARGUMENT"[\s\S]*(guest_port|host_port)/, JSON.stringify(bad));
    }
    const busy = 47123;
    const holder = await topo.peer(topo.islet, ['hold', '127.0.0.1', String(busy)]);
    try {
      await coded('port_forward', { workspace_id: a.workspace_id, guest_port: 8080, host_port: busy }, 'PORT_IN_USE');
    } finally {
      holder.stdin?.end();
    }
    await coded('port_forward', { workspace_id: a.workspace_id, guest_port: 8080, host_port: f.host_port }, 'PORT_IN_USE');
    await coded('network_policy', { workspace_id: a.workspace_id, allowed_ports: [8080, 8080] }, 'INVALID_ARGUMENT').catch(async () => {
      // The schema may refuse it before the service (an MCP validation error): also a refusal naming the field.
      assert.match(await errorText('network_policy', { workspace_id: a.workspace_id, allowed_ports: [8080, 8080] }), /allowed_ports/);
    });

    await ok('port_forward_remove', { workspace_id: b.workspace_id, host_port: f.host_port });
    assert.match(await hostGet('127.0.0.1', f.host_port), /^error ECONNREFUSED/);
    await coded('port_forward_remove', { workspace_id: b.workspace_id, host_port: f.host_port }, 'INVALID_ARGUMENT');
  });

  test('kill -9 of the service: isolation holds meanwhile; the next service takes the bridge over and holds the forwards again', async () => {
    const f = await ok<{ host_port: number }>('port_forward', { workspace_id: b.workspace_id, guest_port: 9090 });
    assert.ok(servePid);
    process.kill(servePid, 'SIGKILL');
    const daemon = daemonPidFor(cfgFile); // the service itself: the stdio front only relays to it
    assert.ok(daemon);
    process.kill(daemon, 'SIGKILL');
    await Promise.race([serverGone, new Promise((r) => setTimeout(r, 10_000))]);
    await client.close().catch(() => undefined);
    // No service: the VMs run on with their rules in place.
    const during = await topo.exec(topo.islet, ['ip', '-o', 'link', 'show', 'master', 'br-islet']);
    assert.match(during.stdout, new RegExp(`isl-${a.workspace_id.slice(3, 14)}`));
    assert.match((await topo.exec(topo.islet, ['nft', 'list', 'tables'])).stdout, /table inet islet/);
    await connect();
    const [ia, ib] = await Promise.all([a, b].map((w) => ok<WorkspaceInfo>('workspace_info', { workspace_id: w.workspace_id })));
    assert.deepEqual([ia!.state, ia!.network.ip, ib!.state, ib!.network.ip], ['running', ipA, 'running', ipB]);
    assert.equal(await guestGet(a, `http://${ipB}:8080/`), 'hello from nb-b', 'allowed_ports still open');
    assert.match(await guestGet(a, `http://${ipB}:9090/`), /^FAILED/, 'and the rest still closed');
    assert.equal(await hostGet('127.0.0.1', f.host_port), 'hello from nb-b', 'the forward is back');
    await assert.rejects(topo.peer(topo.islet, ['hold', '127.0.0.1', String(f.host_port)]), /exited \(1\): error EADDRINUSE/, 'and its host port is held again');
    await coded('port_forward', { workspace_id: a.workspace_id, guest_port: 8080, host_port: f.host_port }, 'PORT_IN_USE');
  });

  test('after destroy and shutdown nothing islet made is left: no bridge, no TAP, no nft table; ip_forward restored', async () => {
    for (const ws of [a, b]) await ok('workspace_destroy', { workspace_id: ws.workspace_id });
    await client.close(); // stdin closes: the front exits; the daemon behind it is stopped as `islet daemon stop` does
    await Promise.race([serverGone, new Promise((r) => setTimeout(r, 30_000))]);
    stopDaemon(cfgFile);
    let links = '';
    let tables = '';
    for (let i = 0; i < 100; i++) { // the server process may still be finishing its cleanup
      links = (await topo.exec(topo.islet, ['ip', '-o', 'link', 'show'])).stdout;
      tables = (await topo.exec(topo.islet, ['nft', 'list', 'tables'])).stdout;
      if (!/br-islet|isl-/.test(links) && !/islet/.test(tables)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.doesNotMatch(links, /br-islet/);
    assert.doesNotMatch(links, /isl-/);
    assert.doesNotMatch(tables, /islet/);
    assert.equal((await topo.exec(topo.islet, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), ipForwardBefore);
  });
});
