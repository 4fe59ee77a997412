#!/usr/bin/env node
// The test command: the Go agent's tests, then the TypeScript unit tests,
// then (unless --unit) the VM tests, which boot real VMs under TCG or KVM.
// VM files run one at a time: each boots VMs and TCG is CPU-bound.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const unitOnly = process.argv.includes('--unit');
const step = (name, cmd, args, opts = {}) => {
  process.stdout.write(`\n=== ${name}: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    process.stdout.write(`\n=== ${name} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
};

const goEnv = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' };
step('agent vet', 'go', ['vet', './...'], { cwd: 'agent', env: goEnv });
step('agent tests', 'go', ['test', '-count=1', './...'], { cwd: 'agent', env: goEnv });
step('egress vet', 'go', ['vet', './...'], { cwd: 'egress', env: goEnv });
step('egress tests', 'go', ['test', '-count=1', './...'], { cwd: 'egress', env: goEnv });
step('session-front vet', 'go', ['vet', './...'], { cwd: 'session-front', env: goEnv });
step('session-front tests', 'go', ['test', '-count=1', './...'], { cwd: 'session-front', env: goEnv });

const dirs = ['dist/test/unit'];
if (!unitOnly) dirs.push('dist/test/vm');
for (const d of dirs) if (!existsSync(d)) { console.error(`missing ${d}: run npm run build`); process.exit(1); }
// One kernel for the whole run (test/vm/factory.ts): the one VMs boot now, even if setup's
// background custom-kernel build finishes while the tests run.
if (!unitOnly && !process.env.ISLET_TEST_KERNEL) {
  const r = spawnSync(process.execPath, ['bin/islet.js', 'kernel', 'status', '--json'], { encoding: 'utf8' });
  let used;
  try { used = JSON.parse(r.stdout).used; } catch { /* no artifacts yet: the VM tests will say so */ }
  if (used === 'custom' || used === 'distro') {
    process.env.ISLET_TEST_KERNEL = used;
    process.stdout.write(`\n=== VM tests boot the ${used} kernel (ISLET_TEST_KERNEL)\n`);
  }
}
step('node tests', process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...dirs]);
