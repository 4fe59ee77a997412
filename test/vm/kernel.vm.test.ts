// The custom kernel (`islet kernel build`, docs/kernel.md) against one real
// VM through the WorkspaceService with [vm] kernel = "custom": it is the
// kernel that booted (release -islet, no module support), and exec, files,
// root filesystem growth and user-mode networking all work on it. Skipped,
// with the reason printed, when no custom kernel has been built: the build
// takes tens of minutes and `npm run setup` runs it in the background.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { chooseKernel } from '../../src/images/custom-kernel.js';
import { findArtifacts } from '../../src/images/index.js';
import type { WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';

const env = vmEnv('kernel', { vm: { kernel: 'custom' } });
const config = env.config;
const caller = { owner: 'kernel-test' };

async function skipReason(): Promise<string | false> {
  try {
    const c = await chooseKernel(config, (await findArtifacts(config)).agent?.key);
    return c.kind === 'custom' ? false : c.reason;
  } catch (e) {
    return `${(e as Error).message}; run \`islet kernel build\` first`;
  }
}
const skip = await skipReason();
if (skip) process.stdout.write(`# kernel.vm.test: skipped: ${skip}\n`);

describe('custom kernel', { timeout: 600_000, skip }, () => {
  let svc: WorkspaceService;
  let ws: WorkspaceInfo;
  const sh = async (command: string) => {
    const r = await svc.exec(caller, { workspace_id: ws.workspace_id, command, timeout_ms: 30_000 });
    assert.equal(r.exit_code, 0, `${command}: ${r.stderr}`);
    return r.stdout.trim();
  };

  before(async () => {
    svc = await env.open();
    ws = await svc.create(caller, { name: 'kernel', disk_gb: 3, allow_internet: true });
  }, { timeout: 300_000 });

  test('the VM runs the custom kernel: release -islet, no module support', async () => {
    const want = (await chooseKernel(config, (await findArtifacts(config)).agent?.key)).custom?.release;
    assert.equal(await sh('uname -r'), want);
    assert.match(want ?? '', /-islet$/);
    // CONFIG_MODULES=n: the kernel has no /proc/modules at all.
    assert.equal(await sh('test -e /proc/modules && echo yes || echo no'), 'no');
  });

  test('exec and file write/read', async () => {
    assert.equal(await sh('echo hello from $(uname -s)'), 'hello from Linux');
    const content = `custom kernel ${Date.now()}\n`;
    await svc.fileWrite(caller, { workspace_id: ws.workspace_id, path: '/tmp/k/probe.txt', content });
    assert.equal((await svc.fileRead(caller, { workspace_id: ws.workspace_id, path: '/tmp/k/probe.txt' })).content, content);
    assert.equal(await sh('cat /tmp/k/probe.txt'), content.trim());
  });

  test('the root filesystem was grown online to the 3 GiB disk (ext4 resize)', async () => {
    const mb = Number(await sh("df -B1M / | awk 'NR==2{print $2}'"));
    assert.ok(mb > 2800 && mb <= 3072, `root filesystem is ${mb} MiB, expected ~3 GiB`);
  });

  test('virtio-net with user-mode networking: eth0 is configured and the egress proxy answers (refusing the host)', async () => {
    assert.match(await sh('busybox ifconfig eth0'), /inet addr:10\.0\.2\.15 /);
    // The only way out of a user-mode VM is islet's proxy (a guestfwd); its 403 for the host proves the path works on this kernel.
    assert.match(await sh('busybox wget -q -O - http://10.0.2.2:9/ 2>&1; true'), /403 Forbidden/);
  });
});
