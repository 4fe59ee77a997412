// `islet ws lifetime <id> [--ttl N] [--idle N] [--retention N]`: shows or
// changes when a workspace stops or is destroyed by itself (service/lifetimes.ts).
import { Command } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import { SetLifetimeInput } from '../../core/lifetime-schemas.js';
import { json } from './format.js';
import { Common, common, lifetimeRows, ref, validate, withService } from './ws-common.js';

/** A lifetime flag's value: whole minutes, 0 = never, "default" = back to the host default (null). */
export function minutesFlag(flag: string, v: string | undefined): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === 'default') return null;
  if (v === 'never') return 0;
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${flag} must be whole minutes, "never" (0) or "default", got ${JSON.stringify(v)}`);
  return Number(v);
}

export function registerWsLifetime(ws: Command): void {
  common(ws.command('lifetime').description('show or change when a workspace stops (TTL, idle) or is destroyed (retention) by itself'))
    .argument('<id>', 'workspace id or name')
    .option('--ttl <minutes>', 'stop it this many minutes from now and after each later start ("never" = 0, "default")')
    .option('--idle <minutes>', 'stop it after this many minutes with no exec, process output or client call ("never", "default")')
    .option('--retention <minutes>', 'destroy it this many minutes after it stopped ("never", "default")')
    .action(async (id: string, f: Common & { ttl?: string; idle?: string; retention?: string }) => {
      const change = { ttl_minutes: minutesFlag('--ttl', f.ttl), idle_stop_minutes: minutesFlag('--idle', f.idle), retention_minutes: minutesFlag('--retention', f.retention) };
      const l = Object.values(change).every((v) => v === undefined)
        ? await withService(f, async (svc, c) => {
          const w = await svc.info(c, ref(id));
          return { workspace_id: w.workspace_id, ...w.lifetime };
        })
        : await withService(f, (svc, c) => svc.setLifetime(c, validate(SetLifetimeInput, { workspace_id: id, ...change },
          { workspace_id: '<id>', ttl_minutes: '--ttl', idle_stop_minutes: '--idle', retention_minutes: '--retention' })));
      if (f.json) json(l);
      else process.stdout.write(lifetimeRows(l).map(([k, v]) => `${`${k}:`.padEnd(11)}${v}\n`).join(''));
    });
}
