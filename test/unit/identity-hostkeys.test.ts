// The identity reset's SSH host key (src/service/identity.ts): made on the
// host, a new one per reset, the private half on the exec's stdin (never in
// argv), the public line as an argument; when the guest says it signalled
// sshd, the reset returns only once port 22 is held by none of the old
// listeners. The guest side (sshd serving the new key) is
// test/vm/agent-ready.vm.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { freshIdentity } from '../../src/service/identity.js';
import type { Machine } from '../../src/service/machine.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-identity-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const listen = (inode: string, port = '0016') => `   0: 00000000:${port} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;

function fakeMachine(stdout: string, tcp: () => string) {
  const execs: Array<{ argv: string[]; stdin?: string | Buffer }> = [];
  let reads = 0;
  const m = {
    exec: async (req: { argv: string[]; stdin?: string | Buffer }) => {
      execs.push(req);
      return { exitCode: 0, stdout: Buffer.from(stdout), stderr: Buffer.alloc(0) };
    },
    readFile: async (p: string) => {
      if (p === '/proc/net/tcp6') throw new Error('no IPv6');
      reads++;
      return { data: Buffer.from(HEADER + tcp()), mode: 0o444 };
    },
    agent: { syncClock: async () => undefined, netConfig: async () => false },
  } as unknown as Machine;
  return { m, execs, reads: () => reads };
}

test('each reset hands the guest a new ed25519 host key: private on stdin, public line as $4', async () => {
  const { m, execs } = fakeMachine('', () => '');
  await freshIdentity(m, 'ws-a');
  await freshIdentity(m, 'ws-a');
  const [a, b] = execs;
  for (const e of [a!, b!]) {
    const priv = String(e.stdin);
    assert.match(priv, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    assert.ok(!e.argv.some((x) => x.includes('PRIVATE KEY')), 'the private key is not in argv');
    assert.match(e.argv[7]!, /^ssh-ed25519 AAAA\S+ root@ws-a$/);
    const key = path.join(dir, `k${execs.indexOf(e)}`);
    writeFileSync(key, priv, { mode: 0o600 });
    const derived = spawnSync('ssh-keygen', ['-y', '-f', key], { encoding: 'utf8' });
    assert.equal(derived.status, 0, derived.stderr);
    assert.equal(derived.stdout.trim(), e.argv[7], 'the public line is the private key\'s');
  }
  assert.notEqual(a!.argv[7], b!.argv[7], 'a new key every reset');
  const script = a!.argv[2]!;
  assert.match(script, /rm -f \/etc\/ssh\/ssh_host_\*_key \/etc\/ssh\/ssh_host_\*_key\.pub/, 'every old key goes, whatever its type');
  assert.match(script, /umask 077\n.*> \/etc\/ssh\/ssh_host_ed25519_key\n/, 'the private key is written 0600');
  assert.doesNotMatch(script, /ssh-keygen/, 'no key is made in the guest');
});

test('without the guest\'s word that sshd was signalled, nothing is waited for', async () => {
  const { m, reads } = fakeMachine('', () => listen('111'));
  await freshIdentity(m, 'ws-b');
  assert.equal(reads(), 0);
});

test('after sshd was signalled, the reset waits until port 22 is held only by new listeners', async () => {
  // The old listener (111, and one on another port) stays for a few polls, then none, then the re-executed sshd's (333).
  let polls = 0;
  const { m, reads } = fakeMachine('islet-sshd-reloaded 111 112\n', () => {
    polls++;
    if (polls <= 3) return listen('111') + listen('112') + listen('999', '0050');
    if (polls === 4) return listen('112') + listen('333');
    if (polls <= 6) return listen('999', '0050');
    return listen('333') + listen('334');
  });
  await freshIdentity(m, 'ws-c');
  assert.equal(reads(), 7, 'returned at the first poll where every port-22 listener was new');
});
