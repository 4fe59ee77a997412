// What every `islet ws` subcommand shares: common flags, input validation
// that names the CLI flag at fault, opening the service for one call, and
// the readable form of a workspace.
import { Command } from 'commander';
import type { z } from 'zod';
import { ConfigSchema, loadConfig } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { WorkspaceRef } from '../../core/schemas.js';
import type { LifetimeInfo } from '../../service/lifetimes.js';
import type { Caller, WorkspaceInfo } from '../../service/types.js';
import { age } from './format.js';
import { RemoteService } from './remote.js';

export interface Common { config?: string; json?: boolean; owner?: string; all?: boolean; quiet?: boolean }

// The owner rule is the config's stdio_owner rule, reused rather than restated.
const Owner = ConfigSchema.shape.server.removeDefault().shape.stdio_owner.removeDefault();

/**
 * Parses input with an operation's schema; issues name the CLI flag or
 * argument (flagFor maps schema keys to them), not the schema key.
 */
export function validate<S extends z.ZodTypeAny>(schema: S, input: unknown, flagFor: Record<string, string>): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const [key, ...rest] = i.path.map(String);
    const flag = (key !== undefined && flagFor[key]) || key || 'input';
    return `${[flag, ...rest].join(' ')}: ${i.message}`;
  });
  throw new InvalidArgumentError(lines.join('; '), undefined, { issues: r.error.issues });
}

export function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${flag} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** Opens the service for one call; Ctrl-C aborts the call (a second one kills the process). */
export async function withService<T>(flags: Common, fn: (svc: RemoteService, caller: Caller, signal: AbortSignal) => Promise<T>): Promise<T> {
  const config = loadConfig(flags.config);
  if (flags.owner !== undefined && !Owner.safeParse(flags.owner).success) {
    throw new InvalidArgumentError(`--owner ${JSON.stringify(flags.owner)}: 1 to 64 letters, digits, "_", ".", "@" or "-"`);
  }
  const owner = flags.owner ?? config.server.stdio_owner;
  const caller: Caller = { owner, admin: flags.all === true };
  // The daemon owns the VMs; the CLI is one of its clients (started here when none runs).
  const svc = await RemoteService.connect(config);
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn(svc, caller, abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await svc.close();
  }
}

export function common(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print the result as JSON')
    .option('--owner <owner>', 'act as this owner (default [server] stdio_owner, "local")')
    .option('--all', 'act as admin: see and act on every owner\'s workspaces')
    .option('-q, --quiet', 'no progress lines on stderr');
}

/** The lifetime as `ws info` and `ws lifetime` print it: one row per rule that is on. */
export function lifetimeRows(l: LifetimeInfo | undefined): Array<[string, string]> {
  if (!l) return [];
  return [
    ['ttl', l.ttl_minutes > 0 ? `${l.ttl_minutes} min${l.expires_at ? `, stops at ${l.expires_at}` : ''}` : 'none'],
    ['idle stop', l.idle_stop_minutes > 0 ? `${l.idle_stop_minutes} min${l.idle_stop_at ? `, at ${l.idle_stop_at} if idle` : ''}` : 'none'],
    ['retention', l.retention_minutes > 0 ? `${l.retention_minutes} min after a stop${l.destroy_at ? `, destroyed at ${l.destroy_at}` : ''}` : 'none'],
    ...(l.stopped_by ? [['stopped by', l.stopped_by] as [string, string]] : []),
  ];
}

export function infoLines(w: WorkspaceInfo): string {
  const rows: Array<[string, string]> = [
    ['name', w.name], ['id', w.workspace_id], ['state', w.state], ['image', w.image],
    ['vcpus', String(w.vcpus)], ['memory', `${w.memory_mb} MiB`],
    ['disk', `${w.disk_gb} GiB${w.disk_used_bytes == null ? '' : ` (${(w.disk_used_bytes / 2 ** 20).toFixed(1)} MiB used on the host)`}`],
    ['network', w.network.ip ?? 'none'], ['owner', w.owner], ['pid', w.pid == null ? '-' : String(w.pid)],
    ['snapshots', String(w.snapshot_count)], ['created', `${w.created_at} (${age(w.created_at)} ago)`],
  ];
  if (w.ssh) rows.push(['ssh', w.ssh.command ?? `user ${w.ssh.user}, key ${w.ssh.private_key_path} (forward a host port to guest port 22 first)`]);
  if (w.error) rows.push(['error', w.error]);
  rows.push(...lifetimeRows(w.lifetime));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(11)}${v}\n`).join('');
}

export const ref = (id: string) => validate(WorkspaceRef, { workspace_id: id }, { workspace_id: '<id>' });
