// VM lifecycle against real QEMU: a stop leaves nothing behind, and a VM
// that dies mid-command gives the caller a clean, coded error.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import { vmSuite } from './harness.js';

const vm = vmSuite();
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

describe('VM lifecycle', { timeout: 600_000 }, () => {
  test('destroy leaves no QEMU process, socket, log or disk behind', () => vm.withEvidence(async () => {
    const m = await vm.boot();
    const { pid } = m.vm;
    const files = [m.vm.paths.agent, m.vm.paths.qmp, m.vm.paths.console, m.disk];
    assert.ok(alive(pid));
    for (const f of files) assert.ok(existsSync(f), `${f} should exist while the VM runs`);
    await m.destroy();
    const exit = await m.vm.exited;
    // The agent powered the guest off: QEMU exited by itself (-no-reboot).
    assert.equal(exit.code, 0, `QEMU exit ${JSON.stringify(exit)}`);
    assert.equal(alive(pid), false);
    for (const f of [...files, m.dir]) assert.equal(existsSync(f), false, `${f} left behind`);
    await m.destroy(); // idempotent
  }));

  test('a VM that dies mid-command fails the command with a coded error', () => vm.withEvidence(async () => {
    const m = await vm.boot();
    const running = m.exec({ argv: ['sleep', '300'] }, { onStarted: () => m.vm.kill() });
    const t0 = Date.now();
    await assert.rejects(running, (e: unknown) => e instanceof IsletError && e.code === 'GUEST_DISCONNECTED');
    assert.ok(Date.now() - t0 < 10_000, 'the failure should be prompt, not a timeout');
    await m.vm.exited;
    await assert.rejects(m.exec({ argv: ['true'] }), (e: unknown) => e instanceof IsletError && e.code === 'GUEST_DISCONNECTED');
    await m.destroy();
    assert.equal(existsSync(m.dir), false);
  }));
});
