// User-mode networking against real VMs, through the WorkspaceService: the
// guest configures eth0 itself; allow_internet=false cuts every connection
// out (even to a listener on the host's loopback, which slirp maps to
// 10.0.2.2); allow_internet=true lets it through; port forwards reach a guest
// server and stop after removal; bad input gets coded errors. Nothing but
// 127.0.0.1 and the guests is ever contacted.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';

const env = vmEnv('net');
const caller = { owner: 'net-test' };
const coded = (code: string) => (e: unknown) => e instanceof IsletError && e.code === code;

/** A TCP listener on host loopback that records what each connection sends. */
async function hostListener(): Promise<{ port: number; received: string[]; connections: () => number; close: () => Promise<void> }> {
  const received: string[] = [];
  let n = 0;
  const srv = net.createServer((s) => {
    n++;
    let buf = '';
    s.on('data', (c: Buffer) => { buf += c.toString(); if (buf.includes('\n')) { received.push(buf); s.end(); } });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port, received, connections: () => n,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

function httpGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('user-mode networking', { timeout: 900_000 }, () => {
  let svc: WorkspaceService;
  let off: WorkspaceInfo;
  let on: WorkspaceInfo;
  let listener: Awaited<ReturnType<typeof hostListener>>;
  const sh = async (ws: WorkspaceInfo, command: string, timeout_ms = 30_000) =>
    svc.exec(caller, { workspace_id: ws.workspace_id, command, timeout_ms });
  /** The guest connects to the host listener through slirp's gateway address and sends one line. */
  const guestSends = (ws: WorkspaceInfo, line: string) =>
    sh(ws, `echo ${line} | timeout 8 busybox nc 10.0.2.2 ${listener.port}; echo rc=$?`);

  before(async () => {
    svc = await env.open();
    listener = await hostListener();
    [off, on] = await Promise.all([
      svc.create(caller, { name: 'net-off', allow_internet: false }),
      svc.create(caller, { name: 'net-on', allow_internet: true }),
    ]);
  });
  after(async () => {
    await listener.close();
  });

  test('the guest has 10.0.2.15/24 on eth0, a default route via 10.0.2.2 and resolv.conf', async () => {
    assert.deepEqual(off.network, { mode: 'user', ip: '10.0.2.15', forwards: [] });
    for (const ws of [off, on]) {
      const r = await sh(ws, 'busybox ifconfig eth0; cat /proc/net/route; cat /etc/resolv.conf');
      assert.equal(r.exit_code, 0, r.stderr);
      assert.match(r.stdout, /inet addr:10\.0\.2\.15 +Bcast:\S+ +Mask:255\.255\.255\.0/);
      assert.match(r.stdout, /\bUP\b/);
      assert.match(r.stdout, /^eth0\s+00000000\s+0202000A\s/m, 'default route via 10.0.2.2');
      assert.match(r.stdout, /nameserver 10\.0\.2\.3/);
    }
    const ip = await svc.workspaceIp(caller, { workspace_id: off.workspace_id });
    assert.deepEqual(ip, {
      workspace_id: off.workspace_id, mode: 'user', ip: '10.0.2.15', gateway: '10.0.2.2', dns: '10.0.2.3', allow_internet: false,
      allow_inter_vm: false, allowed_ports: [], allowed_domains: [], forwards: [],
    });
  });

  test('internet off: the guest cannot connect to a listener on the host', async () => {
    const before = listener.connections();
    const r = await guestSends(off, 'from-off');
    assert.match(r.stdout, /rc=1/, `nc should fail: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /can't connect to remote host \(10\.0\.2\.2\)/);
    assert.equal(listener.connections(), before, 'the host listener saw a connection');
    assert.ok(!listener.received.some((x) => x.includes('from-off')));
  });

  test('internet on: the guest connects to the host listener', async () => {
    const r = await guestSends(on, 'from-on');
    assert.match(r.stdout, /rc=0/, r.stdout + r.stderr);
    assert.ok(listener.received.some((x) => x.includes('from-on')), `received ${JSON.stringify(listener.received)}`);
  });

  test('a port forward reaches a guest HTTP server (even with internet off) and stops after removal', async () => {
    await svc.fileWrite(caller, { workspace_id: off.workspace_id, path: '/root/www/index.html', content: 'hello from the guest\n' });
    const started = await sh(off, 'busybox httpd -p 8080 -h /root/www && echo started');
    assert.match(started.stdout, /started/, started.stderr);
    const f = await svc.portForward(caller, { workspace_id: off.workspace_id, guest_port: 8080 });
    assert.equal(f.host_address, '127.0.0.1');
    assert.equal(f.guest_port, 8080);
    assert.ok(f.host_port >= 1024 && f.host_port <= 65535);
    const got = await httpGet(f.host_port);
    assert.equal(got.status, 200);
    assert.equal(got.body, 'hello from the guest\n');
    const info = await svc.info(caller, { workspace_id: off.workspace_id });
    assert.deepEqual(info.network.forwards.map((x) => [x.host_port, x.guest_port]), [[f.host_port, 8080]]);

    await svc.portForwardRemove(caller, { workspace_id: off.workspace_id, host_port: f.host_port });
    await assert.rejects(httpGet(f.host_port), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    assert.deepEqual((await svc.workspaceIp(caller, { workspace_id: off.workspace_id })).forwards, []);
  });

  test('invalid ports, a bound host port and a duplicate forward are coded errors', async () => {
    const id = off.workspace_id;
    for (const p of [0, 70000, -1, 1.5]) {
      await assert.rejects(svc.portForward(caller, { workspace_id: id, guest_port: p }), coded('INVALID_ARGUMENT'), `guest_port ${p}`);
      await assert.rejects(svc.portForward(caller, { workspace_id: id, guest_port: 80, host_port: p }), coded('INVALID_ARGUMENT'), `host_port ${p}`);
    }
    await assert.rejects(svc.portForward(caller, { workspace_id: id, guest_port: 80, host_port: listener.port }), coded('PORT_IN_USE'));
    const f = await svc.portForward(caller, { workspace_id: id, guest_port: 8080 });
    await assert.rejects(svc.portForward(caller, { workspace_id: on.workspace_id, guest_port: 8080, host_port: f.host_port }), coded('PORT_IN_USE'));
    await svc.portForwardRemove(caller, { workspace_id: id, host_port: f.host_port });
    await assert.rejects(svc.portForwardRemove(caller, { workspace_id: id, host_port: f.host_port }), coded('INVALID_ARGUMENT'));
    await assert.rejects(svc.portForward({ owner: 'someone-else' }, { workspace_id: id, guest_port: 8080 }), coded('WORKSPACE_NOT_FOUND'));
  });

  test('a policy change on a running workspace needs restart: true; with it, the change applies and forwards survive', async () => {
    const id = off.workspace_id;
    await assert.rejects(svc.networkPolicy(caller, { workspace_id: id, allow_internet: true }), coded('STATE_CONFLICT'));
    assert.equal((await svc.networkPolicy(caller, { workspace_id: id, allow_internet: false })).applied, 'unchanged');
    const f = await svc.portForward(caller, { workspace_id: id, guest_port: 8080 });
    const r = await svc.networkPolicy(caller, { workspace_id: id, allow_internet: true, restart: true });
    assert.equal(r.applied, 'restarted');
    assert.equal(r.allow_internet, true);
    assert.ok((r.restart_ms ?? 0) > 0);
    const sent = await guestSends(off, 'after-restart');
    assert.match(sent.stdout, /rc=0/, sent.stdout + sent.stderr);
    assert.ok(listener.received.some((x) => x.includes('after-restart')));
    // The forward was re-applied to the new VM: start the server again (processes died) and reach it.
    await sh(off, 'busybox httpd -p 8080 -h /root/www');
    assert.equal((await httpGet(f.host_port)).body, 'hello from the guest\n');
  });

  test('on a stopped workspace the policy is recorded for the next start', async () => {
    await svc.stop(caller, { workspace_id: on.workspace_id });
    const r = await svc.networkPolicy(caller, { workspace_id: on.workspace_id, allow_internet: false });
    assert.deepEqual(r, {
      workspace_id: on.workspace_id, allow_internet: false, allow_inter_vm: false, allowed_ports: [], allowed_domains: [],
      applied: 'recorded', restart_ms: null, apply_ms: null,
    });
    // What only bridge mode can do is refused, with the reason.
    for (const extra of [{ allow_inter_vm: true }, { allowed_ports: [8080] }, { allowed_domains: ['example.com'] }]) {
      await assert.rejects(svc.networkPolicy(caller, { workspace_id: on.workspace_id, ...extra }), coded('NOT_SUPPORTED'), JSON.stringify(extra));
    }
    assert.equal((await svc.info(caller, { workspace_id: on.workspace_id })).allow_internet, false);
    await assert.rejects(svc.portForward(caller, { workspace_id: on.workspace_id, guest_port: 80 }), coded('STATE_CONFLICT'));
  });
});
