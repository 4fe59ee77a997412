// Bridge mode keeps the fast paths (issue 15, item 4), with real VMs inside
// network namespaces this test makes (test/fixtures/netns.ts), as
// net-bridge.vm.test.ts does: `islet serve` in bridge mode, with templates and
// a warm pool, driven over MCP stdio. A create goes through the template and
// the guest is re-addressed to its own lease; a memory fork and a pool VM get
// their own address too. Anti-spoofing is shown by what reaches the "inet"
// namespace: a datagram to a closed UDP port there bumps that namespace's
// Udp NoPorts counter, so a spoofed datagram is seen arriving, or not,
// without any listener. The host's own network is never used.
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig } from '../../src/core/config.js';
import type { ExecOutput, SnapshotCreateOutput, WorkspaceInfo, WorkspaceIpOutput } from '../../src/service/types.js';
import { inetPeerArgs, makeTopology, netnsUnavailable, SITE_B, Topology } from '../fixtures/netns.js';
import { stopDaemon } from './daemon-stop.js';
import { qemuProcesses } from './procs.js';

const skip = await netnsUnavailable();
const SLOW = { timeout: 300_000 };
/** No listener on it in the inet namespace: each datagram that arrives is one more Udp NoPorts there. */
const CLOSED_UDP = 9;
const DATAGRAMS = 5;

