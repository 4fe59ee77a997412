// The 100-VM figure (issue 18) inside `npm run bench`: runs the stress tool
// (bench/stress.ts) as its own process, as a user would, and records what it
// printed. The baseline is the same number of creates one after another,
// estimated from the template-create median of this run's starts or pool
// section when there is one: what the parallel run saves over a queue.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Row } from './mcp.js';

const VMS = Number(process.env.BENCH_STRESS_VMS ?? 100);

/** Runs `stress.js --vms N`; resolves with its stdout, or rejects with its tail when it failed. */
function runStress(n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve('dist/bench/stress.js'), '--vms', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString('utf8'); process.stdout.write(c); });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`stress --vms ${n} exited ${code}: ${out.slice(-400)}`))));
  });
}

const num = (re: RegExp, s: string): number => {
  const m = re.exec(s);
  if (!m) throw new Error(`stress output lacks ${re}`);
  return Number(m[1]);
};

export async function benchStress(record: (r: Row) => void, templateCreateMs?: number): Promise<void> {
  const out = await runStress(VMS);
  const total = num(/checked in ([\d.]+) s/, out);
  const p50 = num(/first output: p50 ([\d.]+) s/, out);
  const pss = num(/= ([\d.]+) MiB per VM/, out);
  const serial = templateCreateMs !== undefined ? (templateCreateMs * VMS) / 1000 : undefined;
  record({ metric: `${VMS} VMs created, checked (echo), all answering`, value: total, unit: 's', baseline: serial, ratio: serial ? total / serial : undefined,
    note: `target <= 20 s on 2 cores; create -> first output p50 ${p50.toFixed(2)} s${serial ? '; baseline: this run\'s template create median x N, one after another' : ''}` });
  record({ metric: `idle VM PSS with ${VMS} VMs up`, value: pss, unit: 'MiB', note: 'QEMU PSS over all VMs / VMs; target <= 25 MiB' });
}
