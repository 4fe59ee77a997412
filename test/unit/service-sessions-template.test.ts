// Agent sessions from a session template, on the fake drivers: the template
// is built once with OpenCode started on loopback without a password and the
// front put in the guest and started there, unconfigured; a session restored
// from it starts no program of its own but writes the front's config (its
// password and directory, in a file, not argv); without a template a session starts OpenCode cold and the
// template is built in the background.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { ExecRequest } from '../../src/guest/agent.js';
import { FRONT_IN_GUEST, SESSION_CONFIG } from '../../src/service/session-template.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { WorkspaceService as Svc } from '../../src/service/workspaces.js';
import { type FakeWorld, fakeWorld } from '../fixtures/fake-drivers.js';
import { twoBranchRepo } from '../fixtures/git-repo.js';

const alice = { owner: 'alice' };
const argvOf = (r: ExecRequest) => r.argv?.join(' ') ?? r.shell ?? '';
const AS_AGENT = 'runuser -u agent -- env XDG_RUNTIME_DIR=/run/user/1000';
let w: FakeWorld;
let svc: WorkspaceService;
let repo: string;
const healthy = new Set<string>();
const FRONT_BYTES = Buffer.from('\x7fELF a stand-in front binary');

before(async () => {
  w = await fakeWorld({ resources: { max_memory_mb: 2048 }, pool: { template: true } });
  const front = path.join(w.dir, 'front');
  await writeFile(front, FRONT_BYTES);
  svc = await Svc.open(w.config, {
    runtime: w.deps,
    sessions: { front: async () => ({ path: front, key: 'front-1' }), probe: async (_u, pw) => healthy.has(pw), probeEveryMs: 20, readyTimeoutMs: 5_000 },
  });
  repo = await twoBranchRepo(path.join(w.config.paths.transferDir, 'repos'));
});
after(async () => {
  await svc.close();
  await w.cleanup();
});

/** The session template's VM: the one the front was written into at its build. */
const hasFront = (v: FakeWorld['vmm']['vms'][number]) => v.spec.hostname === 'islet-template' && FRONT_IN_GUEST in ((v.guest.files ?? {}) as object);

async function ready(id: string): Promise<void> {
  healthy.add(id);
  for (let i = 0; i < 250; i++) {
    if ((await svc.sessionGet(alice, { sessionId: id })).state === 'ready') return;
    await delay(20);
  }
  assert.fail(`session ${id} never became ready`);
}

test('without a session template: OpenCode starts cold, and the template is built in the background', async () => {
  w.guest.execs.length = 0;
  const s = await svc.sessionCreate(alice, { repoUrl: repo, branch: 'main' });
  assert.ok(w.guest.execs.map(argvOf).includes(`${AS_AGENT} systemctl --user start --no-block opencode@${s.sessionId}.service`), 'cold: opencode@<id>');
  const t = await svc.sessionPrepareTemplate(); // joins the background build
  assert.match(path.basename(t.dir), /^agent-ready-opencode-/);
  assert.equal(w.vmm.vms.filter(hasFront).length, 1, 'one session template build');
  await ready(s.sessionId);
  await svc.sessionDestroy(alice, { sessionId: s.sessionId });
});

test('the template: the front in the guest and started unconfigured, OpenCode started once on loopback without a password, asked until it answers', async () => {
  const tvm = w.vmm.vms.find(hasFront)!;
  assert.equal(tvm.spec.memoryMb, 1024, 'the session shape');
  const files = (tvm.guest.files ?? {}) as Record<string, { data: string; mode: number }>;
  assert.equal(Buffer.from(files[FRONT_IN_GUEST]!.data, 'base64').toString(), FRONT_BYTES.toString());
  assert.equal(files[FRONT_IN_GUEST]!.mode, 0o755);
  const cmds = w.guest.execs.map(argvOf);
  const serve = cmds.find((c) => c.includes('systemd-run') && c.includes('opencode serve'));
  assert.ok(serve, cmds.join(' | '));
  assert.match(serve, /--port 4097 --hostname 127\.0\.0\.1$/, 'loopback only');
  assert.doesNotMatch(serve, /PASSWORD/, 'no password: the front checks it');
  assert.ok(cmds.indexOf(serve) < cmds.findIndex((c) => c.includes(`${FRONT_IN_GUEST} -probe http://127.0.0.1:4097/global/health`)), 'started, then asked');
  assert.ok(cmds.some((c) => c.includes('-probe http://127.0.0.1:4097/path') && c.endsWith('-probe-directory /home/agent/workspaces')), 'a directory served once');
  const front = cmds.find((c) => c.includes(`${FRONT_IN_GUEST} -listen 0.0.0.0:4096`));
  assert.ok(front?.startsWith(`${AS_AGENT} systemd-run --user --quiet --unit=islet-opencode-front.service`), cmds.join(' | '));
  assert.ok(front);
  assert.ok(front.endsWith(`-upstream http://127.0.0.1:4097 -config ${SESSION_CONFIG}`), front);
  assert.ok(cmds.indexOf(front) < cmds.indexOf(serve), 'the front starts while OpenCode loads');
  assert.ok(!(SESSION_CONFIG in files), 'no session config in the template');
});

test('with the template: the session is restored, starts no OpenCode, and its front gets its password and directory', async () => {
  w.guest.execs.length = 0;
  const launched = w.vmm.vms.length;
  const s = await svc.sessionCreate(alice, { repoUrl: repo, branch: 'feature' });
  const vm = w.vmm.vms[launched]!;
  assert.equal(vm.spec.incoming, true, 'restored from the template, not booted');
  assert.equal(vm.spec.ramFile?.shared, false);
  const cmds = w.guest.execs.map(argvOf);
  assert.ok(!cmds.some((c) => c.includes('opencode@')), `no cold OpenCode: ${cmds.join(' | ')}`);
  const dir = `/home/agent/workspaces/${s.sessionId}`;
  const files = (vm.guest.files ?? {}) as Record<string, { data: string; mode: number }>;
  assert.equal(Buffer.from(files[SESSION_CONFIG]!.data, 'base64').toString(), `${s.sessionId}\n${dir}\n`, 'the password, then the directory');
  assert.equal(files[SESSION_CONFIG]!.mode, 0o644, 'readable by the front (the agent user), in that user\'s 0700 runtime directory');
  assert.ok(!cmds.some((c) => c.includes(FRONT_IN_GUEST) || c.includes('systemd-run')), `the template's front is not started again: ${cmds.join(' | ')}`);
  assert.ok(cmds.some((c) => c.endsWith(` islet-checkout ${dir} /var/tmp/islet-session-${s.sessionId}.tar 1000:1000`)), 'the checkout is in place when the create returns');
  assert.equal((await svc.sessionGet(alice, { sessionId: s.sessionId })).state, 'creating', 'ready only once it answers');
  await ready(s.sessionId);
  w.guest.execs.length = 0;
  await svc.sessionDestroy(alice, { sessionId: s.sessionId });
  assert.ok(w.guest.execs.map(argvOf).some((c) => c.startsWith(`${AS_AGENT} systemctl --user stop`) && c.includes('islet-opencode-front.service')));
  assert.deepEqual(await svc.list(alice), []);
});
