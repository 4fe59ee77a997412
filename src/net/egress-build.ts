// Builds islet-egress (egress/): static, std lib only, cached by the hash of
// its sources like the agent, in its own directory so a change to it never
// changes the agent's hash (which keys image rebuilds).
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import { run } from '../host/run.js';
import { agentSourceHash, goVersion } from '../images/agent-build.js';
import { cached, cacheKey, setCurrent } from '../images/cache.js';
import { imageBuildFailed } from '../images/errors.js';
import { artifactsRoot, kindDir, packageRoot } from '../images/paths.js';

export const EGRESS_BINARY = 'islet-egress';
export const egressSourceDir = path.join(packageRoot, 'egress');
const BUILD_FORMAT = 1;

export async function ensureEgressHelper(config: Config, progress: Progress, signal?: AbortSignal): Promise<string> {
  const { hash, files } = await agentSourceHash(egressSourceDir);
  if (!files) {
    throw imageBuildFailed(`no egress helper sources at ${egressSourceDir}`,
      'it ships in the islet package under egress/; reinstall islet or restore that directory', { dir: egressSourceDir });
  }
  // Keyed by sources only, not the Go version: a service open then needs no `go` once the helper is built
  // (it is static and std lib only, so any Go that builds it builds the same program).
  const key = cacheKey(['egress', { sources: hash, format: BUILD_FORMAT }]);
  const dir = path.join(artifactsRoot(config), 'egress');
  const goDir = kindDir.go(config);
  const entry = await cached(dir, key, async (tmp) => {
    progress(`egress helper: go build (${files} source files, ${await goVersion(signal)})`);
    await run(['go', 'build', '-trimpath', '-ldflags=-s -w', '-o', path.join(tmp, EGRESS_BINARY), '.'], {
      cwd: egressSourceDir, signal, timeoutMs: 10 * 60_000,
      env: {
        ...process.env, CGO_ENABLED: '0', GOCACHE: path.join(goDir, 'build'), GOPATH: path.join(goDir, 'path'),
        GOENV: 'off', GOPROXY: 'off', GOFLAGS: '', GOTOOLCHAIN: 'local',
      },
    });
  });
  await setCurrent(dir, key);
  return path.join(entry.path, EGRESS_BINARY);
}
