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
import { newHostKey } from './host-keys.js';
import type { Machine } from './machine.js';

const hex = (n: number) => randomBytes(n).toString('hex');

// Arguments, never interpolation: $1 hostname, $2 machine-id, $3 entropy, $4
// the new SSH host key's public line; its private key comes on stdin (never
// in argv, which every guest process can read). Where the guest has host keys
// (an image running sshd), all of them go and the host-made ed25519 pair
// takes their place (host-keys.ts), 0600 and 0644 as root; then sshd, if it
// runs, is told to re-read them (SIGHUP: it re-executes itself) and the
// inodes of its old port-22 listeners are printed, so the host can wait for
// the new one (no pid file: a restart of ssh.service if it runs, as
// before). Builtins only, but for one rm: under TCG every program
// started in a fresh VM costs translation time (ssh-keygen -t rsa took 7.2 s,
// a restart of ssh.service 2.2 s).
const SCRIPT = [
  'set -e',
  'printf %s "$1" > /proc/sys/kernel/hostname',
  'printf "%s\\n" "$1" > /etc/hostname',
  'printf "%s\\n" "$2" > /etc/machine-id',
  'printf %s "$3" > /dev/urandom',
  'had=',
  'for k in /etc/ssh/ssh_host_*_key; do if [ -e "$k" ]; then had=1; fi; done',
  'if [ -n "$had" ]; then',
  '  rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub',
  '  umask 077',
  '  while IFS= read -r l; do printf "%s\\n" "$l"; done > /etc/ssh/ssh_host_ed25519_key',
  '  umask 022',
  '  printf "%s\\n" "$4" > /etc/ssh/ssh_host_ed25519_key.pub',
  '  pid=; comm=; old=',
  '  if [ -r /run/sshd.pid ]; then read -r pid < /run/sshd.pid || :; fi',
  '  if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ]; then read -r comm < "/proc/$pid/comm" || :; fi',
  '  if [ "$comm" = sshd ]; then',
  '    for f in /proc/net/tcp /proc/net/tcp6; do',
  '      [ -r "$f" ] || continue',
  '      while read -r _ a _ st _ _ _ _ _ i _; do if [ "$st" = 0A ]; then case "$a" in *:0016) old="$old $i";; esac; fi; done < "$f"',
  '    done',
  '    kill -HUP "$pid"',
  '    echo "islet-sshd-reloaded$old"',
  '  elif command -v systemctl >/dev/null; then systemctl try-restart ssh.service || :',
  '  fi',
  'fi',
].join('\n');

// $5 MAC, $6 address/prefix, $7 gateway, $8 DNS. Link down first: it drops
// the old neighbours and routes, so nothing learned under the old address
// survives. eth0 is the only NIC (what islet.net configures at boot). A guest
// without ip (iproute2 or busybox) fails here, and the caller boots instead.
const READDRESS = [
  'if command -v ip >/dev/null; then ipc() { ip "$@"; }',
  'elif command -v busybox >/dev/null; then ipc() { busybox ip "$@"; }',
  'else echo "no ip command (iproute2 or busybox) to re-address eth0" >&2; exit 127; fi',
  'ipc link set dev eth0 down',
  'ipc addr flush dev eth0',
  'ipc link set dev eth0 address "$5"',
  'ipc link set dev eth0 up',
  'ipc addr add "$6" dev eth0',
  'ipc route add default via "$7" dev eth0',
  'printf "# written by islet at re-addressing\\nnameserver %s\\n" "$8" > /etc/resolv.conf.islet-tmp',
  'mv -f /etc/resolv.conf.islet-tmp /etc/resolv.conf',
].join('\n');

/**
 * Gives a running guest a fresh identity: hostname, machine-id, new entropy
 * in its RNG, a new SSH host key where it has any (sshd serving it before
 * this returns), and the host's clock. With a TAP net (bridge mode), eth0
 * also takes that spec's MAC, address, route and DNS: by the agent's
 * NET_CONFIG (system calls, no program started: the ip commands of READDRESS
 * cost ~450 ms of a fresh VM's TCG time), or by READDRESS for an agent
 * without it.
 */
