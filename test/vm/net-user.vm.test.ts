// User-mode networking against real VMs, through the WorkspaceService: the
// guest configures eth0 itself; no direct connection leaves the VM whatever
// allow_internet says (not even to a listener on the host's loopback, which
// slirp would map to 10.0.2.2), and the egress proxy refuses the host; a
// policy change applies live; port forwards reach a guest server and stop
// after removal; bad input gets coded errors. Nothing but 127.0.0.1 and the
// guests is ever contacted (test/vm/net-egress.vm.test.ts has the outside).
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

  test('internet on: still no direct connection to the host listener (the only way out is the egress proxy, which refuses the host)', async () => {
    const before = listener.connections();
    const r = await guestSends(on, 'from-on');
    assert.match(r.stdout, /rc=1/, `nc should fail: ${r.stdout}${r.stderr}`);
    const viaProxy = await sh(on, `curl -sS -m 10 http://10.0.2.2:${listener.port}/ 2>&1; curl -sS -m 10 --noproxy '' http://127.0.0.1:${listener.port}/ 2>&1`);
    assert.match(viaProxy.stdout, /islet egress: refused 10\.0\.2\.2:\d+: 10\.0\.2\.2 is a private address/);
    assert.match(viaProxy.stdout, /islet egress: refused 127\.0\.0\.1:\d+: 127\.0\.0\.1 is a loopback address/);
    assert.equal(listener.connections(), before, 'the host listener saw a connection');
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

  test('a policy change on a running workspace applies live: no restart, processes and forwards survive', async () => {
    const id = off.workspace_id;
    assert.equal((await svc.networkPolicy(caller, { workspace_id: id, allow_internet: false })).applied, 'unchanged');
    await sh(off, 'busybox httpd -p 8080 -h /root/www 2>/dev/null; true'); // still running from an earlier test, or started now
    const f = await svc.portForward(caller, { workspace_id: id, guest_port: 8080 });
    await sh(off, "setsid sh -c 'echo $$ > /tmp/bg.pid; while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null &");
    const alive = async () => (await sh(off, 'sleep 1; kill -0 "$(cat /tmp/bg.pid)" && cat /tmp/bg.pid')).stdout.trim();
    const pid = await alive();
    assert.match(pid, /^\d+$/, 'the background process runs');
    // Nothing leaves this machine: the proxy's answer for a name outside the domain list shows which policy it read.
    const refusedBefore = await sh(off, 'curl -sS -m 10 http://other.invalid/ 2>&1');
    assert.match(refusedBefore.stdout, /internet access is off/);
    const r = await svc.networkPolicy(caller, { workspace_id: id, allow_internet: true, allowed_domains: ['allowed.invalid'] });
    assert.deepEqual([r.applied, r.allow_internet, r.restart_ms], ['live', true, null]);
    assert.ok((r.apply_ms ?? -1) >= 0);
    const after = await sh(off, 'curl -sS -m 10 http://other.invalid/ 2>&1');
    assert.match(after.stdout, /"other\.invalid" is not an allowed domain/, after.stdout);
    assert.equal(await alive(), pid, 'the guest process survived');
    assert.equal((await httpGet(f.host_port)).body, 'hello from the guest\n');
    await svc.networkPolicy(caller, { workspace_id: id, allow_internet: false, allowed_domains: [] });
    await svc.portForwardRemove(caller, { workspace_id: id, host_port: f.host_port });
  });

  test('on a stopped workspace the policy is recorded for the next start', async () => {
    await svc.stop(caller, { workspace_id: on.workspace_id });
    const r = await svc.networkPolicy(caller, { workspace_id: on.workspace_id, allow_internet: false });
    assert.deepEqual(r, {
      workspace_id: on.workspace_id, allow_internet: false, allow_inter_vm: false, allowed_ports: [], allowed_domains: [],
      applied: 'recorded', restart_ms: null, apply_ms: null,
    });
    // A domain list works in user mode (the egress proxy applies it); what only bridge mode can do is refused, with the reason.
    assert.deepEqual((await svc.networkPolicy(caller, { workspace_id: on.workspace_id, allowed_domains: ['example.com'] })).allowed_domains, ['example.com']);
    for (const extra of [{ allow_inter_vm: true }, { allowed_ports: [8080] }]) {
      await assert.rejects(svc.networkPolicy(caller, { workspace_id: on.workspace_id, ...extra }), coded('NOT_SUPPORTED'), JSON.stringify(extra));
    }
    assert.equal((await svc.info(caller, { workspace_id: on.workspace_id })).allow_internet, false);
    await assert.rejects(svc.portForward(caller, { workspace_id: on.workspace_id, guest_port: 80 }), coded('STATE_CONFLICT'));
  });
});
