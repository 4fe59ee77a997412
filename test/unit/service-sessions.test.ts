// Agent sessions on the fake drivers: the states (creating → ready, failed,
// stopped), the host-side clone streamed into the guest as a tar, the guest
// steps, ownership, and the rollback of a create that fails half-way. The
// repository is a real local bare repo (host git); OpenCode's health is a
// probe the test controls.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { IsletError } from '../../src/core/errors.js';
import type { ExecRequest } from '../../src/guest/agent.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { WorkspaceService as Svc } from '../../src/service/workspaces.js';
import { type FakeWorld, fakeWorld } from '../fixtures/fake-drivers.js';
import { twoBranchRepo } from '../fixtures/git-repo.js';

const alice = { owner: 'alice' };
const bob = { owner: 'bob' };
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;
const argvOf = (r: ExecRequest) => r.argv?.join(' ') ?? r.shell ?? '';

let w: FakeWorld;
let svc: WorkspaceService;
let repo: string;
/** What OpenCode's health endpoint answers, per password (= session id). */
const healthy = new Set<string>();
const probed: string[] = [];

before(async () => {
  w = await fakeWorld({ resources: { max_memory_mb: 2048 } });
  svc = await Svc.open(w.config, {
    runtime: w.deps,
    sessions: {
      probe: async (url, password) => { probed.push(url); return healthy.has(password); },
      probeEveryMs: 20, readyTimeoutMs: 5_000,
    },
  });
  repo = await twoBranchRepo(path.join(w.config.paths.transferDir, 'repos'));
});
after(async () => {
  await svc.close();
  await w.cleanup();
});

async function until<T>(fn: () => Promise<T | undefined>, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('not in time');
    await delay(20);
  }
}

