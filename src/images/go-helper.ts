// Builds one of islet's small std-lib Go programs (egress/, session-front/):
// static, cached by the hash of its sources, in its own cache directory so a
// change to it never changes the agent's hash (which keys image rebuilds).
// Keyed by sources only, not the Go version: a service open then needs no
// `go` once the program is built (static and std lib only, so any Go that
// builds it builds the same program).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import { run } from '../host/run.js';
import { agentSourceHash, assertStaticAgent, goVersion } from './agent-build.js';
import { cached, cacheKey, setCurrent } from './cache.js';
import { imageBuildFailed } from './errors.js';
import { artifactsRoot, kindDir } from './paths.js';

const BUILD_FORMAT = 1;

export interface GoHelper {
  /** Cache kind and directory name, e.g. "egress". */
  kind: string;
  /** What progress and errors call it. */
  label: string;
  sourceDir: string;
  binary: string;
  /** Runs in the guest: built for amd64 and checked static, whatever libc the image has (or none). */
  guest: boolean;
}

export async function ensureGoHelper(h: GoHelper, config: Config, progress: Progress, signal?: AbortSignal): Promise<{ path: string; key: string }> {
  const { hash, files } = await agentSourceHash(h.sourceDir);
  if (!files) {
    throw imageBuildFailed(`no ${h.label} sources at ${h.sourceDir}`,
      `it ships in the islet package under ${path.basename(h.sourceDir)}/; reinstall islet or restore that directory`, { dir: h.sourceDir });
  }
  const key = cacheKey([h.kind, { sources: hash, format: BUILD_FORMAT }]);
  const dir = path.join(artifactsRoot(config), h.kind);
  const goDir = kindDir.go(config);
  const entry = await cached(dir, key, async (tmp) => {
    progress(`${h.label}: go build (${files} source files, ${await goVersion(signal)})`);
    const out = path.join(tmp, h.binary);
    await run(['go', 'build', '-trimpath', '-ldflags=-s -w', '-o', out, '.'], {
      cwd: h.sourceDir, signal, timeoutMs: 10 * 60_000,
      env: {
        ...process.env, CGO_ENABLED: '0', ...(h.guest ? { GOARCH: 'amd64' } : {}), GOCACHE: path.join(goDir, 'build'), GOPATH: path.join(goDir, 'path'),
        GOENV: 'off', GOPROXY: 'off', GOFLAGS: '', GOTOOLCHAIN: 'local',
      },
    });
    if (h.guest) assertStaticAgent(await readFile(out), out);
  });
  await setCurrent(dir, key);
  return { path: path.join(entry.path, h.binary), key };
}
