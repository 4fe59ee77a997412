// Template snapshots with real VMs: workspaces restored from one template are
// independent machines, a template whose inputs changed is rebuilt (never
// used), and a restored workspace's memory state still pauses and resumes.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';

// Two data dirs: the second boots a private copy of the kernel (kept in the first's dir).
const indep = vmEnv('tmpl');
const kernel = path.join(indep.dir, 'vmlinux');
const initrd = path.join(indep.dir, 'initrd');
const stale = vmEnv('tmpl-stale', { vm: { kernel_path: kernel, initrd_path: initrd } });
const cacheDir = indep.config.paths.cacheDir;
const caller = { owner: 'tmpl-test' };
const messages: string[] = [];
const progress = (s: string) => { messages.push(s); };
const since = (n: number) => messages.slice(n).join('\n');

let indepSvc: WorkspaceService | undefined;
const builtHere: string[] = [];
after(() => { for (const d of builtHere) rmSync(d, { recursive: true, force: true }); });

const run = async (svc: WorkspaceService, ws: string, command: string) => {
  const r = await svc.exec(caller, { workspace_id: ws, command });
  assert.equal(r.exit_code, 0, `${command}: ${r.stderr}`);
  return r.stdout;
};

/** The QEMU command line of a workspace's VM. */
const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

describe('template snapshots', { timeout: 900_000 }, () => {
  test('two workspaces restored from one template are independent machines', async () => {
    const svc = indepSvc = await indep.open({ progress });
    const n0 = messages.length;
    const a = await svc.create(caller, { name: 'tmpl-a' });
    const b = await svc.create(caller, { name: 'tmpl-b' });
    assert.match(since(n0), /workspace tmpl-a: restored from template/);
    assert.match(since(n0), /workspace tmpl-b: restored from template/);
    for (const w of [a, b]) {
      const argv = argvOf(w.pid!);
      const ram = argv[argv.indexOf('-object') + 1] ?? '';
      assert.match(ram, /^memory-backend-file,id=microvm\.ram,.*share=off$/, 'guest RAM is a private mapping of the template');
      assert.ok(ram.includes(`mem-path=${path.join(cacheDir, 'templates')}`), ram);
    }

    assert.equal(await run(svc, 'tmpl-a', 'hostname'), 'tmpl-a\n');
    assert.equal(await run(svc, 'tmpl-b', 'hostname'), 'tmpl-b\n');
    const ids = [await run(svc, 'tmpl-a', 'cat /etc/machine-id'), await run(svc, 'tmpl-b', 'cat /etc/machine-id')];
    assert.match(ids[0]!, /^[0-9a-f]{32}\n$/);
    assert.notEqual(ids[0], ids[1]);
    // The clock was set from the host, not left at the template's save time.
    const guestNow = Number(await run(svc, 'tmpl-b', 'date +%s'));
    assert.ok(Math.abs(guestNow - Date.now() / 1000) < 30, `guest clock ${guestNow}`);

    // Disk and memory are each workspace's own: a write (on disk and in tmpfs) in one is not in the other.
    await run(svc, 'tmpl-a', 'echo only-a > /root/mine && echo mem-a > /dev/shm/mine && sync');
    await run(svc, 'tmpl-b', 'echo only-b > /root/mine && sync');
    assert.equal(await run(svc, 'tmpl-a', 'cat /root/mine'), 'only-a\n');
    assert.equal(await run(svc, 'tmpl-b', 'cat /root/mine'), 'only-b\n');
    assert.equal(await run(svc, 'tmpl-b', 'cat /dev/shm/mine 2>/dev/null || echo none'), 'none\n');

    // A restored VM's memory state loads into an ordinary VM: pause and resume keep working.
    await svc.pause(caller, { workspace_id: 'tmpl-a' });
    await svc.resume(caller, { workspace_id: 'tmpl-a' });
    assert.equal(await run(svc, 'tmpl-a', 'cat /dev/shm/mine'), 'mem-a\n');
    // And it boots on its own disk after a stop, without the template.
    await svc.stop(caller, { workspace_id: 'tmpl-b' });
    await svc.start(caller, { workspace_id: 'tmpl-b' });
    assert.equal(await run(svc, 'tmpl-b', 'cat /root/mine; hostname'), 'only-b\ntmpl-b\n');
    for (const w of ['tmpl-a', 'tmpl-b']) await svc.destroy(caller, { workspace_id: w });
    await svc.close();
  });

  test('a template whose kernel changed is rebuilt, not used', async () => {
    // A private copy of the kernel stands in for a rebuilt one, so the shared cache's artifacts are not touched.
    // Its initramfs comes along: the distro and custom kernels each boot with their own.
    const art = await indepSvc!.rt.artifacts('base');
    copyFileSync(art.vmlinux, kernel);
    copyFileSync(art.initrd, initrd);
    const svc = await stale.open({ progress });
    const n0 = messages.length;
    const built = () => [...since(n0).matchAll(/building template (\S+)/g)].map((m) => m[1]!);
    await svc.create(caller, { name: 'st-1' });
    await svc.create(caller, { name: 'st-2' });
    assert.equal(built().length, 1, `one build for two creates: ${since(n0)}`);
    const first = path.join(cacheDir, 'templates', built()[0]!);
    builtHere.push(first);
    assert.ok(existsSync(first));

    const later = new Date(Date.now() + 60_000);
    utimesSync(kernel, later, later); // the kernel file is not the one the template was built from any more
    await svc.create(caller, { name: 'st-3' });
    assert.equal(built().length, 2, `the stale template was not used: ${since(n0)}`);
    const second = path.join(cacheDir, 'templates', built()[1]!);
    builtHere.push(second);
    assert.notEqual(second, first);
    assert.equal(existsSync(first), false, 'the stale template was pruned');
    assert.match(since(n0), /workspace st-3: restored from template/);
    assert.equal(await run(svc, 'st-3', 'hostname'), 'st-3\n');
  });
});
