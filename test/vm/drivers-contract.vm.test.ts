// The driver contract (test/contract/drivers.ts) on QEMU and the real
// agent; the same suite runs on the fakes in test/unit/drivers-contract.test.ts.
import path from 'node:path';
import { driverContract } from '../contract/drivers.js';
import { vmEnv } from './factory.js';

const env = vmEnv('contract');
driverContract('QEMU', { rt: env.rt, scratch: path.join(env.dir, 'scratch'), bootMs: 60_000 });
