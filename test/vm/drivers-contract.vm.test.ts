// The driver contract (test/contract/drivers.ts) on QEMU and the real
// agent; the same suite runs on the fakes in test/unit/drivers-contract.test.ts.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/core/config.js';
import { Runtime } from '../../src/service/runtime.js';
import { driverContract } from '../contract/drivers.js';

let rt: Promise<Runtime> | undefined;
driverContract('QEMU', {
  rt: () => (rt ??= Runtime.open(loadConfig())),
  scratch: path.join(mkdtempSync(path.join(os.tmpdir(), 'islet-contract-')), 'scratch'),
  bootMs: 60_000,
});
