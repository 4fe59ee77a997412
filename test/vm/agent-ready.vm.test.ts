// Acceptance for the agent-ready image (issue 7), against real VMs: a
// workspace accepts SSH as `agent` with its own generated key through a port
// forward, refuses passwords and other workspaces' keys (a fork gets a new
// key, and its source's stops working there), and the OpenCode service starts
// for a session and answers on port 4096.
//
// Heavy (two 1 GiB full-init VMs; OpenCode's 185 MB Bun binary takes minutes
// to start under TCG), so it runs from `npm run test:images` (which sets
// ISLET_IMAGE_TESTS=1 once agent-ready is built and verified) and is skipped,
// with the reason printed, in the default `npm test`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/core/config.js';
import { findArtifacts } from '../../src/images/index.js';
import type { WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';

const IMAGE = 'agent-ready';
const MEMORY_MB = 1024;
const base = loadConfig();
const built = (await findArtifacts(base, { image: IMAGE })).image !== undefined;
const skip = process.env.ISLET_IMAGE_TESTS !== '1'
  ? 'heavy (two 1 GiB full-init VMs, minutes of OpenCode start under TCG): run with `npm run test:images -- agent-ready`'
  : !built ? `the ${IMAGE} image is not built: islet image build ${IMAGE}` : false;

const env = vmEnv('ar', {
  resources: { max_memory_mb: 2048 },
  network: { mode: 'user' },
  vm: { kernel: base.vm.kernel }, // $ISLET_CONFIG with [vm] kernel = "distro" runs it on the distro kernel (netfilter as modules)
});
const config = env.config;
const me = { owner: 'acceptance' };
const run = promisify(execFile);

interface SshResult { code: number; stdout: string; stderr: string; ms: number }

/** The host's ssh client, argv only; BatchMode: never a prompt, a refusal is an exit 255. */
async function ssh(port: number, key: string | undefined, opts: string[], cmd: string[]): Promise<SshResult> {
  const t0 = performance.now();
  const argv = [
    ...(key ? ['-i', key, '-o', 'IdentitiesOnly=yes'] : []),
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20',
    '-o', 'LogLevel=ERROR', ...opts, '-p', String(port), 'agent@127.0.0.1', '--', ...cmd,
  ];
  try {
    const r = await run('ssh', argv, { timeout: 60_000, maxBuffer: 1 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '', ms: performance.now() - t0 };
  }
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>, last: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s (last: ${last()})`);
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

describe('agent-ready: per-workspace SSH keys and OpenCode', { skip, timeout: 40 * 60_000 }, () => {
  let svc: WorkspaceService;
  let a: WorkspaceInfo;
  let b: WorkspaceInfo;
  let aPort: number;
  let bPort: number;

  before(async () => {
    svc = await env.open();
    const t0 = performance.now();
    a = await svc.create(me, { name: 'ar-a', image: IMAGE, memory_mb: MEMORY_MB });
    const createMs = performance.now() - t0;
    aPort = (await svc.portForward(me, { workspace_id: a.workspace_id, guest_port: 22 })).host_port;
    a = await svc.info(me, { workspace_id: a.workspace_id });
    // sshd comes up beside the agent (host keys are made at first boot): wait for the first accepted login.
    let last: SshResult | undefined;
    await until('ssh into a fresh agent-ready workspace', 300_000, async () => {
      last = await ssh(aPort, a.ssh?.private_key_path, [], ['true']);
      return last.code === 0 ? true : undefined;
    }, () => last?.stderr.trim() ?? '');
    const loginMs = performance.now() - t0 - createMs;
    const kernel = await svc.exec(me, { workspace_id: a.workspace_id, command: ['uname', '-r'] });
    console.log(`# create ${IMAGE} (${MEMORY_MB} MiB, kernel ${kernel.stdout.trim()}): ${(createMs / 1000).toFixed(1)} s to running; ` +
      `first ssh login ${(loginMs / 1000).toFixed(1)} s after that`);
  }, { timeout: 600_000 });

  test('the workspace info says how to connect; the private key is the workspace\'s own, 0600, under the data dir', () => {
    const s = a.ssh;
    assert.ok(s, 'agent-ready has "ssh" in its recipe');
    assert.equal(s.user, 'agent');
    assert.equal(s.guest_port, 22);
    assert.equal(s.host_port, aPort);
    assert.ok(s.private_key_path.startsWith(config.paths.dataDir + path.sep), s.private_key_path);
    assert.equal(statSync(s.private_key_path).mode & 0o777, 0o600);
    assert.match(s.public_key, /^ssh-ed25519 AAAA/);
    assert.ok(s.command?.includes(`-p ${aPort} agent@127.0.0.1`), s.command ?? '');
  });

  test('ssh as agent with the workspace key runs commands; authorized_keys is the agent\'s, 0600, holding that key', async () => {
    const times: number[] = [];
    let r: SshResult | undefined;
    for (let i = 0; i < 3; i++) {
      r = await ssh(aPort, a.ssh!.private_key_path, [], ['id']);
      assert.equal(r.code, 0, r.stderr);
      times.push(r.ms);
    }
    assert.match(r!.stdout, /^uid=1000\(agent\) gid=1000\(agent\)/);
    console.log(`# ssh ... id (connect, key exchange, auth, run): ${times.map((t) => `${Math.round(t)} ms`).join(', ')}`);
    const st = await svc.exec(me, { workspace_id: a.workspace_id, command: ['stat', '-c', '%a %U:%G', '/home/agent/.ssh', '/home/agent/.ssh/authorized_keys'] });
    assert.equal(st.stdout.trim(), '700 agent:agent\n600 agent:agent');
    const keys = await svc.fileRead(me, { workspace_id: a.workspace_id, path: '/home/agent/.ssh/authorized_keys' });
    assert.deepEqual(keys.content.trim().split('\n'), [a.ssh!.public_key]);
  });

  test('password login is refused: the server offers public keys only', async () => {
    const r = await ssh(aPort, undefined, ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive'], ['id']);
    assert.equal(r.code, 255, r.stdout);
    // sshd lists the methods it would accept; with passwords on it would say (publickey,password).
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  });

  test('a fork gets its own key: its key works there, the source\'s does not, and neither works in the other', async () => {
    b = await svc.fork(me, { workspace_id: a.workspace_id, name: 'ar-b' });
    bPort = (await svc.portForward(me, { workspace_id: b.workspace_id, guest_port: 22 })).host_port;
    b = await svc.info(me, { workspace_id: b.workspace_id });
    assert.ok(b.ssh);
    assert.notEqual(b.ssh.private_key_path, a.ssh!.private_key_path);
    assert.notEqual(b.ssh.public_key, a.ssh!.public_key);
    // A marker only the fork has: proves the login landed in the fork, whatever its hostname says.
    await svc.fileWrite(me, { workspace_id: b.workspace_id, path: '/tmp/islet-which', content: b.workspace_id });
    let last: SshResult | undefined;
    await until('ssh into the fork', 300_000, async () => {
      last = await ssh(bPort, b.ssh!.private_key_path, [], ['cat', '/tmp/islet-which']);
      return last.code === 0 ? true : undefined;
    }, () => last?.stderr.trim() ?? '');
    assert.equal(last!.stdout.trim(), b.workspace_id);
    const aInB = await ssh(bPort, a.ssh!.private_key_path, [], ['id']);
    assert.equal(aInB.code, 255, `the source's key still logs into the fork: ${aInB.stdout}`);
    assert.match(aInB.stderr, /Permission denied/);
    const bInA = await ssh(aPort, b.ssh!.private_key_path, [], ['id']);
    assert.equal(bInA.code, 255, `the fork's key logs into the source: ${bInA.stdout}`);
    assert.equal((await ssh(aPort, a.ssh!.private_key_path, [], ['true'])).code, 0, 'the source still takes its own key');
  });

  test('opencode@<session> starts as agent and answers on port 4096 with the session id as password', async () => {
    const session = 'acc-s1';
    const web = (await svc.portForward(me, { workspace_id: a.workspace_id, guest_port: 4096 })).host_port;
    const t0 = performance.now();
    // Started the way an agent would: over SSH, as agent, through its systemd user manager.
    const start = await ssh(aPort, a.ssh!.private_key_path, [], ['systemctl', '--user', 'start', `opencode@${session}.service`]);
    assert.equal(start.code, 0, start.stderr);
    const get = async (password: string) => {
      const auth = Buffer.from(`opencode:${password}`).toString('base64');
      const res = await fetch(`http://127.0.0.1:${web}/config`, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(60_000) });
      await res.arrayBuffer();
      return res.status;
    };
    let lastErr = '';
    const status = await until('OpenCode answering on 4096', 15 * 60_000, async () => {
      try {
        return await get(session);
      } catch (e) {
        lastErr = String((e as Error).cause ?? e);
        const r = await ssh(aPort, a.ssh!.private_key_path, [], ['systemctl', '--user', 'show', '-p', 'NRestarts', '--value', `opencode@${session}.service`]);
        if (Number(r.stdout.trim()) >= 2) throw new Error(`opencode@${session} is crash-looping (${r.stdout.trim()} restarts)`);
        return undefined;
      }
    }, () => lastErr);
    const startMs = performance.now() - t0;
    assert.equal(status, 200);
    assert.equal(await get('wrong'), 401);
    console.log(`# opencode@${session}: systemctl start to the first HTTP answer on 4096: ${(startMs / 1000).toFixed(1)} s`);
    // One string: ssh hands the remote command to the login shell, which would re-split separate words.
    const ls = await ssh(aPort, a.ssh!.private_key_path, [], [`test -d ~/workspaces/${session} && ss -ltnH 'sport = :4096'`]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /0\.0\.0\.0:4096/);
  });

  test('destroy removes the workspace\'s key from the host', async () => {
    const key = b.ssh!.private_key_path;
    assert.ok(existsSync(key));
    await svc.destroy(me, { workspace_id: b.workspace_id });
    assert.equal(existsSync(key), false);
    assert.equal(existsSync(path.dirname(key)), false);
  });
});
