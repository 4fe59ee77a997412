// Agent sessions against real VMs (issue 17): a local bare repository with
// two branches, sessions on each, the right branch checked out and owned by
// uid 1000, state ready from the health endpoint polled through the forward,
// listed, and deleted with nothing left. One session takes the cold path
// (its own data dir, session templates off: opencode@<id> started after the
// checkout), the other the template path (restored from the image's session
// template, where "OpenCode" already runs on loopback behind the front on
// 4096, which the session configures with its password).
//
// The image is session-standin (test/fixtures/images): the same session
// contract as agent-ready, but its `opencode serve` is a busybox httpd
// STAND-IN for OpenCode (OpenCode itself needs ~6 min to answer under TCG).
// Everything islet does is the real flow: host clone, tar streamed through
// the agent, extraction and chown in the guest, the units started as the
// agent user through its systemd manager, the session template build and
// restore, the front (islet-session-front, the real binary), the forward, the
// health polling. The real OpenCode is test/vm/sessions-opencode.vm.test.ts
// (npm run test:images).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { SessionInfo } from '../../src/service/sessions.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { twoBranchRepo } from '../fixtures/git-repo.js';
import { ensureStandinImage, STANDIN_IMAGE } from '../fixtures/session-standin.js';
import { type VmEnv, vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';

const shape = { resources: { max_memory_mb: 512 }, network: { mode: 'user' } } as const;
const coldEnv = vmEnv('sessions-cold', shape);
const env = vmEnv('sessions', shape);
const me = { owner: 'sessions' };
const USER = 'runuser -u agent -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user';

async function health(url: string, password: string): Promise<number> {
  const auth = Buffer.from(`opencode:${password}`).toString('base64');
  const res = await fetch(`${url}/global/health`, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(20_000) });
  await res.arrayBuffer();
  return res.status;
}

async function untilReady(svc: WorkspaceService, id: string, ms: number): Promise<SessionInfo> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await svc.sessionGet(me, { sessionId: id });
    if (s.state !== 'creating') return s;
    if (Date.now() > end) throw new Error(`session ${id} still creating after ${ms / 1000} s`);
    await delay(250);
  }
}

