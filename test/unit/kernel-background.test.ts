// setup's background custom-kernel build (src/images/kernel-background.ts):
// when it starts and when not, and that the started process is a real,
// detached `islet kernel build` on the same config, found again by `status`.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import { pidAlive } from '../../src/host/pid.js';
import { customKernelDir } from '../../src/images/custom-kernel.js';
import {
  type BackgroundFacts, MIN_FREE_BYTES, planBackgroundBuild, runningBackgroundBuild, startBackgroundKernelBuild,
} from '../../src/images/kernel-background.js';

const facts = (f: Partial<BackgroundFacts> = {}): BackgroundFacts => ({
  setting: 'auto', kernelPath: false, build: 'background', missing: [], canInstall: false, installPackages: true, freeBytes: 100 * 1024 ** 3, ...f,
});

test('a fresh host with the packages (or root to install them) starts the build; every reason not to is said', () => {
  assert.deepEqual(planBackgroundBuild(facts()), { start: true, why: 'no custom kernel is built yet' });
  assert.equal(planBackgroundBuild(facts({ setting: 'custom' })).start, true);
  assert.equal(planBackgroundBuild(facts({ missing: ['gcc', 'bc'], canInstall: true })).start, true);

  const no = (f: Partial<BackgroundFacts>, re: RegExp) => {
    const p = planBackgroundBuild(facts(f));
    assert.equal(p.start, false, JSON.stringify(f));
    assert.match(p.why, re);
  };
  no({ setting: 'distro' }, /kernel = "distro"/);
  no({ kernelPath: true }, /kernel_path/);
  no({ build: 'off' }, /kernel_build = "off"/);
  no({ runningPid: 4242 }, /already running \(pid 4242\)/);
  no({ current: { release: '6.1.192-islet', changed: [] } }, /6\.1\.192-islet is built and current/);
  no({ missing: ['gcc', 'bc'] }, /needs host packages: gcc bc \(as root: apt-get install gcc bc/);
  no({ missing: ['gcc'], canInstall: true, installPackages: false }, /needs host packages: gcc/);
  no({ freeBytes: MIN_FREE_BYTES - 1 }, /GiB free; the build needs 4 GiB/);
  // A fragment edited, or the source package upgraded, since the build: rebuild, naming what changed.
  assert.deepEqual(planBackgroundBuild(facts({ current: { release: 'r', changed: ['CONFIG_PCI', 'linux-source-6.1 6.1.192-3 → 6.1.193-1'] } })),
    { start: true, why: 'its inputs changed since custom r was built (CONFIG_PCI, linux-source-6.1 6.1.192-3 → 6.1.193-1)' });
});

test('a recorded pid counts as a running build only while it is `islet kernel build`', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'islet-kbg-'));
  try {
    const cfgFile = path.join(dir, 'islet.toml');
    await writeFile(cfgFile, `[storage]\ndata_dir = "${dir}"\n`);
    const c = loadConfig(cfgFile);
    await mkdir(customKernelDir(c), { recursive: true });
    const state = path.join(customKernelDir(c), 'background.json');
    // This test process is alive but is not a kernel build (a reused pid): not running.
    await writeFile(state, JSON.stringify({ pid: process.pid, startedAt: 'x', log: '/nonexistent' }));
    assert.equal(await runningBackgroundBuild(c), undefined);
    await writeFile(state, JSON.stringify({ pid: 999_999_999, startedAt: 'x', log: '/nonexistent' }));
    assert.equal(await runningBackgroundBuild(c), undefined);
    await writeFile(state, 'not json');
    assert.equal(await runningBackgroundBuild(c), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the build starts detached on the same config, is found by status, and a second start does not start another', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'islet-kbg-'));
  let pid: number | undefined;
  try {
    const cfgFile = path.join(dir, 'islet.toml');
    await writeFile(cfgFile, `[storage]\ndata_dir = "${dir}"\n`);
    const c = loadConfig(cfgFile);
    const first = await startBackgroundKernelBuild(c, { installPackages: false });
    if (!first.started && /needs host packages/.test(first.why)) return t.skip(first.why);
    assert.equal(first.started, true, first.why);
    pid = first.pid!;
    assert.equal(first.why, 'no custom kernel is built yet');
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    assert.deepEqual(cmdline.slice(-4, -1), ['build', '--config', cfgFile]);
    assert.equal(cmdline.at(-5), 'kernel');
    // Detached: its own process group (a terminal's Ctrl-C to setup does not reach it).
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    assert.equal(Number(stat[2]), pid, 'the build leads its own process group');

    const running = await runningBackgroundBuild(c);
    assert.equal(running?.pid, pid);
    assert.equal(running?.log, path.join(customKernelDir(c), 'build.log'));
    const second = await startBackgroundKernelBuild(c, { installPackages: false });
    assert.equal(second.started, false);
    assert.match(second.why, new RegExp(`already running \\(pid ${pid}\\)`));
    // Its progress lines land in the log.
    for (let i = 0; i < 100 && !(await readFile(running!.log, 'utf8')).trim(); i++) await delay(100);
    assert.match(await readFile(running!.log, 'utf8'), /^\[ *\d+\.\ds\] (agent|kernel build)/m);
  } finally {
    if (pid && pidAlive(pid)) process.kill(-pid, 'SIGKILL');
    for (let i = 0; i < 50 && pid && pidAlive(pid); i++) await delay(100);
    await rm(dir, { recursive: true, force: true });
  }
});
