// The host side of a session's repository (docs/sessions.md): the daemon's
// host runs `git clone --branch B --single-branch -- URL`, packs the checkout
// (with its .git) into one tar file, and the session streams that file into
// the guest. The guest never needs the internet, and credentials (an SSH
// agent, a credential helper) stay on the host.
//
// git runs with an argv array (host/run.ts), the URL after "--", prompts off,
// and only the transports a plain URL or path names allowed: "ext::" and the
// other helpers would run programs here. A local path must be inside
// [server] transfer_dir, the one host directory callers may read from.
import { mkdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { FileTooLargeError, firstLine, HostCommandError, HostPrerequisiteError, IsletError, RepoCloneError } from '../core/errors.js';
import { run, which } from '../host/run.js';
import { removeTree } from '../images/cache.js';

/** What a clone may take: a large monorepo over a slow link, not an hour. */
const CLONE_TIMEOUT_MS = 10 * 60_000;
const TAR_TIMEOUT_MS = 5 * 60_000;

/** The URL as it may be shown and stored: a password or token in it becomes "***". */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z+]+:\/\/)([^/@:]*):[^/@]*@/i, '$1$2:***@');
}

const within = (root: string, p: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** A local repository path, resolved through symlinks, must stay inside transfer_dir. */
async function confineLocal(url: string, transferDir: string): Promise<string> {
  await mkdir(transferDir, { recursive: true, mode: 0o700 });
  const root = await realpath(transferDir);
  const real = await realpath(url).catch(() => {
    throw new RepoCloneError(`repository ${JSON.stringify(url)} does not exist on the daemon's host`, 'give an existing path inside [server] transfer_dir, or a URL', { repo: url });
  });
  if (!within(root, real) || real === root) {
    throw new IsletError('PATH_OUTSIDE_ALLOWED', `repository path ${JSON.stringify(url)} is outside the transfer directory ${transferDir}`,
      'put the repository (or a bare clone of it) inside [server] transfer_dir, or give a URL', { repo: url, transferDir });
  }
  return real;
}

export interface FetchedRepo {
  /** The tar of the checkout, .git included, entries relative to the repository root. */
  tarPath: string;
  bytes: number;
  commit: string;
}

/**
 * Clones url at branch under workDir (made here; the caller removes it) and
 * tars it. The tar is refused past maxBytes ([server] max_transfer_bytes).
 */
export async function fetchRepo(o: { url: string; branch: string; workDir: string; transferDir: string; maxBytes: number; signal?: AbortSignal }): Promise<FetchedRepo> {
  if (!(await which('git'))) {
    throw new HostPrerequisiteError('git is not on PATH: the daemon\'s host clones session repositories', 'sudo apt-get install git');
  }
  const source = o.url.startsWith('/') ? await confineLocal(o.url, o.transferDir) : o.url;
  const shown = redactUrl(o.url);
  await mkdir(o.workDir, { recursive: true, mode: 0o700 });
  const repo = path.join(o.workDir, 'repo');
  const env = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0', // a missing credential fails instead of waiting for a human
    GIT_ALLOW_PROTOCOL: 'https:http:ssh:git:file', // no ext::, fd:: or other helpers, for submodules and redirects too
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes',
  };
  try {
    await run(['git', '-c', 'protocol.ext.allow=never', 'clone', '--quiet', '--no-hardlinks', '--branch', o.branch, '--single-branch', '--', source, repo],
      { env, timeoutMs: CLONE_TIMEOUT_MS, signal: o.signal });
  } catch (e) {
    if (!(e instanceof HostCommandError)) throw e;
    // git's own words (the stderr tail is in the message), with any credential in the URL redacted.
    const lines = e.message.split(o.url).join(shown).split('\n');
    const said = lines.filter((l) => /fatal:|error:/.test(l)).pop() ?? firstLine(e);
    const why = lines.some((l) => /Remote branch .* not found/.test(l)) ? `has no branch "${o.branch}"` : `could not be cloned: ${said.trim()}`;
    throw new RepoCloneError(`repository ${shown} ${why}`, 'check the URL and branch; the daemon\'s host must reach the repository (its credentials, if any, are the host\'s)',
      { repo: shown, branch: o.branch }, e);
  }
  const commit = (await run(['git', '-C', repo, 'rev-parse', 'HEAD'], { env, timeoutMs: 30_000 })).stdout.trim();
  const tarPath = path.join(o.workDir, 'repo.tar');
  // Owned by the guest's agent user (uid 1000) inside the archive; the guest also chowns after extracting.
  await run(['tar', '--create', '--file', tarPath, '--numeric-owner', '--owner=1000', '--group=1000', '-C', repo, '.'], { timeoutMs: TAR_TIMEOUT_MS, signal: o.signal });
  await removeTree(repo);
  const bytes = (await stat(tarPath)).size;
  if (bytes > o.maxBytes) {
    throw new FileTooLargeError(`repository ${shown} at ${o.branch} is ${bytes} bytes as a tar, over the ${o.maxBytes}-byte transfer limit`,
      'raise [server] max_transfer_bytes, or use a smaller branch', { bytes, max: o.maxBytes });
  }
  return { tarPath, bytes, commit };
}

export { removeTree };
