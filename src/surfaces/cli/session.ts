// `islet session create --repo URL --branch B [--image I] [--wait] | list | show <id> | rm <id>`:
// agent sessions (src/service/sessions.ts) through the daemon.
import { Command } from 'commander';
import { SessionCreateInput, SessionRef } from '../../core/session-schemas.js';
import type { SessionInfo } from '../../service/sessions.js';
import { age, json, table } from './format.js';
import { Common, common, int, validate, withService } from './ws-common.js';

function lines(s: SessionInfo): string {
  const rows: Array<[string, string]> = [
    ['session', s.sessionId], ['state', s.state], ['url', s.url ?? '-'], ['password', s.password], ['workspace', s.workspaceId ?? '-'],
    ['repo', `${s.repoUrl} (${s.branch})`], ['image', s.imageRef], ['created', `${s.createdAt} (${age(s.createdAt)} ago)`],
  ];
  if (s.readyAt) rows.push(['ready', s.readyAt]);
  if (s.ssh) rows.push(['ssh', s.ssh.command ?? `user ${s.ssh.user}, key ${s.ssh.private_key_path} (forward a host port to guest port 22 first)`]);
  if (s.error) rows.push(['error', s.error]);
  return rows.map(([k, v]) => `${`${k}:`.padEnd(11)}${v}\n`).join('');
}

const ref = (id: string) => validate(SessionRef, { sessionId: id }, { sessionId: '<id>' });

export function registerSession(program: Command): void {
  const s = program.command('session').description('agent sessions: OpenCode on a repository branch in its own workspace');
  common(s.command('create').description('create a session: a workspace with the repository at the branch and OpenCode starting'))
    .requiredOption('--repo <url>', 'repository: https://, ssh://, git:// URL, user@host:path, or a path inside [server] transfer_dir')
    .requiredOption('--branch <branch>', 'branch to check out')
    .option('--image <image>', 'image with the session contract (default agent-ready)')
    .option('--wait <seconds>', 'wait up to this long for state ready (or failed) before printing')
    .action(async (f: Common & { repo: string; branch: string; image?: string; wait?: string }) => {
      const input = validate(SessionCreateInput, { repoUrl: f.repo, branch: f.branch, imageRef: f.image }, { repoUrl: '--repo', branch: '--branch', imageRef: '--image' });
      const waitS = int('--wait', f.wait) ?? 0;
      const out = await withService(f, async (svc, c, signal) => {
        let x = await svc.sessionCreate(c, input, { signal });
        if (!f.quiet && !f.json) process.stderr.write(`session ${x.sessionId}: ${x.state}${waitS ? `; waiting up to ${waitS} s for OpenCode` : ''}\n`);
        const end = Date.now() + waitS * 1000;
        while (x.state === 'creating' && Date.now() < end && !signal.aborted) {
          await new Promise((r) => setTimeout(r, 2_000));
          x = await svc.sessionGet(c, { sessionId: x.sessionId });
        }
        return x;
      });
      if (f.json) json(out);
      else process.stdout.write(lines(out));
    });
  common(s.command('list').alias('ls').description('your sessions'))
    .action(async (f: Common) => {
      const all = await withService(f, (svc, c) => svc.sessionList(c));
      if (f.json) return json(all);
      if (!all.length) return void process.stdout.write('no sessions\n');
      process.stdout.write(table(['SESSION', 'STATE', 'URL', 'WORKSPACE', 'BRANCH', 'AGE'],
        all.map((x) => [x.sessionId, x.state, x.url ?? '-', x.workspaceId ?? '-', x.branch, age(x.createdAt)])));
    });
  common(s.command('show').description('one session, with its current state').argument('<id>', 'session id (ses-...)'))
    .action(async (id: string, f: Common) => {
      const x = await withService(f, (svc, c) => svc.sessionGet(c, ref(id)));
      if (f.json) json(x);
      else process.stdout.write(lines(x));
    });
  common(s.command('rm').alias('delete').description('stop OpenCode and destroy the session\'s workspace').argument('<id>', 'session id (ses-...)'))
    .action(async (id: string, f: Common) => {
      const x = await withService(f, (svc, c, signal) => svc.sessionDestroy(c, ref(id), { signal }));
      if (f.json) json(x);
      else if (!f.quiet) process.stdout.write(`deleted ${x.sessionId}\n`);
    });
}
