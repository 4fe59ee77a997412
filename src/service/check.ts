// `islet check`: one line per host prerequisite. Required checks decide the
// exit status; the others report what later features (bridge networking,
// image builds) will need.
import { constants } from 'node:fs';
import { access, mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { firstLine, IsletError } from '../core/errors.js';
import { chooseKernel, fragmentPath, staleCustomKernel } from '../images/custom-kernel.js';
import { findArtifacts } from '../images/index.js';
import { run, which } from '../host/run.js';
import { kvmDeviceUsable, tscKhz } from '../vmm/accel.js';
import { bridgePrerequisites, brNetfilter } from '../net/bridge.js';
import { nftTables } from '../net/nft.js';
import { MAX_SOCKET_PATH } from '../vmm/argv.js';
import { resolveBootArtifacts } from './artifacts.js';
import { Runtime } from './runtime.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  required: boolean;
  detail: string;
  hint?: string;
}

type Outcome = Omit<CheckResult, 'name' | 'required'>;
type Check = () => Promise<Outcome>;

const ok = (detail: string): Outcome => ({ ok: true, detail });
const fail = (detail: string, hint?: string): Outcome => (hint ? { ok: false, detail, hint } : { ok: false, detail });

async function program(name: string, pkg: string, versionArgs?: string[]): Promise<Outcome> {
  const p = await which(name);
  if (!p) return fail(`${name} not found in PATH`, `apt-get install ${pkg}  (or: islet setup, as root)`);
  if (!versionArgs) return ok(p);
  const r = await run([p, ...versionArgs], { timeoutMs: 10_000, allowFailure: true });
  return ok(`${p} ${(r.stdout || r.stderr).split('\n')[0]?.trim() ?? ''}`);
}

async function isElf(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    await fh.close();
  }
}

async function writableDir(dir: string): Promise<Outcome> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK);
    return ok(dir);
  } catch (e) {
    return fail(`${dir}: ${(e as Error).message}`, 'set [storage] data_dir / run_dir to a writable directory');
  }
}

/** Can this host run bridge mode, and is islet's bridge up right now (with its tables)? */
async function bridgeCheck(config: Config): Promise<Outcome> {
  const mode = config.network.mode;
  const br = config.network.bridge_name;
  try {
    await bridgePrerequisites();
    await brNetfilter();
  } catch (e) {
    const err = e as IsletError;
    return mode === 'bridge' ? fail(err.message, err.hint) : ok(`not available (${err.message}); [network] mode is "${mode}"`);
  }
  const link = await run(['ip', '-o', '-4', 'addr', 'show', 'dev', br], { timeoutMs: 10_000, allowFailure: true });
  const addr = /inet (\S+)/.exec(link.stdout)?.[1];
  const tables = await nftTables().catch(() => [] as string[]);
  const state = link.code === 0
    ? `${br} present (${addr ?? 'no address'}), nft tables: ${tables.length ? tables.join(', ') : 'none'}`
    : `${br} absent (islet creates it when the service starts in bridge mode)${tables.length ? `; nft tables: ${tables.join(', ')}` : ''}`;
  return ok(`root, ip, nft and br_netfilter present; ${state}; [network] mode is "${mode}"`);
}

