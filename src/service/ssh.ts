// Per-workspace SSH keys for images that run sshd (a recipe's "ssh" field).
// No key is baked into an image: each workspace gets its own ed25519 pair,
// made on the host by ssh-keygen, the private half kept under
// <data_dir>/ssh/<workspace id>/ (0700 dir, 0600 key) and the public half
// installed in the guest by the agent after every boot. A fork is a new
// workspace, so it gets a new pair, and installing it drops the source's key
// from the fork's copy of authorized_keys.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { GuestStepError, HostPrerequisiteError, IsletError } from '../core/errors.js';
import { FORWARD_HOST } from '../host/ports.js';
import { run, which } from '../host/run.js';
import { findArtifacts } from '../images/index.js';
import type { Machine } from './machine.js';
import type { ForwardInfo, SshInfo } from './types.js';

export const SSH_GUEST_PORT = 22;
const KEY_FILE = 'id_ed25519';
const META_FILE = 'key.json';
/** Marks the lines islet manages in authorized_keys; lines the user added are kept. */
export const KEY_COMMENT_PREFIX = 'islet-managed:';
// Only ever a directory name under ssh/: no separators, no dots.
const WORKSPACE_ID = /^ws-[A-Za-z0-9_-]{1,64}$/;

interface KeyMeta {
  user: string;
  public_key: string;
  created_at: string;
}

export const sshRoot = (dataDir: string) => path.join(dataDir, 'ssh');
export const keyDir = (dataDir: string, id: string) => path.join(sshRoot(dataDir), id);
export const privateKeyPath = (dataDir: string, id: string) => path.join(keyDir(dataDir, id), KEY_FILE);

/** The user sshd lets in, from the image's recipe (as built); undefined: no sshd for islet to serve. */
export async function imageSshUser(config: Config, image: string): Promise<string | undefined> {
  const found = await findArtifacts(config, { image }).catch(() => undefined);
  return found?.image?.recipe.ssh?.user;
}

async function readMeta(dataDir: string, id: string): Promise<KeyMeta | undefined> {
  try {
    const m = JSON.parse(await readFile(path.join(keyDir(dataDir, id), META_FILE), 'utf8')) as KeyMeta;
    return typeof m.user === 'string' && typeof m.public_key === 'string' && existsSync(privateKeyPath(dataDir, id)) ? m : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh ed25519 pair for the workspace, replacing any it had. */
export async function generateKey(dataDir: string, id: string, user: string): Promise<KeyMeta> {
  if (!WORKSPACE_ID.test(id)) throw new TypeError(`generateKey: bad workspace id ${id}`);
  if (!(await which('ssh-keygen'))) {
    throw new HostPrerequisiteError('ssh-keygen is not on PATH: islet makes each workspace\'s SSH key pair with it',
      'sudo apt-get install openssh-client (islet setup installs it as root)', { missing: ['openssh-client'] });
  }
  await mkdir(sshRoot(dataDir), { recursive: true, mode: 0o700 });
  const dir = keyDir(dataDir, id);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  const key = privateKeyPath(dataDir, id);
  // -N '': the key is the credential, kept 0600 under the data dir (agents connect non-interactively).
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `${KEY_COMMENT_PREFIX}${id}`, '-f', key], { timeoutMs: 30_000 });
  await chmod(key, 0o600);
  const meta: KeyMeta = { user, public_key: (await readFile(`${key}.pub`, 'utf8')).trim(), created_at: new Date().toISOString() };
  await writeFile(path.join(dir, META_FILE), JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 });
  return meta;
}

