// The QEMU processes a test's data dir owns, found from /proc by their argv
// (islet names them islet-ws-<id> and puts their pidfile under the run dir):
// what crash tests count to prove nothing is orphaned or duplicated.
import { readdirSync, readFileSync } from 'node:fs';

export interface QemuProcess { id: string; pid: number }

export function qemuProcesses(runDir: string): QemuProcess[] {
  const out: QemuProcess[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let argv: string[];
    try { argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    const name = argv[argv.indexOf('-name') + 1] ?? '';
    const pidfile = argv[argv.indexOf('-pidfile') + 1] ?? '';
    if (name.startsWith('islet-ws-') && pidfile.startsWith(runDir)) out.push({ id: name.slice(6), pid: Number(d) });
  }
  return out;
}

/** The processes running `islet daemon run` on this config file (the data dir's daemon, however it was started). */
export function daemonProcesses(cfgFile: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let argv: string[];
    try { argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    if (argv.includes('daemon') && argv.includes('run') && argv.includes(cfgFile)) out.push(Number(d));
  }
  return out;
}