/** The files of the tar the session streamed into the guest. */
function tarEntries(id: string): string[] {
  const files = (w.vmm.running()[0]!.guest.files ?? {}) as Record<string, { data: string }>;
  const f = files[`/var/tmp/islet-session-${id}.tar`];
  assert.ok(f, 'the repository went into the guest as a tar file');
  const tmp = path.join(mkdtempSync(path.join(os.tmpdir(), 'islet-tar-')), 'r.tar');
  writeFileSync(tmp, Buffer.from(f.data, 'base64'));
  const r = spawnSync('tar', ['-t', '--numeric-owner', '-v', '-f', tmp], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

describe('agent sessions', () => {
  test('create clones the branch on the host, streams it in, starts opencode@<id> as agent, forwards 4096; ready once healthy; delete leaves nothing', async () => {
    w.guest.execs.length = 0;
    const s = await svc.sessionCreate(alice, { repoUrl: repo, branch: 'feature' });
    assert.match(s.sessionId, /^ses-[a-z0-9]{20}$/);
    assert.equal(s.state, 'creating');
    assert.equal(s.password, s.sessionId);
    assert.equal(s.imageRef, 'agent-ready');
    assert.match(s.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    const ws = await svc.info(alice, { workspace_id: s.workspaceId! });
    assert.equal(ws.state, 'running');
    assert.equal(ws.memory_mb, 1024);
    assert.deepEqual(ws.network.forwards.map((f) => f.guest_port), [4096]);
    assert.equal(`http://127.0.0.1:${ws.network.forwards[0]!.host_port}`, s.url);

    const entries = tarEntries(s.sessionId);
    assert.ok(entries.some((l) => l.endsWith(' ./FEATURE.md')), 'the feature branch is checked out');
    assert.ok(entries.some((l) => l.endsWith(' ./MAIN.md')));
    assert.ok(entries.some((l) => / \.\/\.git\/HEAD$/.test(l)), 'with its history');
    assert.ok(entries.every((l) => l.includes(' 1000/1000 ')), 'owned by the agent user in the archive');

    const dir = `/home/agent/workspaces/${s.sessionId}`;
    const cmds = w.guest.execs.map(argvOf);
    const at = (want: string) => { const i = cmds.indexOf(want); assert.ok(i >= 0, `no "${want}" in ${cmds.join(' | ')}`); return i; };
    // One exec: the script is a constant, the directory, tar and owner its arguments.
    const checkout = cmds.findIndex((c) => c.endsWith(` islet-checkout ${dir} /var/tmp/islet-session-${s.sessionId}.tar 1000:1000`));
    assert.ok(checkout >= 0, `no checkout in ${cmds.join(' | ')}`);
    const script = w.guest.execs[checkout]!.argv![2]!;
    assert.equal(w.guest.execs[checkout]!.argv![0], 'sh');
    assert.match(script, /^mkdir -p "\$1"; tar --extract --file "\$2" --directory "\$1"; rm -f "\$2"; chown -R "\$3" "\$1"$/);
    assert.doesNotMatch(script, /ses-|\/home\/agent/, 'nothing of the session is spliced into the script');
    const start = at(`runuser -u agent -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user start --no-block opencode@${s.sessionId}.service`);
    assert.ok(checkout < start, 'extract and chown, then start');
    assert.ok(!w.guest.execs.some((r) => r.shell !== undefined), 'every guest step is an argv, never a shell string');
    assert.equal(existsSync(path.join(w.config.paths.dataDir, 'sessions', s.sessionId)), false, 'the host clone is removed once it is in the guest');

    // Not healthy yet: still creating, and probed through the forward.
    await until(async () => (probed.includes(s.url!) ? true : undefined));
    assert.equal((await svc.sessionGet(alice, { sessionId: s.sessionId })).state, 'creating');
    healthy.add(s.sessionId);
    const ready = await until(async () => { const g = await svc.sessionGet(alice, { sessionId: s.sessionId }); return g.state === 'ready' ? g : undefined; });
    assert.ok(ready.readyAt);
    assert.deepEqual((await svc.sessionList(alice)).map((x) => x.sessionId), [s.sessionId]);
    assert.deepEqual(await svc.sessionList(bob), [], 'another owner does not see it');
    await assert.rejects(svc.sessionGet(bob, { sessionId: s.sessionId }), coded('SESSION_NOT_FOUND'));
    await assert.rejects(svc.sessionDestroy(bob, { sessionId: s.sessionId }), coded('SESSION_NOT_FOUND'));

    w.guest.execs.length = 0;
    assert.deepEqual(await svc.sessionDestroy(alice, { sessionId: s.sessionId }), { sessionId: s.sessionId, deleted: true });
    assert.ok(w.guest.execs.map(argvOf).some((c) => c.startsWith(`runuser -u agent -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user stop opencode@${s.sessionId}.service`)));
    assert.deepEqual(await svc.list(alice), [], 'the workspace is gone');
    assert.equal(w.vmm.running().length, 0);
    await assert.rejects(svc.sessionGet(alice, { sessionId: s.sessionId }), coded('SESSION_NOT_FOUND'), 'and the row');
  });

  test('a create that fails in the guest is rolled back: no workspace, no VM, no disk; the session stays, failed, with the reason', async () => {
    w.guest.handler = (r) => (r.argv?.[3] === 'islet-checkout' ? { exitCode: 2, stderr: Buffer.from('tar: Cannot open: No space left on device\n') } : undefined);
    try {
      await assert.rejects(svc.sessionCreate(alice, { repoUrl: repo, branch: 'main' }), (e: unknown) => {
        assert.ok(e instanceof IsletError && e.code === 'GUEST_ERROR', String(e));
        assert.match(e.message, /extract the repository \(exit 2\): tar: Cannot open/);
        return true;
      });
    } finally {
      w.guest.handler = () => undefined;
    }
    assert.deepEqual(await svc.list(alice), []);
    assert.equal(w.vmm.running().length, 0);
    assert.deepEqual(readdirSync(path.join(w.config.paths.dataDir, 'disks')).filter((f) => f.startsWith('ws-')), []);
    const [s] = await svc.sessionList(alice);
    assert.equal(s?.state, 'failed');
    assert.equal(s?.workspaceId, null);
    assert.equal(s?.url, null);
    assert.match(s?.error ?? '', /extract the repository/);
    assert.deepEqual(readdirSync(path.join(w.config.paths.dataDir, 'sessions')), [], 'no host clone is left');
    await svc.sessionDestroy(alice, { sessionId: s!.sessionId });
    assert.deepEqual(await svc.sessionList(alice), []);
  });

  test('an unknown branch fails with REPO_CLONE_FAILED before any VM boots', async () => {
    const launches = w.vmm.running().length;
    await assert.rejects(svc.sessionCreate(alice, { repoUrl: repo, branch: 'nope' }), (e: unknown) => {
      assert.ok(e instanceof IsletError && e.code === 'REPO_CLONE_FAILED', String(e));
      assert.match(e.message, /has no branch "nope"/);
      return true;
    });
    assert.equal(w.vmm.running().length, launches);
    assert.deepEqual(await svc.list(alice), []);
    const [s] = await svc.sessionList(alice);
    assert.equal(s?.state, 'failed');
    await svc.sessionDestroy(alice, { sessionId: s!.sessionId });
  });

  test('URLs that are options, transport helpers or host paths outside transfer_dir are refused', async () => {
    for (const repoUrl of ['-uhelp', '--upload-pack=touch /tmp/x', 'ext::sh -c touch% /tmp/pwned', 'fd::3', 'relative/path']) {
      await assert.rejects(svc.sessionCreate(alice, { repoUrl, branch: 'main' }), coded('INVALID_ARGUMENT'), repoUrl);
    }
    for (const branch of ['-b', '--upload-pack=x', 'a..b', '.hidden', 'x.lock', 'a b']) {
      await assert.rejects(svc.sessionCreate(alice, { repoUrl: repo, branch }), coded('INVALID_ARGUMENT'), branch);
    }
    const outside = await twoBranchRepo(mkdtempSync(path.join(os.tmpdir(), 'islet-outside-')));
    await assert.rejects(svc.sessionCreate(alice, { repoUrl: outside, branch: 'main' }), coded('PATH_OUTSIDE_ALLOWED'));
    // A symlink inside transfer_dir that points outside is outside too.
    const { symlinkSync } = await import('node:fs');
    symlinkSync(outside, path.join(w.config.paths.transferDir, 'link.git'));
    await assert.rejects(svc.sessionCreate(alice, { repoUrl: path.join(w.config.paths.transferDir, 'link.git'), branch: 'main' }), coded('PATH_OUTSIDE_ALLOWED'));
    for (const s of await svc.sessionList(alice)) await svc.sessionDestroy(alice, { sessionId: s.sessionId });
  });

  test('a session whose workspace was destroyed behind its back reads as stopped', async () => {
    const s = await svc.sessionCreate(alice, { repoUrl: repo, branch: 'main' });
    await svc.destroy(alice, { workspace_id: s.workspaceId! });
    const g = await svc.sessionGet(alice, { sessionId: s.sessionId });
    assert.equal(g.state, 'stopped');
    assert.match(g.error ?? '', /workspace was destroyed/);
    await svc.sessionDestroy(alice, { sessionId: s.sessionId });
  });
});

describe('the ready deadline', () => {
  test('a session whose OpenCode never answers becomes failed, with the reason', async () => {
    const w2 = await fakeWorld({ resources: { max_memory_mb: 2048 } });
    const svc2 = await Svc.open(w2.config, { runtime: w2.deps, sessions: { probe: async () => false, probeEveryMs: 10, readyTimeoutMs: 300 } });
    try {
      const r = await twoBranchRepo(path.join(w2.config.paths.transferDir, 'r'));
      const s = await svc2.sessionCreate(alice, { repoUrl: r, branch: 'main' });
      const g = await until(async () => { const x = await svc2.sessionGet(alice, { sessionId: s.sessionId }); return x.state === 'failed' ? x : undefined; });
      assert.match(g.error ?? '', /did not answer \/global\/health within/);
      await svc2.sessionDestroy(alice, { sessionId: s.sessionId });
      assert.deepEqual(await svc2.list(alice), []);
    } finally {
      await svc2.close();
      await w2.cleanup();
    }
  });
});
