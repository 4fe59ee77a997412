// Per-workspace SSH keys on the host side: real ssh-keygen, real files; the
// guest half (authorized_keys, sshd) is test/vm/agent-ready.vm.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import {
  generateKey, KEY_COMMENT_PREFIX, keyDir, privateKeyPath, removeWorkspaceKey, sshInfo, sweepKeys,
} from '../../src/service/ssh.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-ssh-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('generateKey makes an ed25519 pair only the owner can read, and a new one each time', async () => {
  const a = await generateKey(dataDir, 'ws-0000000a', 'agent');
  const key = privateKeyPath(dataDir, 'ws-0000000a');
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.equal(statSync(keyDir(dataDir, 'ws-0000000a')).mode & 0o777, 0o700);
  assert.match(a.public_key, new RegExp(`^ssh-ed25519 AAAA\\S+ ${KEY_COMMENT_PREFIX}ws-0000000a$`));
  assert.match(readFileSync(key, 'utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  // The private key is the one whose public half we report (ssh-keygen -y derives it).
  const derived = spawnSync('ssh-keygen', ['-y', '-f', key], { encoding: 'utf8' });
  assert.equal(derived.status, 0, derived.stderr);
  assert.equal(derived.stdout.trim().split(' ').slice(0, 2).join(' '), a.public_key.split(' ').slice(0, 2).join(' '));
  const b = await generateKey(dataDir, 'ws-0000000a', 'agent');
  assert.notEqual(b.public_key, a.public_key, 'regenerating replaces the pair');
});

test('sshInfo: null without a key; a ready command once guest port 22 is forwarded', async () => {
  assert.equal(await sshInfo(dataDir, 'ws-000000ff', []), null);
  await generateKey(dataDir, 'ws-0000000b', 'agent');
  const none = await sshInfo(dataDir, 'ws-0000000b', []);
  assert.equal(none?.user, 'agent');
  assert.equal(none?.guest_port, 22);
  assert.equal(none?.host_port, null);
  assert.equal(none?.command, null);
  assert.match(none?.hint ?? '', /port_forward/);
  const fwd = await sshInfo(dataDir, 'ws-0000000b', [{ host_address: '127.0.0.1', host_port: 2222, guest_port: 22, created_at: '' }]);
  assert.equal(fwd?.host_port, 2222);
  assert.equal(fwd?.command, `ssh -i ${privateKeyPath(dataDir, 'ws-0000000b')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p 2222 agent@127.0.0.1`);
});

test('removeWorkspaceKey and sweepKeys delete keys of workspaces that are gone, and nothing else', async () => {
  await generateKey(dataDir, 'ws-0000000c', 'agent');
  await generateKey(dataDir, 'ws-0000000d', 'agent');
  await removeWorkspaceKey(dataDir, 'ws-0000000c');
  assert.equal(existsSync(keyDir(dataDir, 'ws-0000000c')), false);
  await removeWorkspaceKey(dataDir, '../escape'); // not a workspace id: ignored
  const gone = await sweepKeys(dataDir, new Set(['ws-0000000d']));
  assert.ok(!gone.includes('ws-0000000d'));
  assert.ok(existsSync(keyDir(dataDir, 'ws-0000000d')));
  assert.equal(existsSync(keyDir(dataDir, 'ws-0000000a')), false, 'swept');
  await assert.rejects(generateKey(dataDir, 'ws-../x', 'agent'), TypeError);
});
