// The session template (docs/sessions.md, "Ready in seconds"): a template of
// the session image in which OpenCode has already started once and answered
// /global/health. Under TCG OpenCode's Bun binary takes minutes to load its
// bundle (371 s measured); a session restored from this template finds it
// loaded, and is ready once islet-session-front answers for it.
//
// OpenCode reads its password (OPENCODE_SERVER_PASSWORD) once, when it starts,
// and takes its default directory from its cwd: neither can be a session's in
// a process started before the session existed. So the template's OpenCode
// listens on loopback only, without a password, behind the front
// (session-front/) on port 4096: it refuses any request without the session's
// password and names the session's checkout as OpenCode's directory
// (x-opencode-directory, read per request) unless the client named one. The
// front starts here too, before any session exists (a Go start in a fresh VM
// costs seconds under TCG): it answers 503 until a session writes its
// password and directory to SESSION_CONFIG after the restore.
import { readFile } from 'node:fs/promises';
import { GuestStepError, firstLine } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { SessionFront } from '../images/session-front-build.js';
import type { Machine } from './machine.js';
import type { TemplateWarmup } from './templates.js';

/** Where the template puts the front (root-owned, on the template's disk, so every restored session has it). */
export const FRONT_IN_GUEST = '/usr/local/libexec/islet/islet-session-front';
/** OpenCode's port inside a template-path session: loopback only, behind the front on 4096. */
export const OPENCODE_LOOPBACK_PORT = 4097;
/** The agent user's transient units (systemd-run --user): OpenCode and its front, both started in the template. */
export const WARM_UNIT = 'islet-opencode.service';
export const FRONT_UNIT = 'islet-opencode-front.service';
/**
 * The front's config, written by each session after the restore: its password, then its directory, one a line.
 * In the agent user's runtime directory (tmpfs, 0700 the user's): never on the template's disk, and never in its
 * memory either, as no template writes it.
 */
export const SESSION_CONFIG = '/run/user/1000/islet-session';
/** Bumped when the steps below change: the template key changes with it (as with the front's sources, front.key). */
const STEPS = 2;
const AGENT_UID = 1000;
/** Where the session's forward reaches: the front's port (OpenCode's own in opencode@.service). */
const SESSION_PORT = 4096;
const WORKSPACES_DIR = '/home/agent/workspaces';
/** The opencode@.service's program (images/agent-ready/recipe.json). */
const OPENCODE = '/home/agent/.local/bin/opencode';
/** As long as a cold session may take to answer: the template's OpenCode loads just as slowly. */
const WARM_TIMEOUT_MS = 15 * 60_000;
const PROBE_SLICE_S = 60;

/** As the agent user, talking to its systemd user manager (linger keeps it running). */
export const asAgent = (): string[] => ['runuser', '-u', 'agent', '--', 'env', `XDG_RUNTIME_DIR=/run/user/${AGENT_UID}`];

export function sessionWarmup(front: SessionFront, progress: Progress): TemplateWarmup {
  return { name: 'opencode', key: `${STEPS}:${front.key}`, run: (m, signal) => warmUp(m, front, progress, signal) };
}

async function step(m: Machine, argv: string[], what: string, signal?: AbortSignal, timeoutMs = 120_000): Promise<void> {
  const r = await m.exec({ argv, timeoutMs }, { signal });
  if (r.exitCode !== 0) {
    throw new GuestStepError(`session template: could not ${what} (exit ${r.exitCode}): ${firstLine(r.stderr.toString().trim() || r.stdout.toString().trim())}`,
      'the image must have the agent user (uid 1000) with a lingering systemd user manager and OpenCode at ~/.local/bin/opencode, as agent-ready does',
      { argv, exit_code: r.exitCode });
  }
}

async function warmUp(m: Machine, front: SessionFront, progress: Progress, signal?: AbortSignal): Promise<void> {
  const t0 = performance.now();
  await m.writeFile(FRONT_IN_GUEST, await readFile(front.path), { mode: 0o755, createParents: true, signal });
  await step(m, ['systemctl', 'start', `user@${AGENT_UID}.service`], 'start the agent user\'s systemd manager', signal);
  // The front first: it has minutes to start while OpenCode loads, and serves nothing until a session configures it.
  await step(m, [...asAgent(), 'systemd-run', '--user', '--quiet', `--unit=${FRONT_UNIT}`, '-p', 'Restart=on-failure', '-p', 'RestartSec=1', '--',
    FRONT_IN_GUEST, '-listen', `0.0.0.0:${SESSION_PORT}`, '-upstream', `http://127.0.0.1:${OPENCODE_LOOPBACK_PORT}`, '-config', SESSION_CONFIG],
  'start the session front', signal);
  await step(m, [...asAgent(), 'systemd-run', '--user', '--quiet', `--unit=${WARM_UNIT}`, `--working-directory=${WORKSPACES_DIR}`,
    '-p', 'Restart=on-failure', '-p', 'RestartSec=5', '--', OPENCODE, 'serve', '--port', String(OPENCODE_LOOPBACK_PORT), '--hostname', '127.0.0.1'],
  'start OpenCode', signal);
  progress(`session template: OpenCode started; waiting for its first answer (minutes under TCG)`);
  const health = `http://127.0.0.1:${OPENCODE_LOOPBACK_PORT}/global/health`;
  await until(m, health, undefined, 'answer /global/health', signal);
  const ready = performance.now();
  progress(`session template: OpenCode answered /global/health ${((ready - t0) / 1000).toFixed(1)} s after its start`);
  // One request inside a project directory: OpenCode loads the code that serves a directory (lazy chunks of its
  // bundle) on first use; done here, no session pays for it. The directory is the parent of every session's.
  await until(m, `http://127.0.0.1:${OPENCODE_LOOPBACK_PORT}/path`, WORKSPACES_DIR, 'answer /path for a directory', signal);
  progress(`session template: OpenCode served a directory ${((performance.now() - ready) / 1000).toFixed(1)} s later`);
  await step(m, [...asAgent(), 'systemctl', '--user', 'is-active', '--quiet', FRONT_UNIT], 'keep the session front running', signal);
}

/** The front's -probe, in slices so no single exec outlives the agent's patience, until WARM_TIMEOUT_MS. */
async function until(m: Machine, url: string, dir: string | undefined, what: string, signal?: AbortSignal): Promise<void> {
  const end = Date.now() + WARM_TIMEOUT_MS;
  for (;;) {
    const argv = [...asAgent(), FRONT_IN_GUEST, '-probe', url, '-timeout', `${PROBE_SLICE_S}s`, ...(dir ? ['-probe-directory', dir] : [])];
    const r = await m.exec({ argv, timeoutMs: (PROBE_SLICE_S + 60) * 1000 }, { signal });
    if (r.exitCode === 0) return;
    if (Date.now() > end) {
      const status = await m.exec({ argv: [...asAgent(), 'systemctl', '--user', 'status', '--no-pager', '--lines=5', WARM_UNIT], timeoutMs: 30_000 }, { signal })
        .then((s) => firstLine(s.stdout.toString().trim()), () => '');
      throw new GuestStepError(`session template: OpenCode did not ${what} within ${WARM_TIMEOUT_MS / 60_000} min: ${firstLine(r.stderr.toString().trim())}${status ? ` (${status})` : ''}`,
        'see the unit\'s journal in a workspace of this image: journalctl --user -u ' + WARM_UNIT, { url });
    }
  }
}
