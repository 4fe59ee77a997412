// User mode's egress path. QEMU's slirp runs with restrict=on, so a guest can
// open no connection out of its VM except to one address, the egress proxy
// (a guestfwd): slirp starts islet-egress (egress/, built like the agent)
// once per connection with the guest's stream on its stdin/stdout. The
// helper reads the workspace's policy from egress.json in the VM's run
// directory at every connection, so islet changes the policy of a running
// VM by rewriting that file: no restart, processes survive.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../core/config.js';

/** The proxy's address inside every user-mode guest network (10.0.2.0/24, unused by slirp). */
export const EGRESS_PROXY = { address: '10.0.2.100', port: 3128 } as const;
export const EGRESS_POLICY_FILE = 'egress.json';

export interface EgressPolicy {
  internet: boolean;
  allowedDomains: readonly string[];
}

/** The file the helper reads: version 1, see egress/policy.go. */
export function egressPolicyJson(p: EgressPolicy, config: Config): string {
  const n = config.network;
  return `${JSON.stringify({
    version: 1,
    internet: p.internet,
    allowed_domains: p.allowedDomains,
    allowed_ports: n.egress_ports,
    allowed_cidrs: n.allowed_private_cidrs,
    resolvers: n.dns_upstream.map((ip) => `${ip}:53`),
  })}\n`;
}

/** Writes the policy of the VM whose run directory is dir, atomically (the helper may read it at any moment). */
export function writeEgressPolicy(dir: string, p: EgressPolicy, config: Config): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, EGRESS_POLICY_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, egressPolicyJson(p, config), { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * The guest's proxy settings: every exec gets them (and full-init images
 * /etc/environment), so curl, wget, npm, pip and git use the proxy. Both
 * spellings, since tools disagree on which they read.
 */
export function guestProxyEnv(): Record<string, string> {
  const url = `http://${EGRESS_PROXY.address}:${EGRESS_PROXY.port}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: noProxy, no_proxy: noProxy };
}

/**
 * The guestfwd value. QEMU hands the part after cmd: to slirp, which splits
 * it with shell quoting rules (no shell runs) and executes it: only the
 * helper's and the policy's paths go in, both islet's own, and a path with a
 * character that quoting would have to handle is refused rather than escaped.
 */
export function egressGuestfwd(helper: string, dir: string): string {
  const policy = path.join(dir, EGRESS_POLICY_FILE);
  for (const p of [helper, policy]) {
    if (!path.isAbsolute(p) || !/^[A-Za-z0-9_./+@=:-]+$/.test(p)) {
      throw new RangeError(`egress: path ${JSON.stringify(p)} must be absolute, with letters, digits and _./+@=:- only`);
    }
  }
  return `tcp:${EGRESS_PROXY.address}:${EGRESS_PROXY.port}-cmd:${helper} ${policy}`;
}

/** The file login shells and PAM read (ssh sessions, full-init services), so the proxy is known beyond exec too. */
export const GUEST_ENV_FILE = '/etc/environment';

/** /etc/environment with islet's proxy lines replacing any earlier ones (other lines are kept). */
export function withProxyEnv(current: string): string {
  const env = guestProxyEnv();
  const kept = current.split('\n').filter((l) => l.trim() !== '' && !Object.keys(env).some((k) => l.startsWith(`${k}=`)));
  return [...kept, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].join('\n') + '\n';
}

interface GuestFiles {
  readFile(p: string, o: { maxBytes: number }): Promise<{ data: Buffer }>;
  writeFile(p: string, data: Buffer, o?: { mode?: number }): Promise<unknown>;
}

/**
 * Writes the proxy settings into the guest's /etc/environment (a missing file
 * is created). A disk that has them already (every start after the first) is
 * left alone: the write is a synced round trip into a guest just restored.
 */
export async function installGuestProxyEnv(m: GuestFiles): Promise<boolean> {
  const cur = await m.readFile(GUEST_ENV_FILE, { maxBytes: 64 * 1024 }).then((r) => r.data.toString('utf8'), () => undefined);
  const next = withProxyEnv(cur ?? '');
  if (next === cur) return false;
  await m.writeFile(GUEST_ENV_FILE, Buffer.from(next), { mode: 0o644 });
  return true;
}
