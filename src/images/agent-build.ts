// Builds the Go guest agent: static (it is PID 1 in an initramfs with no
// libc), stripped, and cached by the hash of exactly what `go build` reads.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import { run } from '../host/run.js';
import { cached, cacheKey, setCurrent } from './cache.js';
import { EM_X86_64, isStaticElf, parseElf } from './elf.js';
import { imageBuildFailed } from './errors.js';
import { agentSourceDir, type BuildOptions, formatBytes, kindDir } from './paths.js';

export const AGENT_BINARY = 'islet-agent';
const AGENT_PACKAGE = './cmd/islet-agent';
/** Bump when the build command changes in a way the sources can't show. */
const AGENT_BUILD_FORMAT = 1;

export interface AgentArtifact {
  path: string;
  key: string;
  sizeBytes: number;
  goVersion: string;
  reused: boolean;
}

/** go.mod, go.sum and every non-test .go file, by sorted relative path. */
export async function agentSourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    } catch (e) {
      if (rel === '') return; // no agent dir at all: reported by the caller
      throw e;
    }
    for (const d of entries) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      // go build ignores testdata and dot/underscore dirs; bin/ is our own output.
      if (d.isDirectory()) {
        if (d.name === 'testdata' || d.name.startsWith('.') || d.name.startsWith('_') || (rel === '' && d.name === 'bin')) continue;
        await walk(r);
      } else if (d.isFile()) {
        if ((d.name.endsWith('.go') && !d.name.endsWith('_test.go')) || (rel === '' && (d.name === 'go.mod' || d.name === 'go.sum'))) out.push(r);
      }
    }
  };
  await walk('');
  return out.sort();
}

/** Hash of the agent's sources: path and content of each file, length-prefixed so no two trees collide. */
export async function agentSourceHash(dir: string): Promise<{ hash: string; files: number }> {
  const files = await agentSourceFiles(dir);
  const h = createHash('sha256');
  for (const f of files) {
    const body = await readFile(path.join(dir, f));
    h.update(`${f}\0${body.length}\0`).update(body);
  }
  return { hash: h.digest('hex'), files: files.length };
}

export async function goVersion(signal?: AbortSignal): Promise<string> {
  return (await run(['go', 'version'], { signal, timeoutMs: 30_000 })).stdout.trim();
}

/** Throws unless buf is an x86-64 ELF with no program interpreter. */
export function assertStaticAgent(buf: Buffer, file: string): void {
  const elf = parseElf(buf);
  if (!elf) throw imageBuildFailed(`${file} is not a 64-bit little-endian ELF`, 'check the agent build output', { file });
  if (elf.machine !== EM_X86_64) {
    throw imageBuildFailed(`${file} is built for ELF machine ${elf.machine}, the guest is x86-64`, 'build with GOARCH=amd64', { file });
  }
  if (!isStaticElf(buf)) {
    throw imageBuildFailed(`${file} is dynamically linked; as PID 1 in the initramfs it has no libc to load`,
      'build with CGO_ENABLED=0 and no cgo imports', { file });
  }
}

export async function ensureAgent(config: Config, progress: Progress, opts: BuildOptions = {}): Promise<AgentArtifact> {
  const src = agentSourceDir;
  const { hash, files } = await agentSourceHash(src);
  if (!files || !(await agentSourceFiles(path.join(src, AGENT_PACKAGE))).length) {
    throw imageBuildFailed(`no Go agent sources at ${path.join(src, AGENT_PACKAGE)}`,
      'the agent ships in the islet package under agent/; reinstall islet or restore that directory', { dir: src });
  }
  const gover = await goVersion(opts.signal);
  const recipe = { sources: hash, go: gover, package: AGENT_PACKAGE, format: AGENT_BUILD_FORMAT, goarch: 'amd64' };
  const key = cacheKey(['agent', recipe]);
  const dir = kindDir.agent(config);
  const goDir = kindDir.go(config);

  const entry = await cached(dir, key, async (tmp) => {
    progress(`agent: go build (${files} source files, ${gover})`);
    const out = path.join(tmp, AGENT_BINARY);
    await run(['go', 'build', '-trimpath', '-ldflags=-s -w', '-o', out, AGENT_PACKAGE], {
      cwd: src,
      signal: opts.signal,
      timeoutMs: 10 * 60_000,
      env: {
        ...process.env,
        CGO_ENABLED: '0',
        GOOS: 'linux',
        GOARCH: 'amd64',
        // Under the cache dir so a read-only or missing HOME cannot break the build.
        GOCACHE: path.join(goDir, 'build'),
        GOPATH: path.join(goDir, 'path'),
        GOENV: 'off',
        // The agent is std only: fail fast rather than reach for a proxy we can't reach.
        GOPROXY: 'off',
        GOFLAGS: '',
        GOTOOLCHAIN: 'local',
      },
    });
    const bin = await readFile(out);
    assertStaticAgent(bin, out);
    return { recipe, info: { goVersion: gover, sourceFiles: files } };
  });
  await setCurrent(dir, key);
  const sizeBytes = entry.meta.files[AGENT_BINARY] ?? 0;
  if (!entry.reused) progress(`agent: built static ${formatBytes(sizeBytes)} binary`);
  return { path: path.join(entry.path, AGENT_BINARY), key, sizeBytes, goVersion: gover, reused: entry.reused };
}