describe('bridge mode: templates, memory forks and the warm pool re-address the guest', { timeout: 1_500_000, skip }, () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-net-bt-'));
  const runDir = mkdtempSync('/tmp/islet-nbt-');
  const cfgFile = path.join(dataDir, 'islet.toml');
  /** The daemon's progress lines (it runs in the foreground here, so they are on its stderr). */
  let daemonOut = '';
  const log = () => daemonOut;
  let daemon: ChildProcess | undefined;
  let topo: Topology;
  let client: Client;
  let stderr = '';
  let a: WorkspaceInfo;
  let b: WorkspaceInfo;
  let ipA = '';
  let ipB = '';
  let fork: WorkspaceInfo | undefined;

  const call = async (name: string, args: Record<string, unknown>) => await client.callTool({ name, arguments: args }, undefined, SLOW) as CallToolResult;
  const ok = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
    const r = await call(name, args);
    assert.notEqual(r.isError, true, `${name} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as T;
  };
  const sh = (ws: WorkspaceInfo, command: string) => ok<ExecOutput>('exec', { workspace_id: ws.workspace_id, command, timeout_ms: 60_000 });
  const ipOf = async (ws: WorkspaceInfo) => (await ok<WorkspaceIpOutput>('workspace_ip', { workspace_id: ws.workspace_id })).ip!;
  const hostGet = async (host: string, port: number) =>
    (await topo.exec(topo.islet, [process.execPath, path.resolve('dist/test/fixtures/net-peer.js'), 'get', host, String(port)], { allowFailure: true })).stdout.trim();
  /** The Udp NoPorts counter of the inet namespace ("the internet"). */
  const noPorts = async () => {
    const lines = (await topo.exec(topo.inet, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
    const [names, values] = lines.map((l) => l.split(/\s+/));
    return Number(values![names!.indexOf('NoPorts')]);
  };
  /**
   * DATAGRAMS UDP datagrams from ws to the inet namespace, with source
   * address `from` (ws's own, or another's: then a /32 of it and a host route
   * with that source). The gateway's MAC is learned first with ws's own
   * address, so no ARP goes out from the borrowed one. Returns how many arrived.
   */
  const sendFrom = async (ws: WorkspaceInfo, from: string, own: string): Promise<number> => {
    const spoof = from !== own;
    const setup = spoof
      ? `busybox ip addr add ${from}/32 dev eth0 && busybox ip route replace ${SITE_B}/32 via 10.42.0.1 dev eth0 src ${from} && `
      : '';
    const undo = spoof ? `; busybox ip route del ${SITE_B}/32; busybox ip addr del ${from}/32 dev eth0` : '';
    const before0 = await noPorts();
    const r = await sh(ws, `timeout 3 busybox ping -c 1 -W 2 10.42.0.1 >/dev/null 2>&1; ${setup}`
      + `bash -c 'for i in $(seq ${DATAGRAMS}); do echo x > /dev/udp/${SITE_B}/${CLOSED_UDP}; sleep 0.1; done'; sleep 1; echo sent${undo}`);
    assert.match(r.stdout, /sent/, r.stderr);
    return (await noPorts()) - before0;
  };
  /** The guest's eth0: its address, MAC, default route and DNS, as configured inside it. */
  const assertAddressed = async (ws: WorkspaceInfo, ip: string) => {
    const r = await sh(ws, 'busybox ip -4 addr show eth0; busybox ip route; cat /etc/resolv.conf; cat /sys/class/net/eth0/address');
    const inet = [...r.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]);
    assert.deepEqual(inet, [ip], `only its own address on eth0: ${r.stdout}`);
    assert.match(r.stdout, /default via 10\.42\.0\.1 dev eth0/);
    assert.match(r.stdout, /nameserver 10\.42\.0\.1/);
    const mac = `02:15:${ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`;
    assert.match(r.stdout, new RegExp(mac), 'the MAC of its own lease');
    const ports = (await topo.exec(topo.islet, ['ip', '-o', 'link', 'show', 'master', 'br-islet'])).stdout;
    assert.match(ports, new RegExp(`isl-${ws.workspace_id.slice(3, 14)}`), 'its TAP is on the bridge');
  };
  /** The guest answers HTTP at its address, from the host, once its policy opens the port. */
  /** Where the bridge sends each MAC, and what the host believes each guest address is at. */
  const l2State = async () => {
    const fdb = await topo.exec(topo.islet, ['bridge', 'fdb', 'show', 'br', 'br-islet'], { allowFailure: true }).catch(() => undefined);
    const neigh = await topo.exec(topo.islet, ['ip', 'neigh', 'show', 'dev', 'br-islet'], { allowFailure: true }).catch(() => undefined);
    return `--- bridge fdb ---\n${fdb?.stdout ?? ''}\n--- neighbours ---\n${neigh?.stdout ?? ''}\n`;
  };
  const assertAnswers = async (ws: WorkspaceInfo, ip: string, body: string) => {
    await ok('network_policy', { workspace_id: ws.workspace_id, allowed_ports: [8080] });
    // Each GET gives up after 4 s. A second try is allowed (a loaded host once saw a parent miss one right
    // after its memory fork joined the bridge; the cause is not known), but it is reported with the L2 state.
    let got = await hostGet(ip, 8080);
    if (got !== body) {
      const state = await l2State();
      const tap = `isl-${ws.workspace_id.slice(3, 14)}`;
      const tapStats = async () => (await topo.exec(topo.islet, ['ip', '-s', 'link', 'show', 'dev', tap], { allowFailure: true }).catch(() => undefined))?.stdout ?? '';
      const inside = async () => (await call('exec', { workspace_id: ws.workspace_id, timeout_ms: 30_000,
        command: 'cat /sys/class/net/eth0/address; busybox ip addr show eth0; busybox ip route; busybox ip neigh; busybox netstat -ltn; grep -A1 "^Tcp:" /proc/net/snmp; grep eth0 /proc/net/dev; ps -ef | grep -c httpd' })).content;
      const info = await call('workspace_info', { workspace_id: ws.workspace_id });
      const before0 = `${await tapStats()}\n--- inside ---\n${JSON.stringify(await inside())}`;
      got = await hostGet(ip, 8080);
      const after0 = `${await tapStats()}\n--- inside ---\n${JSON.stringify(await inside())}`;
      process.stderr.write(`# ${ws.name} at ${ip}: the first GET failed; the second ${got === body ? 'answered' : `failed too (${got})`}\n${state}`
        + `--- info ---\n${JSON.stringify(info.structuredContent)}\n--- before the second GET ---\n${before0}\n--- after it ---\n${after0}\n`);
    }
    assert.equal(got, body);
  };
  const startHttpd = async (ws: WorkspaceInfo) => {
    await ok('file_write', { workspace_id: ws.workspace_id, path: '/root/www/index.html', content: `hello from ${ws.name}\n` });
    assert.match((await sh(ws, 'busybox httpd -p 8080 -h /root/www && echo started')).stdout, /started/);
  };
  const evidence = async (fn: () => Promise<void>) => {
    try { await fn(); } catch (e) {
      const rules = await topo.exec(topo.islet, ['nft', 'list', 'ruleset'], { allowFailure: true }).catch(() => undefined);
      process.stderr.write(`--- daemon ---\n${log().slice(-4000)}\n--- serve stderr ---\n${stderr.slice(-2000)}\n--- nft ruleset ---\n${rules?.stdout ?? ''}\n${await l2State()}`);
      throw e;
    }
  };

  before(async () => {
    topo = await makeTopology(`nbt${process.pid}`);
    await topo.peer(topo.inet, inetPeerArgs());
    // The pool keeps one VM of the default shape (320 MiB); the workspaces made by name are 256 MiB, so they never take it.
    writeFileSync(cfgFile, [
      '[storage]', `data_dir = "${dataDir}"`, `cache_dir = "${loadConfig().paths.cacheDir}"`, `run_dir = "${runDir}"`,
      '[resources]', 'default_memory_mb = 320',
      '[network]', 'mode = "bridge"', `dns_upstream = ["${SITE_B}"]`,
      '[pool]', 'enabled = true', 'template = true', 'min_size = 1', 'max_size = 1', 'target_free = 1', 'max_memory_mb = 320',
      '[server]', 'stdio_owner = "bridge-template-test"', '',
    ].join('\n'));
    // The daemon first, in the foreground: its progress says how each workspace started. `islet serve` then finds it.
    daemon = spawn('ip', ['netns', 'exec', topo.islet, process.execPath, path.resolve('bin/islet.js'), 'daemon', 'run', '--config', cfgFile],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (c: Buffer) => { daemonOut += c.toString(); });
    daemon.stderr!.on('data', (c: Buffer) => { daemonOut += c.toString(); });
    for (let i = 0; i < 600 && !/listening on/.test(daemonOut); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(daemonOut, /listening on/, 'the daemon started');
    const transport = new StdioClientTransport({
      command: 'ip', args: ['netns', 'exec', topo.islet, process.execPath, path.resolve('bin/islet.js'), 'serve', '--config', cfgFile], stderr: 'pipe',
    });
    transport.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    client = new Client({ name: 'islet-bridge-template-test', version: '0' });
    await client.connect(transport);
    a = await ok<WorkspaceInfo>('workspace_create', { name: 'bt-a', memory_mb: 256 });
    b = await ok<WorkspaceInfo>('workspace_create', { name: 'bt-b', memory_mb: 256, allow_internet: true });
    [ipA, ipB] = [await ipOf(a), await ipOf(b)];
    await startHttpd(a);
    await startHttpd(b);
  }, { timeout: 900_000 });

  after(async () => {
    await client?.close().catch(() => undefined);
    stopDaemon(cfgFile);
    daemon?.kill('SIGTERM');
    if (topo) {
      // destroyAll retries a fork's source (refused while the fork exists), which a single pass in list order left running.
      await topo.exec(topo.islet, [process.execPath, path.resolve('dist/test/fixtures/cleanup-child.js'), cfgFile],
        { allowFailure: true, timeoutMs: 180_000 }).catch(() => undefined);
    }
    // A QEMU of this run dir that outlived the cleanup (a pool VM, a refused destroy) is a leak: killed, and reported.
    const leaked = qemuProcesses(runDir);
    for (const q of leaked) { try { process.kill(q.pid, 'SIGKILL'); } catch { /* gone meanwhile */ } }
    if (topo) {
      await topo.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
    assert.deepEqual(leaked.map((q) => q.id), [], 'every VM of the test was destroyed by the cleanup');
  }, { timeout: 300_000 });

  test('a bridge-mode create is restored from the template, not booted, and the guest has its own address, which answers', () => evidence(async () => {
    const l = log();
    for (const n of ['bt-a', 'bt-b']) {
      assert.match(l, new RegExp(`workspace ${n}: restored from template in \\d+ ms`), l.slice(-3000));
      assert.doesNotMatch(l, new RegExp(`workspace ${n}: (booting|template restore failed)`));
    }
    assert.notEqual(ipA, ipB);
    await assertAddressed(a, ipA);
    await assertAddressed(b, ipB);
    await assertAnswers(a, ipA, 'hello from bt-a');
    await assertAnswers(b, ipB, 'hello from bt-b');
  }));

  test('two template-made workspaces cannot spoof each other: a\'s datagrams with b\'s address are dropped, b\'s own pass', () => evidence(async () => {
    // b has internet and a has not: only b's address may reach the inet namespace.
    assert.equal(await sendFrom(b, ipB, ipB), DATAGRAMS, 'b reaches the outside with its own address');
    assert.equal(await sendFrom(a, ipA, ipA), 0, 'a has no internet');
    assert.equal(await sendFrom(a, ipB, ipA), 0, 'a with b\'s address is dropped at its TAP');
  }));

  test('a memory fork gets its own address, answers at it, passes anti-spoofing with it, and its parent\'s address is dropped', () => evidence(async () => {
    const snap = await ok<SnapshotCreateOutput>('snapshot_create', { workspace_id: b.workspace_id, name: 'live', include_memory: true });
    assert.equal(snap.has_memory, true);
    fork = await ok<WorkspaceInfo>('workspace_fork', { workspace_id: b.workspace_id, snapshot: snap.snapshot_id, name: 'bt-f' });
    const ipF = await ipOf(fork);
    assert.ok(![ipA, ipB].includes(ipF), `the fork has an address of its own: ${ipF}`);
    await assertAddressed(fork, ipF);
    // The httpd started in b before the snapshot runs on in the fork (memory), now at the fork's address.
    await assertAnswers(fork, ipF, 'hello from bt-b');
    assert.equal(await sendFrom(fork, ipF, ipF), DATAGRAMS, 'the fork (internet, as its parent) passes with its own address');
    assert.equal(await sendFrom(fork, ipB, ipF), 0, 'the fork with its parent\'s address is dropped');
  }));

  // On a loaded host this once failed 2 runs in 3: the parent stayed paused after its memory snapshot, because
  // QEMU refused the `cont` sent between the migration's COMPLETED event and the end of finish-migrate, and the
  // refusal was swallowed (fixed in vmm/qemu-driver.ts; a CPU burner beside this test reproduced it every time).
  test('after a memory fork its parent still answers at its own address',
    () => evidence(async () => {
      await assertAnswers(b, ipB, 'hello from bt-b');
    }));

  test('a pool hit in bridge mode: the pool VM takes its lease at hand-out, and is addressed, on the bridge and reachable', () => evidence(async () => {
    for (let i = 0; i < 600 && !/pool: VM ws-[0-9a-f]+ ready/.test(log()); i++) await new Promise((r) => setTimeout(r, 500));
    assert.match(log(), /pool: VM ws-[0-9a-f]+ ready \(template/, 'the pool VM was restored from the template');
    const p = await ok<WorkspaceInfo>('workspace_create', { name: 'bt-p' });
    assert.match(log(), /workspace bt-p: assigned a warm pool VM/);
    const ipP = await ipOf(p);
    assert.ok(![ipA, ipB, await ipOf(fork!)].includes(ipP), ipP);
    await assertAddressed(p, ipP);
    await startHttpd(p);
    await assertAnswers(p, ipP, 'hello from bt-p');
    assert.equal(await sendFrom(p, ipB, ipP), 0, 'and it cannot take another\'s address either');
  }));
});