export async function runChecks(config: Config, o: { canary?: boolean } = {}): Promise<CheckResult[]> {
  const art = () => resolveBootArtifacts(config, 'base');
  const artifactCheck = (pick: (a: Awaited<ReturnType<typeof art>>) => string, what: string, elf: boolean): Check => async () => {
    let file: string;
    try {
      file = pick(await art());
    } catch (e) {
      return e instanceof IsletError ? fail(e.message, e.hint) : fail(String(e));
    }
    try {
      const s = await stat(file);
      if (elf && !(await isElf(file))) return fail(`${file} is not an ELF file (need an uncompressed vmlinux)`, 'point [vm] kernel_path at a vmlinux, not a bzImage');
      return ok(`${file} (${(s.size / 1e6).toFixed(1)} MB)`);
    } catch {
      return fail(`${what} ${file} does not exist`, 'run `islet setup`, or fix the path in the config');
    }
  };
  const checks: Array<[string, boolean, Check]> = [
    ['qemu', true, () => program(config.vm.qemu_binary, 'qemu-system-x86', ['--version'])],
    ['qemu microvm machine', true, async () => {
      const r = await run([config.vm.qemu_binary, '-machine', 'help'], { timeoutMs: 10_000, allowFailure: true }).catch(() => undefined);
      return r && /^microvm\b/m.test(r.stdout) ? ok('supported') : fail('this QEMU has no microvm machine', 'install Debian\'s qemu-system-x86 (QEMU >= 7)');
    }],
    ['qemu-img', true, () => program('qemu-img', 'qemu-utils', ['--version'])],
    ['kernel', true, artifactCheck((a) => a.vmlinux, 'kernel', true)],
    ['guest kernel choice', false, async () => {
      const c = await chooseKernel(config, (await findArtifacts(config)).agent?.key);
      return ok(`${c.kind} (${c.reason})`);
    }],
    ['custom kernel vs its config fragment', false, async () => {
      const s = await staleCustomKernel(config);
      if (!s) return ok('no custom kernel built');
      if (!s.changed.length) return ok(`${s.release} matches ${path.basename(fragmentPath())}`);
      return fail(`${s.release} (built ${s.builtAt}) is older than ${fragmentPath()}: ${s.changed.length} option(s) differ (${s.changed.slice(0, 5).join(', ')}${s.changed.length > 5 ? ', ...' : ''})`,
        'run `islet kernel build` to rebuild it from the current fragment');
    }],
    ['initramfs', true, artifactCheck((a) => a.initrd, 'initramfs', false)],
    ['base image', true, artifactCheck((a) => a.rootfs, 'base image', false)],
    ['tsc frequency', true, async () => {
      const k = tscKhz();
      return k ? ok(`tsc_early_khz=${k}`) : fail('no "cpu MHz" in /proc/cpuinfo', 'the guest cannot calibrate its clock without it');
    }],
    ['data dir', true, () => writableDir(config.paths.dataDir)],
    ['run dir', true, async () => {
      const r = await writableDir(config.paths.runDir);
      const longest = path.join(config.paths.runDir, 'vm', 'x'.repeat(12), 'agent.sock');
      if (r.ok && Buffer.byteLength(longest) > MAX_SOCKET_PATH) return fail(`${config.paths.runDir} is too long for unix socket paths`, 'set [storage] run_dir to a shorter path');
      return r;
    }],
    ['kvm', false, async () => {
      if (!(await kvmDeviceUsable())) return ok('/dev/kvm not usable: VMs run under TCG (software emulation, slower)');
      if (!o.canary) return ok('/dev/kvm present (run without --no-canary to test it)');
      try {
        const rt = await Runtime.open(config);
        const c = await rt.accel();
        return ok(`accelerator ${c.accel}: ${c.reason}`);
      } catch (e) {
        return fail(`canary could not run: ${firstLine(e)}`);
      }
    }],
    ['mmdebstrap (image builds)', false, () => program('mmdebstrap', 'mmdebstrap')],
    ['mke2fs (image builds)', false, () => program('mke2fs', 'e2fsprogs')],
    ['go (agent builds)', false, () => program('go', 'golang-go', ['version'])],
    ['ip (bridge networking)', config.network.mode === 'bridge', () => program('ip', 'iproute2')],
    ['nft (bridge networking)', config.network.mode === 'bridge', () => program('nft', 'nftables')],
    ['bridge networking', config.network.mode === 'bridge', () => bridgeCheck(config)],
  ];
  const results: CheckResult[] = [];
  for (const [name, required, fn] of checks) {
    let r: Outcome;
    try {
      r = await fn();
    } catch (e) {
      r = fail(e instanceof Error ? e.message : String(e));
    }
    results.push({ name, required, ...r });
  }
  return results;
}
