// The older VM test helper, kept for the files written against it: a thin
// layer over the factory (factory.ts), which now does the recording,
// evidence on failure and cleanup. New VM tests use vmEnv directly.
import type { Machine } from '../../src/service/machine.js';
import type { BootRequest, Runtime } from '../../src/service/runtime.js';
import { vmEnv } from './factory.js';

export interface VmSuite {
  rt: () => Promise<Runtime>;
  boot: (req?: BootRequest) => Promise<Machine>;
  /** Runs fn. The factory prints the evidence of a failed test itself; kept so existing tests read the same. */
  withEvidence: <T>(fn: () => Promise<T>) => Promise<T>;
}

export function vmSuite(name = 'suite'): VmSuite {
  const env = vmEnv(name);
  return { rt: env.rt, boot: env.boot, withEvidence: (fn) => fn() };
}
