// A guest's identity, made its own: every workspace that starts from saved
// state (a template, a pool VM, a fork) carries the hostname, machine-id,
// entropy and SSH host keys of the VM that state came from. One reset, used
// by all three paths, so no path forgets a piece. In bridge mode that state
// also carries an address that is not the workspace's (a template's spare
// address, the fork source's lease): the guest is re-addressed in the same
// exec, before its TAP goes on the bridge.
import { randomBytes } from 'node:crypto';
import { GuestStepError } from '../core/errors.js';
import type { NetSpec } from '../vmm/argv.js';
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

// $4 MAC, $5 address/prefix, $6 gateway, $7 DNS. Link down first: it drops
// the old neighbours and routes, so nothing learned under the old address
// survives. eth0 is the only NIC (what islet.net configures at boot). A guest
// without ip (iproute2 or busybox) fails here, and the caller boots instead.
const READDRESS = [
  'if command -v ip >/dev/null; then ipc() { ip "$@"; }',
  'elif command -v busybox >/dev/null; then ipc() { busybox ip "$@"; }',
  'else echo "no ip command (iproute2 or busybox) to re-address eth0" >&2; exit 127; fi',
  'ipc link set dev eth0 down',
  'ipc addr flush dev eth0',
  'ipc link set dev eth0 address "$4"',
  'ipc link set dev eth0 up',
  'ipc addr add "$5" dev eth0',
  'ipc route add default via "$6" dev eth0',
  'printf "# written by islet at re-addressing\\nnameserver %s\\n" "$7" > /etc/resolv.conf.islet-tmp',
  'mv -f /etc/resolv.conf.islet-tmp /etc/resolv.conf',
].join('\n');

/**
 * Gives a running guest a fresh identity: hostname, machine-id, new entropy
 * in its RNG, new SSH host keys where it has any, and the host's clock.
 * Shell builtins only, except ssh-keygen where keys exist: under TCG every
 * program started in a fresh VM costs translation time. With a TAP net (bridge
 * mode), eth0 also takes that spec's MAC, address, route and DNS: by the
 * agent's NET_CONFIG (system calls, no program started: the ip commands of
 * READDRESS cost ~450 ms of a fresh VM's TCG time), or by READDRESS for an
 * agent without it.
 */
export async function freshIdentity(m: Machine, hostname: string, signal?: AbortSignal, net?: NetSpec): Promise<void> {
  const tap = net?.kind === 'tap' ? net : undefined;
  const byAgent = tap ? await m.agent.netConfig({ mac: tap.mac, net: `${tap.ip}/${tap.prefix},gw=${tap.gateway},dns=${tap.dns}` }, signal) : false;
  const shell = tap && !byAgent ? tap : undefined;
  const script = shell ? `${SCRIPT}\n${READDRESS}` : SCRIPT;
  const addr = shell ? [shell.mac, `${shell.ip}/${shell.prefix}`, shell.gateway, shell.dns] : [];
  const r = await m.exec({ argv: ['sh', '-c', script, 'sh', hostname, hex(16), hex(256), ...addr], timeoutMs: 60_000 }, { signal });
  if (r.exitCode !== 0) throw new GuestStepError(`identity reset failed in the guest (exit ${r.exitCode}): ${r.stderr.toString('utf8').slice(0, 200)}`);
  await m.agent.syncClock(signal);
}
