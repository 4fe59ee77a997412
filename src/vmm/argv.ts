// Builds QEMU's argv for one microvm. Pure: no I/O, so it is unit-tested
// exhaustively. Paths go into QEMU's option syntax, where ',' separates
// options, so commas are doubled (QEMU's escape) rather than rejected.
import path from 'node:path';
import { egressGuestfwd } from '../net/egress.js';

export type Accel = 'kvm' | 'tcg';
export type InitMode = 'fast' | 'full';

export const AGENT_PORT_NAME = 'org.islet.agent.0';

export interface VmSpec {
  /** Short unique id; also QEMU's -name, which the orphan sweep matches on. */
  id: string;
  /** Per-VM directory for sockets, pid file and console log. */
  dir: string;
  kernel: string;
  initrd: string;
  /** The VM's own qcow2 overlay (its backing file is the read-only base). */
  disk: string;
  vcpus: number;
  memoryMb: number;
  accel: Accel;
  initMode: InitMode;
  hostname: string;
  /** TCG translation cache in MiB; 0 keeps QEMU's default. */
  tcgTbSizeMb?: number;
  /** Guest TSC frequency; the microvm guest cannot calibrate without it. */
  tscKhz?: number;
  /** Extra kernel command line words (validated by the caller). */
  cmdlineExtra?: string[];
  /** The VM's network: user-mode (slirp) or a TAP on the host bridge; absent: no network device at all. */
  net?: NetSpec;
  /** Start paused, waiting for a migration stream (QMP migrate-incoming): a memory restore. */
  incoming?: boolean;
  /**
   * Guest RAM backed by this file instead of anonymous memory. shared: the
   * guest writes into the file (a template being built); not shared: a private
   * copy-on-write mapping of it (a VM restored from a template), so pages the
   * guest never writes stay in the host page cache, one copy for every VM.
   */
  ramFile?: { path: string; shared: boolean };
}

/**
 * The RAM block's name. A file-backed VM uses the name QEMU gives microvm's
 * default RAM, so a migration stream saved by either kind of VM loads into
 * the other (pause/resume and memory snapshots keep working).
 */
export const RAM_ID = 'microvm.ram';

export function ramFileArgs(spec: Pick<VmSpec, 'ramFile' | 'memoryMb'>): string[] {
  if (!spec.ramFile) return [];
  return ['-object', [
    'memory-backend-file', `id=${RAM_ID}`, 'x-use-canonical-path-for-ramblock-id=off', `size=${spec.memoryMb}M`,
    `mem-path=${qemuEscape(spec.ramFile.path)}`, `share=${spec.ramFile.shared ? 'on' : 'off'}`,
  ].join(',')];
}

/** One host port forwarded to one guest TCP port, bound to 127.0.0.1 on the host. */
export interface PortForward {
  hostPort: number;
  guestPort: number;
}

export interface UserNetSpec {
  kind?: 'user';
  /** restrict=on: the guest reaches nothing outside (neither the internet nor the host); forwards still work. */
  restrict: boolean;
  forwards?: PortForward[];
  /** islet-egress: a guestfwd at the proxy address starts it per connection, with the policy file in the VM's dir. */
  egressHelper?: string;
}

/** Bridge mode: QEMU opens (and, as root, creates) the TAP; the host puts it on the bridge. */
export interface TapNetSpec {
  kind: 'tap';
  ifname: string;
  mac: string;
  /** The guest's static configuration, passed as islet.net= (no DHCP in the image). */
  ip: string;
  prefix: number;
  gateway: string;
  dns: string;
  /**
   * No islet.net: eth0 stays down and without an address (a template, a
   * pool VM). The guest takes ip.. dns only when re-addressed (NET_CONFIG),
   * so a restore has nothing to undo first.
   */
  unaddressed?: boolean;
}

export type NetSpec = UserNetSpec | TapNetSpec;

