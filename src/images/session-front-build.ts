// Builds islet-session-front (session-front/): the authenticating front of
// sessions restored from a session template (docs/sessions.md). Static, std
// lib only, cached by the hash of its sources like the egress helper, in its
// own directory so a change to it never changes the agent's hash.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import { run } from '../host/run.js';
import { agentSourceHash, assertStaticAgent, goVersion } from './agent-build.js';
import { cached, cacheKey, setCurrent } from './cache.js';
import { imageBuildFailed } from './errors.js';
import { artifactsRoot, kindDir, packageRoot } from './paths.js';

export const SESSION_FRONT_BINARY = 'islet-session-front';
export const sessionFrontSourceDir = path.join(packageRoot, 'session-front');
const BUILD_FORMAT = 1;

export interface SessionFront {
  path: string;
  /** The cache key: changes whenever the sources do, so templates holding an older front are not used. */
  key: string;
}

export async function ensureSessionFront(config: Config, progress: Progress, signal?: AbortSignal): Promise<SessionFront> {
  const { hash, files } = await agentSourceHash(sessionFrontSourceDir);
  if (!files) {
    throw imageBuildFailed(`no session front sources at ${sessionFrontSourceDir}`,
      'it ships in the islet package under session-front/; reinstall islet or restore that directory', { dir: sessionFrontSourceDir });
  }
  const key = cacheKey(['session-front', { sources: hash, format: BUILD_FORMAT }]);
  const dir = path.join(artifactsRoot(config), 'session-front');
  const goDir = kindDir.go(config);
  const entry = await cached(dir, key, async (tmp) => {
    progress(`session front: go build (${files} source files, ${await goVersion(signal)})`);
    const out = path.join(tmp, SESSION_FRONT_BINARY);
    await run(['go', 'build', '-trimpath', '-ldflags=-s -w', '-o', out, '.'], {
      cwd: sessionFrontSourceDir, signal, timeoutMs: 10 * 60_000,
      env: {
        ...process.env, CGO_ENABLED: '0', GOARCH: 'amd64', GOCACHE: path.join(goDir, 'build'), GOPATH: path.join(goDir, 'path'),
        GOENV: 'off', GOPROXY: 'off', GOFLAGS: '', GOTOOLCHAIN: 'local',
      },
    });
    // It runs in the guest, whatever libc the image has (or none).
    assertStaticAgent(await readFile(out), out);
  });
  await setCurrent(dir, key);
  return { path: path.join(entry.path, SESSION_FRONT_BINARY), key };
}