describe('agent sessions (stand-in for OpenCode)', { timeout: 30 * 60_000 }, () => {
  const svcs = new Map<VmEnv, WorkspaceService>();
  const repos = new Map<VmEnv, string>();
  const made: Array<{ s: SessionInfo; e: VmEnv }> = [];

  before(async () => {
    await ensureStandinImage(env.childEnv());
    for (const e of [coldEnv, env]) repos.set(e, await twoBranchRepo(path.join(e.config.paths.transferDir, 'repos')));
    const log = (m: string) => console.log(`# ${m}`);
    svcs.set(coldEnv, await coldEnv.open({ sessions: { template: false }, progress: log }));
    svcs.set(env, await env.open({ progress: log }));
  }, { timeout: 25 * 60_000 });

  for (const [pathName, branch] of [['cold', 'feature'], ['template', 'main']] as const) {
    test(`${pathName} path, a session on ${branch}: that branch checked out in /home/agent/workspaces/<id>, owned by uid 1000, ready through the forward`, async () => {
      const e = pathName === 'cold' ? coldEnv : env;
      const svc = svcs.get(e)!;
      if (pathName === 'template') {
        // Right before the create: the template's key follows the shared cache's current kernel, initramfs and
        // rootfs, which other processes sharing the cache may change (a new agent build gives a new initramfs).
        const tt = performance.now();
        const t = await svc.sessionPrepareTemplate(STANDIN_IMAGE);
        console.log(`# session template ${path.basename(t.dir)}: ${((performance.now() - tt) / 1000).toFixed(1)} s here (built in ${(t.builtMs / 1000).toFixed(1)} s)`);
      }
      const t0 = performance.now();
      const s = await svc.sessionCreate(me, { repoUrl: repos.get(e)!, branch, imageRef: STANDIN_IMAGE });
      const createMs = performance.now() - t0;
      made.push({ s, e });
      assert.equal(s.state, 'creating');
      assert.equal(s.password, s.sessionId);
      const ready = await untilReady(svc, s.sessionId, 180_000);
      assert.equal(ready.state, 'ready', ready.error ?? '');
      console.log(`# ${pathName} session on ${branch}: create call ${(createMs / 1000).toFixed(1)} s, ready ${((performance.now() - t0) / 1000).toFixed(1)} s after the call`);

      const dir = `/home/agent/workspaces/${s.sessionId}`;
      const sh = async (cmd: string) => {
        const r = await svc.exec(me, { workspace_id: s.workspaceId!, command: cmd });
        assert.equal(r.exit_code, 0, `${cmd}: ${r.stderr}`);
        return r.stdout.trim();
      };
      assert.equal(await sh(`cat ${dir}/.git/HEAD`), `ref: refs/heads/${branch}`);
      assert.equal(await sh(`cat ${dir}/MAIN.md`), 'on main');
      assert.equal(await sh(`test -e ${dir}/FEATURE.md && echo yes || echo no`), branch === 'feature' ? 'yes' : 'no');
      assert.equal(await sh(`stat -c '%u:%g' ${dir} ${dir}/MAIN.md ${dir}/.git/HEAD | sort -u`), '1000:1000');
      assert.equal(await sh(`busybox find ${dir} ! -user 1000 -o ! -group 1000 | wc -l`), '0', 'every file is the agent user\'s');
      assert.equal(await sh('ls /var/tmp | grep -c islet-session || true'), '0', 'the tar is gone from the guest');
      // Who serves 4096, run by the agent user's systemd manager either way.
      const units = pathName === 'cold' ? [`opencode@${s.sessionId}.service`] : ['islet-opencode-front.service', 'islet-opencode.service'];
      for (const u of units) {
        assert.equal(await sh(`${USER} is-active ${u}`), 'active', u);
        assert.equal(await sh(`stat -c %U /proc/$(${USER} show -p MainPID --value ${u})`), 'agent', u);
      }
      if (pathName === 'template') {
        assert.equal(await sh(`${USER} is-active opencode@${s.sessionId}.service || true`), 'inactive', 'no cold OpenCode besides');
        // The template's server listens on loopback only: the forward reaches the front, nothing else.
        const listening = (await sh('ss -ltnH | awk \'{print $4}\' | grep -E ":(4096|4097)$" | sort')).split('\n');
        assert.deepEqual(listening.filter((l) => l.endsWith(':4097')), ['127.0.0.1:4097'], listening.join(' '));
        assert.equal(listening.filter((l) => l.endsWith(':4096')).length, 1, listening.join(' '));
        // The front's config: readable by the agent user only through its own 0700 runtime directory.
        assert.equal(await sh(`stat -c '%a %U' /run/user/1000 /run/user/1000/islet-session`), '700 agent\n644 root');
        // The front is the template's process, started before OpenCode there, not one started for this session.
        const pid = async (u: string) => Number(await sh(`${USER} show -p MainPID --value ${u}`));
        assert.ok(await pid('islet-opencode-front.service') < await pid('islet-opencode.service'), 'the front was started in the template');
      }
      assert.equal(await health(ready.url!, s.password), 200);
      assert.equal(await health(ready.url!, 'wrong'), 401);
    });
  }

  test('another session\'s password is refused; each is listed by its service', async () => {
    const [a, b] = made;
    assert.ok(a && b);
    assert.equal(await health(a.s.url!, b.s.password), 401);
    assert.equal(await health(b.s.url!, a.s.password), 401);
    for (const { s, e } of made) {
      const listed = await svcs.get(e)!.sessionList(me);
      assert.deepEqual(listed.map((x) => [x.sessionId, x.state]), [[s.sessionId, 'ready']]);
      assert.deepEqual(await svcs.get(e)!.sessionList({ owner: 'someone-else' }), []);
    }
  });

  test('delete stops OpenCode and destroys the workspace: no VM, no disk, no forward, no row', async () => {
    for (const { s, e } of made) {
      const svc = svcs.get(e)!;
      await svc.sessionDestroy(me, { sessionId: s.sessionId });
      await assert.rejects(svc.sessionGet(me, { sessionId: s.sessionId }), /SESSION_NOT_FOUND|no session/);
      await assert.rejects(health(s.url!, s.password), 'nothing answers on the forward any more');
      assert.deepEqual(await svc.sessionList(me), []);
      assert.deepEqual(await svc.list(me), []);
      assert.deepEqual(qemuProcesses(e.config.paths.runDir), []);
      assert.deepEqual(readdirSync(path.join(e.config.paths.dataDir, 'disks')).filter((f) => f.startsWith('ws-')), []);
      const hostClones = path.join(e.config.paths.dataDir, 'sessions');
      assert.ok(!existsSync(hostClones) || readdirSync(hostClones).length === 0, 'no host clone left');
    }
  });
});
