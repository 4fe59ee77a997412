// Shared by the VM tests: one Runtime from the user's config (so the
// artifacts `npm run setup` built are used), a factory that records every
// Machine it boots and destroys them all at the end, and the console log of
// a VM attached to the output when a test fails.
import { after } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import { consoleTail, Machine } from '../../src/service/machine.js';
import { BootRequest, Runtime } from '../../src/service/runtime.js';

export interface VmSuite {
  rt: () => Promise<Runtime>;
  boot: (req?: BootRequest) => Promise<Machine>;
  /** Runs fn; on failure prints the console tail of each VM booted so far. */
  withEvidence: <T>(fn: () => Promise<T>) => Promise<T>;
}

export function vmSuite(): VmSuite {
  const machines: Machine[] = [];
  let runtime: Promise<Runtime> | undefined;
  const rt = () => (runtime ??= Runtime.open(loadConfig()));
  after(async () => {
    await Promise.all(machines.map((m) => m.destroy({ graceMs: 1_000 }).catch(() => undefined)));
  });
  return {
    rt,
    async boot(req = {}) {
      const m = await (await rt()).boot(req);
      machines.push(m);
      return m;
    },
    async withEvidence(fn) {
      try {
        return await fn();
      } catch (e) {
        for (const m of machines) process.stderr.write(`--- console of VM ${m.id} ---\n${await consoleTail(m.vm.paths.console, 40)}\n`);
        throw e;
      }
    },
  };
}
