// A guest's identity, made its own: every workspace that starts from saved
// state (a template, a pool VM, a fork) carries the hostname, machine-id,
// entropy and SSH host keys of the VM that state came from. One reset, used
// by all three paths, so no path forgets a piece.
import { randomBytes } from 'node:crypto';
import { GuestStepError } from '../core/errors.js';
import type { Machine } from './machine.js';

const hex = (n: number) => randomBytes(n).toString('hex');

// Arguments, never interpolation: $1 hostname, $2 machine-id, $3 entropy.
// SSH host keys are remade only where they exist (images running sshd), of
// the same types, and sshd is restarted if it runs, so it serves the new ones.
const SCRIPT = [
  'set -e',
  'printf %s "$1" > /proc/sys/kernel/hostname',
  'printf "%s\\n" "$1" > /etc/hostname',
  'printf "%s\\n" "$2" > /etc/machine-id',
  'printf %s "$3" > /dev/urandom',
  'remade=',
  'for k in /etc/ssh/ssh_host_*_key; do',
  '  [ -e "$k" ] || continue',
  '  t=${k#/etc/ssh/ssh_host_}; t=${t%_key}',
  '  rm -f "$k" "$k.pub"',
  '  ssh-keygen -q -t "$t" -N "" -f "$k"',
  '  remade=1',
  'done',
  'if [ -n "$remade" ] && command -v systemctl >/dev/null; then systemctl try-restart ssh.service || true; fi',
].join('\n');

/**
 * Gives a running guest a fresh identity: hostname, machine-id, new entropy
 * in its RNG, new SSH host keys where it has any, and the host's clock.
 * Shell builtins only, except ssh-keygen where keys exist: under TCG every
 * program started in a fresh VM costs translation time.
 */
export async function freshIdentity(m: Machine, hostname: string, signal?: AbortSignal): Promise<void> {
  const r = await m.exec({ argv: ['sh', '-c', SCRIPT, 'sh', hostname, hex(16), hex(256)], timeoutMs: 60_000 }, { signal });
  if (r.exitCode !== 0) throw new GuestStepError(`identity reset failed in the guest (exit ${r.exitCode}): ${r.stderr.toString('utf8').slice(0, 200)}`);
  await m.agent.syncClock(signal);
}
