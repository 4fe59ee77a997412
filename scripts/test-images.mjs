#!/usr/bin/env node
// `npm run test:images [-- name...]`: builds and verifies every image of the
// catalog (or the named ones) through the CLI, then prints one line per image
// with its size, build time and verify result. Exit 1 if any build or check
// fails. Then the acceptance tests of heavy images (agent-ready: SSH with
// per-workspace keys, OpenCode on 4096, agent sessions with OpenCode), with ISLET_IMAGE_TESTS=1.
// Slow (full mmdebstrap per image, minutes of TCG): not part of `npm test`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const bin = path.resolve('bin/islet.js');
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const all = readdirSync('images').filter((n) => existsSync(path.join('images', n, 'recipe.json'))).sort();
const todo = names.length ? names : all;
const islet = (args) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });

const rows = [];
for (const name of todo) {
  process.stdout.write(`\n=== ${name}: build\n`);
  const b = islet(['image', 'build', name, '--json']);
  if (b.status !== 0) {
    rows.push([name, '-', '-', '-', `build failed (exit ${b.status})`]);
    continue;
  }
  const built = JSON.parse(b.stdout);
  process.stdout.write(`=== ${name}: verify\n`);
  const v = islet(['image', 'verify', name, '--no-build', '--json']);
  let result = `verify failed (exit ${v.status})`;
  try {
    const r = JSON.parse(v.stdout);
    for (const c of r.checks) process.stdout.write(`${c.ok ? '[PASS]' : '[FAIL]'} ${c.name}${c.ok ? '' : `: ${c.detail}`}\n`);
    result = `${r.checks.filter((c) => c.ok).length}/${r.checks.length} checks passed`;
  } catch { /* the error went to stderr */ }
  const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
  // The build time of the cached entry (what `islet image list` shows), also when this run reused it.
  const listed = JSON.parse(islet(['image', 'list', '--json']).stdout || '[]').find((x) => x.name === name);
  const ms = listed?.buildMs ?? built.ms;
  rows.push([name, mib(built.usedBytes), listed?.referenceMB ? `~${listed.referenceMB} MB` : '-', `${(ms / 1000).toFixed(1)} s${built.reused ? ' (cached)' : ''}`, result]);
}
// REFERENCE: agentkernel's size for the like image (src/images/catalog.ts REFERENCE_SIZES).
process.stdout.write('\nIMAGE  SIZE  REFERENCE  BUILD  VERIFY\n' + rows.map((r) => r.join('  ')).join('\n') + '\n');
let ok = rows.every((r) => /^(\d+)\/\1 checks passed$/.test(r[4]));

// Acceptance tests that need a heavy image: run here, after the image is built
// and verified, instead of in `npm test` (where they skip and say why).
const acceptance = [
  { image: 'agent-ready', file: 'dist/test/vm/agent-ready.vm.test.js' },
  { image: 'agent-ready', file: 'dist/test/vm/sessions-opencode.vm.test.js' },
];
for (const a of acceptance.filter((x) => todo.includes(x.image))) {
  const built = rows.find((r) => r[0] === a.image && r[1] !== '-');
  if (!built) {
    process.stdout.write(`\n=== ${a.image}: acceptance test skipped (the image did not build)\n`);
    continue;
  }
  process.stdout.write(`\n=== ${a.image}: acceptance test (${a.file})\n`);
  const t = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', a.file], {
    stdio: 'inherit', env: { ...process.env, ISLET_IMAGE_TESTS: '1' },
  });
  process.stdout.write(`=== ${a.image}: acceptance ${t.status === 0 ? 'passed' : `failed (exit ${t.status ?? t.signal})`}\n`);
  ok &&= t.status === 0;
}
process.exit(ok ? 0 : 1);
