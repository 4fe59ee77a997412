// `islet status`: what the state database says, read-only and without
// opening the service (src/service/state-reader.ts says why), so it is safe
// next to a live `islet serve`.
import { Command } from 'commander';
import { loadConfig } from '../../core/config.js';
import { type PoolStatusRow, readPool, readStatus, type StatusRow } from '../../service/state-reader.js';
import { age, json, mib, table } from './format.js';

export { readPool, readStatus, type PoolStatusRow, type StatusRow } from '../../service/state-reader.js';

export function poolTable(rows: readonly PoolStatusRow[], now = Date.now()): string {
  return table(
    ['POOL VM', 'STATE', 'IMAGE', 'VCPUS', 'MEM', 'DISK', 'INTERNET', 'SOURCE', 'AGE'],
    rows.map((r) => [
      r.id, r.pid_alive === false ? `${r.state}(no pid)` : r.state, r.image, String(r.vcpus), mib(r.memory_mb), `${r.disk_gb} GiB`,
      r.allow_internet ? 'yes' : 'no', r.source ?? '-', age(r.created_at, now),
    ]),
  );
}

export function statusTable(rows: readonly StatusRow[], now = Date.now()): string {
  return table(
    ['NAME', 'ID', 'STATE', 'IMAGE', 'IP', 'VCPUS', 'MEM', 'SNAPS', 'AGE', 'OWNER'],
    rows.map((r) => [
      r.name, r.workspace_id, r.pid_alive === false ? `${r.state}(no pid)` : r.state, r.image, r.ip ?? '-',
      String(r.vcpus), mib(r.memory_mb), String(r.snapshot_count), age(r.created_at, now), r.owner,
    ]),
  );
}

export function registerStatus(program: Command): void {
  program.command('status')
    .description('list every workspace recorded in the state database (read-only; safe while a server runs)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print an array of workspaces as JSON')
    .option('--pool', 'only the warm pool\'s unassigned VMs (with --json: an array of them)')
    .action((flags: { config?: string; json?: boolean; pool?: boolean }) => {
      const config = loadConfig(flags.config);
      const pool = readPool(config.paths.stateDb);
      if (flags.pool) {
        if (flags.json) return json(pool);
        process.stdout.write(pool.length ? poolTable(pool) : 'the warm pool is empty\n');
        return;
      }
      // In user mode each workspace has its own private network with the same guest address.
      const rows = readStatus(config.paths.stateDb, config.network.mode === 'user' ? '10.0.2.15' : config.network.mode === 'bridge' ? 'bridge' : null);
      if (flags.json) return json(rows ?? []);
      if (rows === undefined) {
        process.stdout.write(`no workspaces (state database ${config.paths.stateDb} does not exist yet)\n`);
      } else if (rows.length === 0) {
        process.stdout.write('no workspaces\n');
      } else {
        process.stdout.write(statusTable(rows));
      }
      if (pool.length) process.stdout.write(`\nwarm pool: ${pool.filter((p) => p.state === 'ready').length} ready, ${pool.filter((p) => p.state !== 'ready').length} booting\n${poolTable(pool)}`);
    });
}
