// Telling our QEMU processes from others by pid: reconcile and the orphan
// sweep kill only what this check accepts.
import { readFileSync } from 'node:fs';

/** A pid file can outlive its process and the pid be reused: check the name. */
export function isQemuOf(pid: number, id: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('-name');
    return i >= 0 && argv[i + 1] === `islet-${id}`;
  } catch {
    return false;
  }
}
