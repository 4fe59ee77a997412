// The driver contract (test/contract/drivers.ts) on the fakes; the same
// suite runs on QEMU in test/vm/drivers-contract.vm.test.ts.
import path from 'node:path';
import { driverContract } from '../contract/drivers.js';
import { fakeRuntime, fakeWorld } from '../fixtures/fake-drivers.js';

const world = await fakeWorld();
const rt = fakeRuntime(world);
driverContract('fakes', { rt: () => rt, scratch: path.join(world.dir, 'scratch'), bootMs: 1_000 });
