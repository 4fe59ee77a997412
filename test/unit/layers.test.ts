// The layer rule as a test (the Go agent's deps_test.go is the model): data
// flows surfaces → service → drivers → host programs, and each forbidden
// import edge below says why it is forbidden. The scan reads every import
// and export-from in src/ (static and dynamic) and resolves relative paths.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = path.join(ROOT, 'src');

interface Rule {
  /** Importing files: a path prefix under src/. */
  from: string;
  /** Imported module: a path prefix under src/ (relative imports), or a package name ("pkg:better-sqlite3"). */
  to: string;
  why: string;
  /** Files under `from` the rule does not apply to, each with its reason in the comment next to it. */
  except?: string[];
}

const DRIVERS = ['vmm/', 'guest/', 'storage/', 'images/', 'net/'];

export const FORBIDDEN: Rule[] = [
  { from: 'core/', to: '', why: 'core is imported by everything and imports nothing of islet (config, errors, schemas)' },
  ...[...DRIVERS, 'service/', 'surfaces/'].map((to): Rule => ({ from: 'host/', to, why: 'host/ runs host programs; it knows only core' })),
  ...DRIVERS.flatMap((d) => [
    { from: d, to: 'service/', why: 'drivers are driven by the service, never the other way: no upward imports' },
    { from: d, to: 'surfaces/', why: 'drivers know nothing of MCP or the CLI' },
  ]),
  { from: 'vmm/', to: 'guest/', why: 'the VMM driver and the agent driver are independent; the service composes them (Machine)' },
  { from: 'guest/', to: 'vmm/', why: 'the agent driver speaks the agent protocol over a socket; QEMU is not its business' },
  { from: 'service/', to: 'surfaces/', why: 'the service is surface-agnostic: MCP and the CLI call it, not the reverse' },
  { from: 'service/', to: 'vmm/qmp.ts', why: 'QMP stays inside src/vmm: the service drives VMs through the Vm interface (vmm/driver.ts)' },
  { from: 'service/', to: 'vmm/qemu.ts', why: 'the service reaches QEMU only through the VmDriver interface, so it runs on the fake (vmm/fake.ts)' },
  { from: 'service/', to: 'vmm/qemu-driver.ts', except: ['service/runtime.ts'], why: 'runtime.ts alone picks the real drivers (realDrivers); the rest of the service takes whatever Drivers it is given' },
  { from: 'service/', to: 'vmm/hostfwd.ts', why: 'port forwards are a Vm method; HMP text parsing stays in vmm' },
  { from: 'service/', to: 'guest/client.ts', why: 'the service talks to the agent through the GuestAgent interface (guest/agent.ts), so it runs on the fake' },
  { from: 'service/', to: 'guest/frame.ts', why: 'agent frames are the agent driver\'s wire format; the service uses GuestAgent methods' },
  { from: 'service/', to: 'guest/process.ts', why: 'background processes are GuestAgent.processes (guest/agent.ts), which the fake implements too; process.ts speaks frames on the raw client' },
  ...['vmm/', 'guest/', 'storage/', 'net/'].map((to): Rule => ({
    from: 'surfaces/', to, why: 'surfaces parse, call the service, render; VMs, agents, disks and networks are reached through it',
  })),
  { from: 'surfaces/mcp/', to: 'images/', why: 'MCP tools act on workspaces through the service; image builds are a CLI/setup matter' },
  { from: 'surfaces/', to: 'pkg:better-sqlite3', why: 'SQL lives in the service (store.ts, state-reader.ts): one place knows the schema' },
  { from: 'surfaces/', to: 'host/run.ts', why: 'surfaces start no host programs; the service and drivers do, through host/run.ts' },
  // surfaces/daemon/connect.ts starts the daemon: islet itself, detached, with an argv islet builds (no waiting, so not run.ts).
  { from: '', to: 'pkg:node:child_process', why: 'programs run only through host/run.ts (argv arrays, timeouts, bounded output)', except: ['host/run.ts', 'host/detached.ts', 'vmm/qemu.ts'] },
  // vmm/qemu.ts: QEMU is a long-lived supervised child (detached, pid file), not a run-to-completion program.
];

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

/** Every import edge of src/: importing file and target, both relative to src/ (packages as "pkg:name"). */
export function edges(srcDir = SRC): Array<{ file: string; target: string }> {
  const out: Array<{ file: string; target: string }> = [];
  for (const abs of sources(srcDir)) {
    const file = path.relative(srcDir, abs);
    for (const m of readFileSync(abs, 'utf8').matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      const target = spec.startsWith('.')
        ? path.relative(srcDir, path.resolve(path.dirname(abs), spec)).replace(/\.js$/, '.ts')
        : `pkg:${spec}`;
      out.push({ file, target });
    }
  }
  return out;
}

export function violations(all: Array<{ file: string; target: string }>, rules = FORBIDDEN): string[] {
  const bad: string[] = [];
  for (const { file, target } of all) {
    for (const r of rules) {
      if (!file.startsWith(r.from) || r.except?.includes(file)) continue;
      const hit = r.to.startsWith('pkg:')
        ? target === r.to || target.startsWith(`${r.to}/`)
        : !target.startsWith('pkg:') && !target.startsWith('..') && target.startsWith(r.to) && !(r.to === '' && target.startsWith(r.from));
      if (hit) bad.push(`${file} imports ${target}: ${r.why}`);
    }
  }
  return bad;
}

test('the scan sees the imports it should', () => {
  const all = edges();
  assert.ok(all.length > 200, `only ${all.length} import edges found: is the regex broken?`);
  assert.ok(all.some((e) => e.file === 'service/workspaces.ts' && e.target === 'core/errors.ts'));
  assert.ok(all.some((e) => e.target === 'pkg:better-sqlite3'));
});

test('the rules catch a forbidden edge (checked on a made-up one)', () => {
  assert.equal(violations([{ file: 'vmm/x.ts', target: 'service/store.ts' }]).length, 1);
  assert.equal(violations([{ file: 'surfaces/cli/x.ts', target: 'pkg:better-sqlite3' }]).length, 1);
  assert.equal(violations([{ file: 'core/x.ts', target: 'core/y.ts' }]).length, 0);
  assert.equal(violations([{ file: 'service/x.ts', target: 'vmm/argv.ts' }]).length, 0);
});

test('no forbidden import edge in src/', () => {
  assert.deepEqual(violations(edges()), []);
});
