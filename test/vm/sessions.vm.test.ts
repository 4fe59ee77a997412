// Agent sessions against real VMs (issue 17): a local bare repository with
// two branches, sessions on each, the right branch checked out and owned by
// uid 1000, state ready from the health endpoint polled through the forward,
// listed, and deleted with nothing left.
//
// The image is session-standin (test/fixtures/images): the same session
// contract as agent-ready, but its opencode@.service runs a busybox httpd
// STAND-IN for OpenCode (OpenCode itself needs ~6 min to answer under TCG).
// Everything islet does is the real flow: host clone, tar streamed through
// the agent, extraction and chown in the guest, the unit started as the agent
// user through its systemd manager, the forward, the health polling. The
// real OpenCode is test/vm/sessions-opencode.vm.test.ts (npm run test:images).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { SessionInfo } from '../../src/service/sessions.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { twoBranchRepo } from '../fixtures/git-repo.js';
import { ensureStandinImage, STANDIN_IMAGE } from '../fixtures/session-standin.js';
import { vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';

const env = vmEnv('sessions', { resources: { max_memory_mb: 512 }, network: { mode: 'user' } });
const me = { owner: 'sessions' };

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
    await delay(1_000);
  }
}

describe('agent sessions (stand-in for OpenCode)', { timeout: 30 * 60_000 }, () => {
  let svc: WorkspaceService;
  let repo: string;
  const made: SessionInfo[] = [];

  before(async () => {
    await ensureStandinImage(env.childEnv());
    repo = await twoBranchRepo(path.join(env.config.paths.transferDir, 'repos'));
    svc = await env.open();
  }, { timeout: 25 * 60_000 });

  for (const branch of ['feature', 'main']) {
    test(`a session on ${branch}: that branch checked out in /home/agent/workspaces/<id>, owned by uid 1000, ready through the forward`, async () => {
      const t0 = performance.now();
      const s = await svc.sessionCreate(me, { repoUrl: repo, branch, imageRef: STANDIN_IMAGE });
      const createMs = performance.now() - t0;
      made.push(s);
      assert.equal(s.state, 'creating');
      assert.equal(s.password, s.sessionId);
      const ready = await untilReady(svc, s.sessionId, 180_000);
      assert.equal(ready.state, 'ready', ready.error ?? '');
      console.log(`# session on ${branch}: create ${(createMs / 1000).toFixed(1)} s, ready ${((performance.now() - t0) / 1000).toFixed(1)} s after the call`);

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
      // The unit runs as the agent user, from the agent's systemd manager.
      const user = `runuser -u agent -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user`;
      assert.equal(await sh(`${user} is-active opencode@${s.sessionId}.service`), 'active');
      assert.equal(await sh(`stat -c %U /proc/$(${user} show -p MainPID --value opencode@${s.sessionId}.service)`), 'agent');
      assert.equal(await health(ready.url!, s.password), 200);
      assert.equal(await health(ready.url!, 'wrong'), 401);
    });
  }

  test('another session\'s password is refused; both are listed', async () => {
    const [a, b] = made;
    assert.ok(a && b);
    assert.equal(await health(a.url!, b.password), 401);
    assert.equal(await health(b.url!, a.password), 401);
    const listed = await svc.sessionList(me);
    assert.deepEqual(listed.map((x) => x.sessionId).sort(), [a.sessionId, b.sessionId].sort());
    assert.ok(listed.every((x) => x.state === 'ready'));
    assert.deepEqual(await svc.sessionList({ owner: 'someone-else' }), []);
  });

  test('delete stops OpenCode and destroys the workspace: no VM, no disk, no forward, no row', async () => {
    for (const s of made) {
      await svc.sessionDestroy(me, { sessionId: s.sessionId });
      await assert.rejects(svc.sessionGet(me, { sessionId: s.sessionId }), /SESSION_NOT_FOUND|no session/);
      await assert.rejects(health(s.url!, s.password), 'nothing answers on the forward any more');
    }
    assert.deepEqual(await svc.sessionList(me), []);
    assert.deepEqual(await svc.list(me), []);
    assert.deepEqual(qemuProcesses(env.config.paths.runDir), []);
    assert.deepEqual(readdirSync(path.join(env.config.paths.dataDir, 'disks')).filter((f) => f.startsWith('ws-')), []);
    const hostClones = path.join(env.config.paths.dataDir, 'sessions');
    assert.ok(!existsSync(hostClones) || readdirSync(hostClones).length === 0, 'no host clone left');
  });
});
