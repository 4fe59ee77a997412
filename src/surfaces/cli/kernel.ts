// `islet kernel build|status`: the custom microVM kernel (setup builds it in the background) (see
// docs/kernel.md). Progress goes to stderr, the report to stdout.
import { Command, Option } from 'commander';
import { type Config, loadConfig } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { silent } from '../../core/progress.js';
import { buildCustomKernel, chooseKernel, findCustomKernel } from '../../images/custom-kernel.js';
import { ensureAgent, findArtifacts } from '../../images/index.js';
import { runningBackgroundBuild } from '../../images/kernel-background.js';
import { formatBytes, formatMs } from '../../images/paths.js';
import { json } from './format.js';
import { stderrProgress } from './progress.js';

interface Common { config?: string; quiet?: boolean; json?: boolean }

async function build(config: Config, f: Common & { jobs?: string; force?: boolean; keepSource?: boolean }): Promise<void> {
  const jobs = f.jobs === undefined ? undefined : Number(f.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs >= 1 && jobs <= 256)) {
    throw new InvalidArgumentError(`--jobs must be a whole number from 1 to 256, got "${f.jobs}"`);
  }
  const progress = f.quiet ? silent : stderrProgress();
  const t0 = performance.now();
  const agent = await ensureAgent(config, progress);
  const k = await buildCustomKernel(config, agent, progress, { jobs, force: f.force, keepSource: f.keepSource });
  const choice = await chooseKernel(config, agent.key);
  const ms = Math.round(performance.now() - t0);
  if (f.json) return json({ ...k, ms, used: choice.kind, reason: choice.reason });
  process.stdout.write(`custom kernel ${k.release}: ${k.reused ? 'already built' : 'built'}; vmlinux ${formatBytes(k.vmlinuxBytes)}, ` +
    `initramfs ${formatBytes(k.initrdBytes)}; build time ${formatMs(k.buildMs)} (${k.compiledFiles} files compiled` +
    `${k.incremental ? ', incremental: the build dir held an earlier build' : ''})${k.reused ? ` on ${k.builtAt}` : ''}; ` +
    `from ${k.sourcePackage} ${k.sourceVersion} (key ${k.key})\n${k.vmlinux}\n`);
  process.stdout.write(`VMs will boot: ${choice.kind} (${choice.reason})\n`);
}

async function status(config: Config, f: Common): Promise<void> {
  const found = await findArtifacts(config);
  const custom = await findCustomKernel(config);
  const choice = await chooseKernel(config, found.agent?.key).catch((e: Error) => ({ kind: 'none', reason: e.message }));
  const bg = await runningBackgroundBuild(config);
  const v = {
    setting: config.vm.kernel,
    background: bg && { pid: bg.pid, startedAt: bg.startedAt, log: bg.log, lastLine: bg.lastLine },
    used: choice.kind,
    reason: choice.reason,
    distro: found.kernel && { release: found.kernel.version, package: `${found.kernel.package} ${found.kernel.packageVersion}`, vmlinux: found.kernel.vmlinux,
      vmlinuxBytes: found.kernel.vmlinuxBytes, modules: found.kernel.modules.length },
    custom: custom && { release: custom.release, package: `${custom.sourcePackage} ${custom.sourceVersion}`, vmlinux: custom.vmlinux,
      vmlinuxBytes: custom.vmlinuxBytes, buildMs: custom.buildMs, builtAt: custom.builtAt, key: custom.key },
  };
  if (f.json) return json(v);
  const line = (name: string, k: { release: string; package: string; vmlinuxBytes: number } | undefined, extra: string) =>
    `${name}: ${k ? `${k.release} (${k.package}), vmlinux ${formatBytes(k.vmlinuxBytes)}${extra}` : 'not built'}\n`;
  process.stdout.write(line('distro kernel', v.distro, v.distro ? ` + initramfs with ${v.distro.modules} modules` : ''));
  process.stdout.write(line('custom kernel', v.custom, v.custom ? `, built in ${formatMs(v.custom.buildMs)}` : ' (islet kernel build)'));
  if (v.background) process.stdout.write(`background build: running since ${v.background.startedAt} (pid ${v.background.pid}); ${v.background.lastLine ?? 'starting'}; log ${v.background.log}\n`);
  process.stdout.write(`[vm] kernel = "${v.setting}": VMs boot the ${v.used} kernel (${v.reason})\n`);
}

export function registerKernel(program: Command): void {
  const kernel = program.command('kernel').description('the custom microVM kernel (built from Debian\'s linux-source, in the background after setup; docs/kernel.md)');
  const common = (c: Command) => c
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print the result as JSON')
    .addOption(new Option('-q, --quiet', 'no progress lines on stderr'));
  common(kernel.command('build')
    .description('compile the minimal kernel from images/kernel/microvm.config (cached by source version + fragment; slow: see docs/kernel.md)'))
    .option('-j, --jobs <n>', 'parallel compile jobs (default: every core; the build runs at nice 19)')
    .option('--force', 'build again even if this source + fragment is cached')
    .option('--keep-source', 'keep the unpacked kernel source (~1.5 GB) after the build; by default it is removed')
    .action(async (f: Common & { jobs?: string; force?: boolean; keepSource?: boolean }) => build(loadConfig(f.config), f));
  common(kernel.command('status')
    .description('the distro and custom kernels, and which one VMs boot'))
    .action(async (f: Common) => status(loadConfig(f.config), f));
}
