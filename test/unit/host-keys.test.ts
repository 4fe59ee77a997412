// SSH host keys made on the host for guests started from saved state
// (src/service/host-keys.ts): OpenSSH's own tools must read the private key,
// derive the public line we report, and sign with it; every key is new.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { newHostKey } from '../../src/service/host-keys.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-hostkey-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keygen = (args: string[], input?: string) => spawnSync('ssh-keygen', args, { encoding: 'utf8', input });

test('newHostKey: an ed25519 pair ssh-keygen reads, derives the same public key from, and signs with', () => {
  const k = newHostKey('ws-hostkey');
  assert.match(k.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\S+ ws-hostkey$/);
  assert.match(k.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n$/);
  const key = path.join(dir, 'ssh_host_ed25519_key');
  writeFileSync(key, k.privateKey, { mode: 0o600 });
  writeFileSync(`${key}.pub`, `${k.publicKey}\n`);
  const derived = keygen(['-y', '-f', key]);
  assert.equal(derived.status, 0, derived.stderr);
  assert.equal(derived.stdout.trim(), k.publicKey, 'ssh-keygen -y derives our public line, comment included');
  // The private scalar is right, not only the stored public half: a signature made with it verifies against the public key.
  writeFileSync(path.join(dir, 'data'), 'islet');
  const sign = keygen(['-Y', 'sign', '-f', key, '-n', 'file', path.join(dir, 'data')]);
  assert.equal(sign.status, 0, sign.stderr);
  const check = keygen(['-Y', 'check-novalidate', '-n', 'file', '-f', `${key}.pub`, '-s', path.join(dir, 'data.sig')], 'islet');
  assert.equal(check.status, 0, check.stderr);
  const fp = keygen(['-l', '-f', `${key}.pub`]);
  assert.match(fp.stdout, /^256 SHA256:\S+ ws-hostkey \(ED25519\)/);
});

test('newHostKey: a new key every call', () => {
  const keys = new Set(Array.from({ length: 20 }, () => newHostKey('x').publicKey));
  assert.equal(keys.size, 20);
});