export async function freshIdentity(m: Machine, hostname: string, signal?: AbortSignal, net?: NetSpec): Promise<void> {
  const tap = net?.kind === 'tap' ? net : undefined;
  const byAgent = tap ? await m.agent.netConfig({ mac: tap.mac, net: `${tap.ip}/${tap.prefix},gw=${tap.gateway},dns=${tap.dns}` }, signal) : false;
  const shell = tap && !byAgent ? tap : undefined;
  const script = shell ? `${SCRIPT}\n${READDRESS}` : SCRIPT;
  const addr = shell ? [shell.mac, `${shell.ip}/${shell.prefix}`, shell.gateway, shell.dns] : [];
  const key = newHostKey(`root@${hostname}`);
  // The clock goes in beside the exec: neither depends on the other, and each round trip into a just-restored guest counts.
  const [r] = await Promise.all([
    m.exec({ argv: ['sh', '-c', script, 'sh', hostname, hex(16), hex(256), key.publicKey, ...addr], stdin: key.privateKey, timeoutMs: 60_000 }, { signal }),
    m.agent.syncClock(signal),
  ]);
  if (r.exitCode !== 0) throw new GuestStepError(`identity reset failed in the guest (exit ${r.exitCode}): ${r.stderr.toString('utf8').slice(0, 200)}`);
  const reloaded = /^islet-sshd-reloaded(.*)$/m.exec(r.stdout.toString('utf8'));
  if (reloaded) await sshdBack(m, new Set(reloaded[1]!.trim().split(/\s+/).filter(Boolean)), signal);
}

// $1 hostname. Builtins only: one shell, no other program.
const HOSTNAME = ['set -e', 'printf %s "$1" > /proc/sys/kernel/hostname', 'printf "%s\\n" "$1" > /etc/hostname'].join('\n');

/**
 * What is left of the identity reset when a warm pool VM becomes a
 * workspace. The pool gave the VM its own machine-id, entropy and SSH host
 * key when it filled it (freshIdentity with the VM's id as hostname, which
 * is already the workspace's id), and nothing has copied the VM since, so
 * those are this workspace's alone. Left for the hand-out: the clock, the
 * hostname when the workspace is named otherwise than its id (one shell,
 * beside the clock), and under bridge networking the workspace's address
 * (NET_CONFIG; an agent without it gets the whole reset, whose shell script
 * re-addresses eth0).
 */
export async function handOutIdentity(m: Machine, hostname: string, current: string, signal?: AbortSignal, net?: NetSpec): Promise<void> {
  const tap = net?.kind === 'tap' ? net : undefined;
  if (tap && !(await m.agent.netConfig({ mac: tap.mac, net: `${tap.ip}/${tap.prefix},gw=${tap.gateway},dns=${tap.dns}` }, signal))) {
    return freshIdentity(m, hostname, signal, net);
  }
  const rename = async () => {
    if (hostname === current) return;
    const r = await m.exec({ argv: ['sh', '-c', HOSTNAME, 'sh', hostname], timeoutMs: 60_000 }, { signal });
    if (r.exitCode !== 0) throw new GuestStepError(`setting the hostname failed in the guest (exit ${r.exitCode}): ${r.stderr.toString('utf8').slice(0, 200)}`);
  };
  await Promise.all([rename(), m.agent.syncClock(signal)]);
}

const SSHD_BACK_MS = 30_000;
const SSHD_POLL_MS = 25;

/** The inodes of the guest's TCP sockets listening on port 22 (procfs, read by the agent: no program started). */
async function sshListeners(m: Machine, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await m.readFile(f, { maxBytes: 1 << 20, signal }).then((r) => r.data.toString('utf8'), () => '');
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c[3] === '0A' && c[1]?.endsWith(':0016') && c[9]) out.push(c[9]);
    }
  }
  return out;
}

/**
 * After the SIGHUP: sshd closes its listeners and re-executes itself with the
 * new key. Until every old listener is gone a connection could still meet the
 * old process; until a new one listens, a connection is refused. Both are
 * over when port 22 is held by sockets none of which is an old one.
 */
async function sshdBack(m: Machine, old: ReadonlySet<string>, signal?: AbortSignal): Promise<void> {
  if (old.size === 0) return; // sshd listens elsewhere (its own Port): nothing here to watch
  const end = Date.now() + SSHD_BACK_MS;
  for (;;) {
    const now = await sshListeners(m, signal);
    if (now.length > 0 && now.every((i) => !old.has(i))) return;
    if (Date.now() > end) {
      throw new GuestStepError(`sshd did not come back on port 22 within ${SSHD_BACK_MS / 1000} s after its host key was replaced`,
        'see journalctl -u ssh.service in a workspace of this image', { listeners: now });
    }
    await new Promise((r) => setTimeout(r, SSHD_POLL_MS));
  }
}
