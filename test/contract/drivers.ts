// One contract for the VMM and agent drivers, run against the fakes
// (test/unit/drivers-contract.test.ts) and against QEMU with the real agent
// (test/vm/drivers-contract.vm.test.ts), so the fakes the service's unit
// tests rely on cannot drift from what the real drivers do. Each test boots
// through Runtime.boot, then speaks to Machine.vm (the Vm interface) and
// Machine.agent (the GuestAgent interface) directly.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { GuestError, IsletError } from '../../src/core/errors.js';
import type { Machine } from '../../src/service/machine.js';
import type { Runtime } from '../../src/service/runtime.js';

const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

/** The contract's process: reads a line, prints it back, exits 3 (the fakes' exec handler plays it: test/unit/drivers-contract.test.ts). */
export const PROCESS_COMMAND = 'read x; echo got-$x; exit 3';

export interface ContractEnv {
  rt(): Promise<Runtime>;
  /** A scratch directory for state and disk files. */
  scratch: string;
  /** How long one boot may take here. */
  bootMs: number;
}

export function driverContract(label: string, env: ContractEnv): void {
  describe(`driver contract: ${label}`, { timeout: 20 * env.bootMs }, () => {
    const machines: Machine[] = [];
    const boot = async (req: Parameters<Runtime['boot']>[0] = {}) => {
      const m = await (await env.rt()).boot({ net: { restrict: true }, ...req });
      machines.push(m);
      return m;
    };
    after(async () => {
      await Promise.all(machines.map((m) => m.destroy({ graceMs: 500 }).catch(() => undefined)));
      await rm(env.scratch, { recursive: true, force: true });
    });

    test('launch: a pid, a version, a live agent that runs commands and moves files', async () => {
      const m = await boot();
      assert.ok(m.vm.pid > 0);
      assert.match(m.vm.version, /^\d+\.\d+/);
      assert.equal(m.agent.isClosed, false);
      const r = await m.agent.exec({ argv: ['true'], timeoutMs: 30_000 });
      assert.equal(r.exitCode, 0);
      await m.agent.writeFile('/tmp/contract', Buffer.from('bytes\0here'));
      const back = await m.agent.readFile('/tmp/contract', { maxBytes: 1024 });
      assert.equal(back.data.toString('latin1'), 'bytes\0here');
      await assert.rejects(m.agent.readFile('/tmp/contract', { maxBytes: 3 }), coded('FILE_TOO_LARGE'));
      await assert.rejects(m.agent.readFile('/no/such/file', { maxBytes: 1024 }), coded('FILE_NOT_FOUND'));
      assert.equal(typeof (await m.agent.health()), 'object');
      await m.agent.syncClock();
    });

    test('streamed files: windows reassemble a file byte-exact; an over-limit or failing source leaves nothing', async () => {
      const m = await boot();
      const content = Buffer.alloc(300_000);
      for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 9)) & 0xff;
      const pieces = async function* () { for (let i = 0; i < content.length; i += 70_001) yield content.subarray(i, i + 70_001); };
      assert.equal((await m.agent.writeFileStream('/tmp/streamed', pieces(), { maxBytes: 1 << 20, mode: 0o640 })).bytes, content.length);
      const r = await m.agent.readFileStream('/tmp/streamed', { maxBytes: 1 << 20, window: 100_000 });
      assert.equal(r.size, content.length);
      assert.equal(r.mode, 0o640);
      const parts: Buffer[] = [];
      for await (const c of r.chunks) {
        assert.ok(c.length <= 100_000, 'a chunk is at most a window');
        parts.push(c);
      }
      assert.ok(Buffer.concat(parts).equals(content));
      await assert.rejects(m.agent.readFileStream('/tmp/streamed', { maxBytes: 1000 }), coded('FILE_TOO_LARGE'));
      await assert.rejects(m.agent.readFileStream('/no/such/file', { maxBytes: 1000 }), coded('FILE_NOT_FOUND'));
      await assert.rejects(m.agent.writeFileStream('/tmp/too-big', pieces(), { maxBytes: 1000 }), coded('FILE_TOO_LARGE'));
      const failing = async function* () { yield Buffer.from('partial'); throw new Error('source broke'); };
      await assert.rejects(m.agent.writeFileStream('/tmp/broken', failing(), { maxBytes: 1000 }), /source broke/);
      await assert.rejects(m.agent.readFile('/tmp/too-big', { maxBytes: 10 }), coded('FILE_NOT_FOUND'));
      await assert.rejects(m.agent.readFile('/tmp/broken', { maxBytes: 10 }), coded('FILE_NOT_FOUND'));
      assert.equal((await m.agent.exec({ argv: ['true'], timeoutMs: 30_000 })).exitCode, 0);
    });

    test('forwards: a second forward on one host port is PORT_IN_USE; removing an unknown one is false', async () => {
      const m = await boot({ net: { restrict: true } });
      const port = 20_000 + Math.floor(Math.random() * 20_000);
      await m.vm.addForward({ hostPort: port, guestPort: 80 });
      await assert.rejects(m.vm.addForward({ hostPort: port, guestPort: 81 }), coded('PORT_IN_USE'));
      assert.equal(await m.vm.removeForward(port), true);
      assert.equal(await m.vm.removeForward(port), false);
    });

    test('snapshotDisk: writes move to the new overlay, which is backed by the old disk', async () => {
      const m = await boot();
      const next = path.join(env.scratch, `next-${m.id}.qcow2`);
      await mkdir(env.scratch, { recursive: true });
      await m.vm.snapshotDisk(next);
      const info = await (await env.rt()).drivers.disks.overlayInfo(next);
      assert.equal(info.backingFile, m.disk);
      assert.equal((await m.agent.exec({ argv: ['true'], timeoutMs: 30_000 })).exitCode, 0, 'the guest runs on');
    });

    test('saveState + launch with loadState: the guest resumes with what it held', async () => {
      const rt = await env.rt();
      const m = await boot();
      await m.agent.writeFile('/tmp/kept', Buffer.from('still here'));
      const file = path.join(env.scratch, `state-${m.id}`);
      await mkdir(env.scratch, { recursive: true });
      await m.pauseToFile(file, 60_000);
      assert.ok((await stat(file)).size > 0);
      assert.equal(m.agent.isClosed, true);
      await m.vm.exited;
      const r = await boot({ id: m.id, disk: m.disk, createDisk: false, memoryFile: file, net: { restrict: true } });
      assert.equal((await r.agent.readFile('/tmp/kept', { maxBytes: 100 })).data.toString(), 'still here');
      void rt;
    });

    test('a file-backed RAM: the launch creates the file', async () => {
      await mkdir(env.scratch, { recursive: true });
      const ram = path.join(env.scratch, `ram-${Date.now()}`);
      const m = await boot({ ramFile: { path: ram, shared: true } });
      assert.equal(existsSync(ram), true);
      assert.equal((await m.agent.exec({ argv: ['true'], timeoutMs: 30_000 })).exitCode, 0);
    });

    test('pause/resume stop and restart the vCPUs; a failed save leaves the VM running', async () => {
      const m = await boot();
      await m.vm.pause();
      await m.vm.resume();
      assert.equal((await m.agent.exec({ argv: ['true'], timeoutMs: 30_000 })).exitCode, 0);
    });

    // A memory snapshot of a running workspace: pause, save, resume at once. QEMU refuses a `cont` sent before the
    // source has left finish-migrate; saveState must return only once a resume is accepted, and resume must fail
    // loudly if the vCPUs did not start. Several rounds, as the gap is a race that a loaded host widens.
    test('saveState then resume at once: the guest runs on and answers, round after round', async () => {
      const m = await boot();
      await mkdir(env.scratch, { recursive: true });
      for (let i = 0; i < 3; i++) {
        await m.vm.pause();
        await m.vm.saveState(path.join(env.scratch, `live-${m.id}-${i}`), { timeoutMs: 60_000 });
        await m.vm.resume();
        assert.equal((await m.agent.exec({ argv: ['true'], timeoutMs: 30_000 })).exitCode, 0, `round ${i}`);
      }
    });

    test('powerOff ends the VM; then its calls fail with VM_EXITED or GUEST_DISCONNECTED', async () => {
      const m = await boot();
      await m.agent.powerOff().catch(() => undefined); // the reply may race the exit
      const x = await m.vm.exited;
      assert.ok(x);
      await assert.rejects(m.vm.pause(), coded('VM_EXITED'));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(m.agent.isClosed, true);
      await assert.rejects(m.agent.exec({ argv: ['true'] }), (e: unknown) => e instanceof IsletError && /GUEST_DISCONNECTED|VM_EXITED/.test(e.code));
    });

    test('processes: start with stdin, list, write and close, wait, output by offset; a signal ends one; an unknown id is NOT_FOUND', async () => {
      const m = await boot();
      const p = m.agent.processes;
      assert.equal(p.supports('proc'), true);
      const a = await p.start({ shell: PROCESS_COMMAND, stdin: true });
      assert.ok(a.id > 0 && a.pid > 0);
      assert.ok((await p.list()).some((x) => x.id === a.id && x.running && x.stdin), 'listed, running, with stdin');
      assert.deepEqual((await p.output({ id: a.id, offset: 0 })).parts, []);
      assert.equal(await p.write(a.id, Buffer.from('hi\n'), true), 3);
      const w = await p.wait(a.id, 30_000);
      assert.deepEqual([w.running, w.exitCode, w.signal, w.outputBytes], [false, 3, null, 7]);
      const out = await p.output({ id: a.id, offset: 0 });
      assert.deepEqual(out.parts.map((x) => [x.stream, x.data.toString()]), [['stdout', 'got-hi\n']]);
      assert.deepEqual([out.start, out.next, out.dropped], [0, 7, 0]);
      const mid = await p.output({ id: a.id, offset: 4, maxBytes: 2 });
      assert.deepEqual([mid.parts.map((x) => x.data.toString()).join(''), mid.start, mid.next], ['hi', 4, 6]);
      await assert.rejects(p.output({ id: a.id, offset: 8 }), coded('INVALID_ARGUMENT'));
      const b = await p.start({ shell: 'read x', stdin: true });
      await p.signal(b.id, 'KILL');
      const k = await p.wait(b.id, 30_000);
      assert.deepEqual([k.running, k.exitCode, k.signal], [false, null, 'KILL']);
      await assert.rejects(p.wait(999_999, 0), (e: unknown) => e instanceof GuestError && e.guestCode === 'NOT_FOUND');
    });

    test('detach + reattach: a detached VM is found again and answers', async () => {
      const rt = await env.rt();
      const m = await boot({ detached: true });
      m.detach();
      const again = await rt.reattach({ id: m.id, disk: m.disk, image: 'base', vcpus: 1, memoryMb: 256 });
      assert.ok(again, 'reattached');
      machines.push(again);
      assert.equal(again.vm.pid, m.vm.pid);
      assert.equal((await again.agent.exec({ argv: ['true'], timeoutMs: 30_000 })).exitCode, 0);
      await again.destroy({ graceMs: 500 });
      assert.equal(existsSync(again.disk), false);
      assert.equal(await rt.reattach({ id: m.id, disk: m.disk, image: 'base', vcpus: 1, memoryMb: 256 }), undefined, 'gone once destroyed');
    });
  });
}
