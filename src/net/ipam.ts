// Addresses on the bridge subnet: the gateway (the bridge itself) and one
// stable address per workspace, lowest free first, so a destroyed
// workspace's address is the next one handed out. Pure: the caller keeps the
// leases (SQLite) and passes the ones in use.
import { ConfigError } from '../core/errors.js';
import { WORKSPACE_ID_FORM } from '../core/schemas.js';

export interface Subnet {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
  gateway: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(s: string): boolean {
  return IPV4.test(s);
}

export function ipToInt(ip: string): number {
  if (!isIpv4(ip)) throw new RangeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`not an IPv4 address: ${n}`);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** The bridge subnet from [network] gateway_ip and subnet_prefix; the gateway must be a host address in it. */
export function subnetOf(gatewayIp: string, prefix: number): Subnet {
  if (!Number.isInteger(prefix) || prefix < 8 || prefix > 30) throw new ConfigError(`[network] subnet_prefix ${prefix} is outside 8-30`);
  const gw = ipToInt(gatewayIp);
  const base = (gw & maskOf(prefix)) >>> 0;
  const broadcast = base + hostCount(prefix) + 1;
  if (gw === base || gw === broadcast) {
    throw new ConfigError(`[network] gateway_ip ${gatewayIp} is the ${gw === base ? 'network' : 'broadcast'} address of ${intToIp(base)}/${prefix}`,
      'use a host address of the subnet, such as the first one (default 10.42.0.1 with subnet_prefix 16)');
  }
  return { base, prefix, gateway: gw };
}

/** Host addresses in the subnet (network and broadcast excluded). */
export function hostCount(prefix: number): number {
  return 2 ** (32 - prefix) - 2;
}

export const cidr = (s: Subnet): string => `${intToIp(s.base)}/${s.prefix}`;

export function contains(s: Subnet, ip: string): boolean {
  if (!isIpv4(ip)) return false;
  const n = ipToInt(ip);
  return n > s.base && n <= s.base + hostCount(s.prefix) && n !== s.gateway;
}

/** The lowest host address of the subnet that is neither the gateway nor in use; undefined when the subnet is full. */
export function allocate(s: Subnet, used: Iterable<string>): string | undefined {
  const taken = new Set<number>();
  for (const ip of used) if (isIpv4(ip)) taken.add(ipToInt(ip));
  const last = s.base + hostCount(s.prefix);
  for (let n = s.base + 1; n <= last; n++) {
    if (n !== s.gateway && !taken.has(n)) return intToIp(n);
  }
  return undefined;
}

/**
 * A MAC per address, so two guests on one bridge never share QEMU's default
 * 52:54:00:12:34:56. 02: is a locally administered unicast prefix.
 */
export function macOf(ip: string): string {
  const n = ipToInt(ip);
  return ['02', '15', n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
    .map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0'))).join(':');
}

/**
 * The TAP device of a workspace: "isl-" + the first 11 hex digits of its id
 * (IFNAMSIZ allows 15 characters; 44 random bits keep them apart on one
 * host). An 8-digit id of earlier versions keeps the name it had.
 */
export function tapName(workspaceId: string): string {
  if (!WORKSPACE_ID_FORM.test(workspaceId)) throw new RangeError(`not a workspace id: ${JSON.stringify(workspaceId)}`);
  return `isl-${workspaceId.slice(3, 14)}`;
}

export const TAP_PREFIX = 'isl-';

/**
 * The address a VM that is not yet a workspace's boots with (a template, a
 * warm pool VM): the subnet's last host address. Such a VM's TAP is never on
 * the bridge, so the address is never seen there; the guest is re-addressed
 * to its workspace's lease before its TAP joins (service/identity.ts).
 */
export function spareAddress(s: Subnet): string {
  return intToIp(s.base + hostCount(s.prefix));
}