/** The fixed addresses of QEMU's user-mode network (its defaults, spelled out). */
export const USER_NET = {
  netdevId: 'net0',
  network: '10.0.2.0/24',
  guestIp: '10.0.2.15',
  prefix: 24,
  gateway: '10.0.2.2',
  dns: '10.0.2.3',
  hostAddress: '127.0.0.1',
} as const;

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** The hostfwd rule text, as used both in -netdev and in HMP hostfwd_add. */
export function hostfwdRule(f: PortForward): string {
  if (!isPort(f.hostPort) || !isPort(f.guestPort)) throw new RangeError(`invalid port forward ${f.hostPort}->${f.guestPort}`);
  return `tcp:${USER_NET.hostAddress}:${f.hostPort}-:${f.guestPort}`;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The tap netdev; every field is checked because it lands in QEMU's option syntax and the kernel command line. */
export function tapNetdevArg(net: TapNetSpec): string {
  if (!/^[a-zA-Z0-9_-]{1,15}$/.test(net.ifname)) throw new RangeError(`invalid tap name ${JSON.stringify(net.ifname)}`);
  return ['tap', `id=${USER_NET.netdevId}`, `ifname=${net.ifname}`, 'script=no', 'downscript=no'].join(',');
}

function checkTap(net: TapNetSpec): void {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(net.mac)) throw new RangeError(`invalid mac ${JSON.stringify(net.mac)}`);
  for (const a of [net.ip, net.gateway, net.dns]) if (!IPV4.test(a)) throw new RangeError(`invalid IPv4 address ${JSON.stringify(a)}`);
  if (!Number.isInteger(net.prefix) || net.prefix < 1 || net.prefix > 32) throw new RangeError(`invalid prefix ${net.prefix}`);
}

/** The islet.net= word the guest agent configures eth0 from. */
export function guestNetWord(net: NetSpec): string {
  if (net.kind === 'tap') {
    checkTap(net);
    return `islet.net=${net.ip}/${net.prefix},gw=${net.gateway},dns=${net.dns}`;
  }
  return `islet.net=${USER_NET.guestIp}/${USER_NET.prefix},gw=${USER_NET.gateway},dns=${USER_NET.dns}`;
}

function netArgs(net: NetSpec | undefined, dir: string): string[] {
  if (!net) return [];
  if (net.kind === 'tap') {
    checkTap(net);
    return ['-netdev', tapNetdevArg(net), '-device', `virtio-net-device,netdev=${USER_NET.netdevId},mac=${net.mac}`];
  }
  return ['-netdev', netdevArg(net, dir), '-device', `virtio-net-device,netdev=${USER_NET.netdevId}`];
}

export function netdevArg(net: UserNetSpec, dir?: string): string {
  const parts = [
    'user', `id=${USER_NET.netdevId}`, `restrict=${net.restrict ? 'on' : 'off'}`,
    `net=${USER_NET.network}`, `host=${USER_NET.gateway}`, `dns=${USER_NET.dns}`, 'ipv6=off',
  ];
  for (const f of net.forwards ?? []) parts.push(`hostfwd=${hostfwdRule(f)}`);
  if (net.egressHelper) {
    if (!dir) throw new RangeError('the egress proxy needs the VM directory');
    parts.push(`guestfwd=${qemuEscape(egressGuestfwd(net.egressHelper, dir))}`);
  }
  return parts.join(',');
}

const qemuEscape = (s: string): string => s.replace(/,/g, ',,');

export interface VmPaths {
  qmp: string;
  agent: string;
  console: string;
  pidfile: string;
  stderr: string;
}

export function vmPaths(dir: string): VmPaths {
  return {
    qmp: path.join(dir, 'qmp.sock'),
    agent: path.join(dir, 'agent.sock'),
    console: path.join(dir, 'console.log'),
    pidfile: path.join(dir, 'qemu.pid'),
    stderr: path.join(dir, 'qemu.stderr'),
  };
}

