// The driver contract (test/contract/drivers.ts) on the fakes; the same
// suite runs on QEMU in test/vm/drivers-contract.vm.test.ts.
import path from 'node:path';
import { driverContract, PROCESS_COMMAND } from '../contract/drivers.js';
import { fakeRuntime, fakeWorld } from '../fixtures/fake-drivers.js';

const world = await fakeWorld();
// What a real guest's shell does with the contract's process command; every other command exits 0 with no output.
world.guest.handler = (req) => req.shell === PROCESS_COMMAND
  ? { stdout: Buffer.from(`got-${String(req.stdin ?? '').split('\n')[0]}\n`), exitCode: 3 }
  : undefined;
const rt = fakeRuntime(world);
driverContract('fakes', { rt: () => rt, scratch: path.join(world.dir, 'scratch'), bootMs: 1_000 });
