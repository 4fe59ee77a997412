// The daemon that a test's `islet serve` or `islet ws` started: the factory
// (factory.ts) stops it this way at the end, before the data dir goes; a
// test that kills it on purpose finds it by its pid.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export function stopDaemon(cfgFile: string, prefix: string[] = []): void {
  const argv = [process.execPath, path.resolve('bin/islet.js'), 'daemon', 'stop', '--config', cfgFile];
  const [cmd, ...args] = [...prefix, ...argv];
  spawnSync(cmd!, args, { timeout: 60_000, stdio: 'ignore' });
}

/** The pid of the daemon serving cfgFile, from its pid file. */
export function daemonPidFor(cfgFile: string): number | undefined {
  const r = spawnSync(process.execPath, [path.resolve('bin/islet.js'), 'daemon', 'status', '--json', '--config', cfgFile], { encoding: 'utf8', timeout: 30_000 });
  try {
    const pid = (JSON.parse(r.stdout) as { pid?: number }).pid;
    return typeof pid === 'number' ? pid : undefined;
  } catch {
    return undefined;
  }
}