// Runs in the guest as root with the user as $1 (argv, never interpolated) and
// the public key on stdin. Keeps the lines the user added, drops every line
// islet manages (a fork's copy of its source's key), appends this workspace's
// key, and makes file and directory the user's with the modes sshd's
// StrictModes wants. Shell builtins but for install, chown and mv (getent
// only for a user not in /etc/passwd): it runs after every template restore,
// and under TCG each program started in a fresh VM costs translation time.
const INSTALL_SCRIPT = [
  'u=; g=; h=',
  'while IFS=: read -r n _ i j _ d _; do if [ "$n" = "$1" ]; then u=$i; g=$j; h=$d; break; fi; done < /etc/passwd',
  'if [ -z "$h" ]; then e=$(getent passwd "$1" || :); IFS=: read -r _ _ u g _ h _ <<E',
  '$e',
  'E',
  'fi',
  'test -n "$h" || { echo "no user $1 in this image" >&2; exit 1; }',
  'install -d -m 0700 -o "$u" -g "$g" "$h/.ssh"',
  'f="$h/.ssh/authorized_keys"; t="$f.islet-tmp"',
  'umask 077',
  `{ if [ -f "$f" ]; then while IFS= read -r l || [ -n "$l" ]; do case "$l" in *" ${KEY_COMMENT_PREFIX}"*) ;; *) printf "%s\\n" "$l";; esac; done < "$f"; fi`,
  '  while IFS= read -r l || [ -n "$l" ]; do printf "%s\\n" "$l"; done; } > "$t"',
  'chown "$u:$g" "$t"; mv -f "$t" "$f"',
].join('\n');

export async function installKey(m: Machine, user: string, publicKey: string, signal?: AbortSignal): Promise<void> {
  const r = await m.exec({ argv: ['/bin/sh', '-ec', INSTALL_SCRIPT, 'islet-ssh-key', user], stdin: `${publicKey}\n`, timeoutMs: 30_000, maxOutputBytes: 4096 },
    { signal });
  if (r.exitCode !== 0) {
    throw new GuestStepError(`could not install the workspace's SSH key for ${user} in the guest (exit ${r.exitCode ?? r.signal})`,
      'the image\'s "ssh" user must exist with a home directory; check the recipe', { user, stderr: r.stderr.toString('utf8').slice(0, 500) });
  }
}

/**
 * After a boot of a workspace whose image runs sshd: make its key pair if it
 * has none (create, fork, or a workspace from before keys), then install the
 * public key. Run at every boot, so a restored snapshot or a fork never keeps
 * a key that is not this workspace's.
 */
export async function ensureWorkspaceKey(config: Config, w: { id: string; image: string }, m: Machine, signal?: AbortSignal): Promise<void> {
  const user = await imageSshUser(config, w.image);
  if (!user) return;
  const dataDir = config.paths.dataDir;
  const existing = await readMeta(dataDir, w.id);
  const meta = existing && existing.user === user ? existing : await generateKey(dataDir, w.id, user);
  await installKey(m, user, meta.public_key, signal);
}

export async function removeWorkspaceKey(dataDir: string, id: string): Promise<void> {
  if (!WORKSPACE_ID.test(id)) return;
  await rm(keyDir(dataDir, id), { recursive: true, force: true });
}

/** How to connect, for the workspace info; null when the workspace has no key (no sshd in its image). */
export async function sshInfo(dataDir: string, id: string, forwards: readonly ForwardInfo[]): Promise<SshInfo | null> {
  const meta = await readMeta(dataDir, id);
  if (!meta) return null;
  const key = privateKeyPath(dataDir, id);
  const fwd = forwards.find((f) => f.guest_port === SSH_GUEST_PORT);
  const command = fwd
    ? `ssh -i ${key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p ${fwd.host_port} ${meta.user}@${fwd.host_address}`
    : null;
  return {
    user: meta.user, private_key_path: key, public_key: meta.public_key, guest_port: SSH_GUEST_PORT, host_port: fwd?.host_port ?? null, command,
    hint: fwd
      ? 'host keys are made at the workspace\'s first boot, hence StrictHostKeyChecking=no'
      : `forward a host port to guest port ${SSH_GUEST_PORT} first (the port_forward tool), then ssh -i ${key} -p <host port> ${meta.user}@${FORWARD_HOST}`,
  };
}

/** Removes key directories whose workspace no longer exists (a crash between the row's delete and the key's). */
export async function sweepKeys(dataDir: string, liveIds: ReadonlySet<string>): Promise<string[]> {
  const names = await readdir(sshRoot(dataDir)).catch(() => [] as string[]);
  const gone = names.filter((n) => WORKSPACE_ID.test(n) && !liveIds.has(n));
  await Promise.all(gone.map((n) => removeWorkspaceKey(dataDir, n)));
  return gone;
}