/** Socket paths must fit sun_path (108 bytes) with room to spare. */
export const MAX_SOCKET_PATH = 100;


export function kernelCmdline(spec: Pick<VmSpec, 'initMode' | 'hostname' | 'tscKhz' | 'cmdlineExtra' | 'net'> & { accel?: VmSpec['accel'] }): string {
  const words = [
    'console=ttyS0', 'reboot=t', 'quiet', 'cryptomgr.notests', 'no_timer_check', 'tsc=reliable',
    'nokaslr', 'mitigations=off', 'pci=off', 'audit=0', 'apparmor=0', 'panic=-1',
    'islet.root=/dev/vda', 'islet.rootfstype=ext4', `islet.init=${spec.initMode}`, `islet.hostname=${spec.hostname}`,
  ];
  if (spec.tscKhz && spec.tscKhz > 0) words.push(`tsc_early_khz=${Math.round(spec.tscKhz)}`);
  // TCG keys translated code by virtual address: with user-space ASLR every process maps ld.so and libc
  // somewhere new, so each exec retranslates them and fills the translation cache, whose flushes then stall
  // the whole guest for tens of ms (most of the exec tail). Fixed mappings let every process reuse them.
  if (spec.accel === 'tcg') words.push('norandmaps');
  // The agent configures eth0 from this (there is no DHCP client in the image).
  if (spec.net && !(spec.net.kind === 'tap' && spec.net.unaddressed)) words.push(guestNetWord(spec.net));
  if (spec.cmdlineExtra) words.push(...spec.cmdlineExtra);
  return words.join(' ');
}

export function buildQemuArgv(spec: VmSpec, qemuBinary = 'qemu-system-x86_64'): string[] {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(spec.id)) throw new RangeError(`invalid vm id ${JSON.stringify(spec.id)}`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$/.test(spec.hostname)) throw new RangeError(`invalid hostname ${JSON.stringify(spec.hostname)}`);
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) throw new RangeError('vcpus must be a positive integer');
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 64) throw new RangeError('memoryMb must be an integer >= 64');
  const p = vmPaths(spec.dir);
  for (const s of [p.qmp, p.agent]) {
    if (Buffer.byteLength(s) > MAX_SOCKET_PATH) throw new RangeError(`socket path too long (${Buffer.byteLength(s)} > ${MAX_SOCKET_PATH} bytes): ${s}`);
  }
  const accel = spec.accel === 'tcg' && spec.tcgTbSizeMb ? `tcg,tb-size=${spec.tcgTbSizeMb}` : spec.accel;
  const net = netArgs(spec.net, spec.dir);
  return [
    qemuBinary,
    '-name', `islet-${spec.id}`,
    '-M', `microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on${spec.ramFile ? `,memory-backend=${RAM_ID}` : ''}`,
    ...ramFileArgs(spec),
    // Under KVM the host CPU model is fastest. Under TCG, `max` rather than
    // qemu64: real toolchains (OpenCode's bundled Bun) assume SSE4.2/POPCNT
    // and die with SIGILL on qemu64.
    '-cpu', spec.accel === 'kvm' ? 'host' : 'max',
    '-accel', accel,
    '-m', String(spec.memoryMb),
    '-smp', String(spec.vcpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-serial', `file:${qemuEscape(p.console)}`,
    '-kernel', spec.kernel,
    '-initrd', spec.initrd,
    '-append', kernelCmdline(spec),
    '-drive', `id=root,file=${qemuEscape(spec.disk)},format=qcow2,if=none,discard=unmap`,
    '-device', 'virtio-blk-device,drive=root',
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${qemuEscape(p.agent)},server=on,wait=off`,
    '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    ...net,
    '-qmp', `unix:${qemuEscape(p.qmp)},server=on,wait=off`,
    '-pidfile', p.pidfile,
    ...(spec.incoming ? ['-incoming', 'defer'] : []),
  ];
}
