// `islet image build|list|verify|rm`: the image catalog from the command line.
// Progress goes to stderr, the report to stdout (as everywhere in the CLI).
import path from 'node:path';
import { Command, Option } from 'commander';
import { type Config, loadConfig } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { silent } from '../../core/progress.js';
import { type CatalogRow, listImages } from '../../images/catalog.js';
import { chooseKernel } from '../../images/custom-kernel.js';
import { findArtifacts } from '../../images/index.js';
import { importImage } from '../../images/import.js';
import { formatBytes, formatMs } from '../../images/paths.js';
import { Runtime } from '../../service/runtime.js';
import { gcCache } from '../../service/image-gc.js';
import { buildImage, exportImage, verifyImage } from '../../service/image-ops.js';
import { removeImage } from '../../service/state-reader.js';
import { age, json, table } from './format.js';
import { stderrProgress } from './progress.js';


interface Common { config?: string; quiet?: boolean; json?: boolean }

const progressOf = (f: Common) => (f.quiet ? silent : stderrProgress());

async function build(config: Config, name: string, f: Common): Promise<void> {
  const t0 = performance.now();
  const { artifacts: a, pruned } = await buildImage(config, name, { progress: progressOf(f) });
  const i = a.image;
  const v = { name, key: i.key, reused: i.reused, rootfs: i.rootfs, usedBytes: i.minBytes, fileBytes: i.sizeBytes, initMode: i.recipe.initMode,
    chain: i.recipe.chain, ms: Math.round(performance.now() - t0), prunedBytes: pruned?.freedBytes ?? 0 };
  if (f.json) return json(v);
  if (pruned?.removed.length) process.stderr.write(`pruned ${pruned.removed.length} superseded build(s) of ${name} (${formatBytes(pruned.freedBytes)})\n`);
  process.stdout.write(`${name}: ${i.reused ? 'already built' : 'built'} in ${formatMs(v.ms)}: ${formatBytes(i.minBytes)} used, ` +
    `${formatBytes(i.sizeBytes)} file (${i.recipe.chain.join(' → ')}, ${i.recipe.initMode} init, key ${i.key})\n${i.rootfs}\n`);
}

/**
 * The kernel a workspace of any image boots today: one per host, not per
 * image ([vm] kernel_path, else the custom kernel when `islet kernel build`
 * made one and [vm] kernel allows it, else the distro kernel). An imported
 * image with a PVH-bootable vmlinux boots that one instead (docs/images.md).
 */
export async function defaultKernelLabel(config: Config): Promise<string> {
  if (config.vm.kernel_path) return `path ${path.basename(config.vm.kernel_path)}`;
  const found = await findArtifacts(config);
  const choice = await chooseKernel(config, found.agent?.key).catch(() => undefined);
  if (choice?.custom) return `custom ${choice.custom.release}`;
  return found.kernel ? `distro ${found.kernel.version}` : 'not built';
}

/**
 * `islet image list` as text: YYYY-MM-DD HH:MM (UTC) build times, so rows compare at a glance;
 * REFERENCE is agentkernel's size for the like image (catalog.ts REFERENCE_SIZES).
 */
export function imageListTable(rows: readonly CatalogRow[], kernel: string, now = Date.now()): string {
  const builtAt = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')}Z (${age(iso, now)} ago)`;
  return table(['NAME', 'PARENT', 'INIT', 'SIZE', 'REFERENCE', 'FILE', 'BUILT AT', 'BUILD TIME', 'RECIPE HASH', 'KERNEL', 'NOTE'], rows.map((r) => [
    r.name, r.parent ?? '-', r.initMode ?? '-', r.usedBytes ? formatBytes(r.usedBytes) : '-', r.referenceMB ? `~${r.referenceMB} MB` : '-',
    r.fileBytes ? formatBytes(r.fileBytes) : '-',
    r.builtAt ? builtAt(r.builtAt) : '-', r.buildMs ? formatMs(r.buildMs) : '-', r.key ?? '-', kernel,
    [!r.built ? 'not built' : '', !r.hasRecipe ? 'no recipe' : '', r.builds > 1 ? `${r.builds} builds cached` : '',
      r.built && !r.hasRecipe ? 'imported' : ''].filter(Boolean).join(', '),
  ]));
}

async function list(config: Config, f: Common): Promise<void> {
  const rows = await listImages(config);
  const kernel = await defaultKernelLabel(config);
  if (f.json) return json(rows.map((r) => ({ ...r, kernel })));
  process.stdout.write(imageListTable(rows, kernel));
}

async function verify(config: Config, name: string, f: Common & { build: boolean; memory: string; vcpus?: string; checksFrom?: string[] }): Promise<void> {
  const memoryMb = Number(f.memory);
  if (!Number.isInteger(memoryMb) || memoryMb < 64) throw new InvalidArgumentError(`--memory must be a whole number of MiB >= 64, got "${f.memory}"`);
  const vcpus = f.vcpus === undefined ? undefined : Number(f.vcpus);
  if (vcpus !== undefined && !(Number.isInteger(vcpus) && vcpus >= 1)) throw new InvalidArgumentError(`--vcpus must be a whole number >= 1, got "${f.vcpus}"`);
  const progress = progressOf(f);
  const rt = await Runtime.open(config, { progress });
  const report = await verifyImage(config, rt, name, {
    build: f.build, memoryMb, vcpus, checksFrom: f.checksFrom, progress,
    onResult: (r) => {
      if (f.json) return;
      process.stdout.write(`${r.ok ? '[PASS]' : '[FAIL]'} ${r.name} (${formatMs(r.durationMs)})${r.ok ? '' : `: ${r.detail}`}\n`);
    },
  });
  const failed = report.checks.filter((r) => !r.ok).length;
  if (f.json) json(report);
  else process.stdout.write(`${name}: ${report.checks.length - failed}/${report.checks.length} ${report.kind === 'imported' ? 'generic ' : ''}checks passed (boot ${formatMs(report.bootMs)})\n`);
  process.exitCode = failed ? 1 : 0;
}

async function exportCmd(config: Config, name: string, f: Common & { out: string }): Promise<void> {
  const r = await exportImage(config, name, f.out);
  if (f.json) return json(r);
  process.stdout.write(`${name} exported to ${r.dir}: rootfs.ext4, vmlinux, initrd.cpio, manifest.json\nkernel command line under islet: ${r.cmdline}\n`);
}

async function gc(config: Config, f: Common & { dryRun?: boolean }): Promise<void> {
  const r = await gcCache(config, { dryRun: f.dryRun });
  if (f.json) return json(r);
  for (const x of r.removed) process.stdout.write(`${f.dryRun ? 'would remove' : 'removed'} ${x.kind} ${x.key} (${formatBytes(x.bytes)})\n`);
  process.stdout.write(`${f.dryRun ? 'would free' : 'freed'} ${formatBytes(r.freedBytes)} in ${r.removed.length} entr${r.removed.length === 1 ? 'y' : 'ies'}; kept ${r.kept.length}\n`);
}

export { workspacesUsing } from '../../service/state-reader.js';

async function rm(config: Config, name: string, f: Common): Promise<void> {
  const r = await removeImage(config, name);
  if (f.json) return json({ image: name, removed: true, ...r });
  process.stdout.write(`removed ${r.builds} build(s) of ${name} (${formatBytes(r.bytes)} apparent); its recipe is kept\n`);
}

async function importCmd(config: Config, name: string, f: Common & { kernel: string; rootfs: string; init: string }): Promise<void> {
  if (f.init !== 'fast' && f.init !== 'full') throw new InvalidArgumentError(`--init must be "fast" or "full", got "${f.init}"`);
  const r = await importImage(config, { name, kernel: f.kernel, rootfs: f.rootfs, initMode: f.init }, progressOf(f));
  if (f.json) return json(r);
  process.stdout.write(`${name}: ${r.reused ? 'already imported' : 'imported'}: ${formatBytes(r.sizeBytes)} rootfs (key ${r.key}), ` +
    `boots ${r.kernelUse === 'own' ? 'its own kernel' : 'islet\'s kernel'}${r.injectAgent ? ', agent injected from the initramfs' : ''}\n${r.rootfs}\n`);
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
}

export function registerImage(program: Command): void {
  const image = program.command('image').description('build, list, verify and remove workspace images');
  const common = (c: Command) => c
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print the result as JSON')
    .addOption(new Option('-q, --quiet', 'no progress lines on stderr'));

  common(image.command('build <name>')
    .description('build the image from images/<name>/recipe.json and its parents (cached by recipe hash)'))
    .action(async (name: string, f: Common) => build(loadConfig(f.config), name, f));
  common(image.command('list')
    .description('every recipe and built image: parent, size (and agentkernel\'s for the like image), built at, build time, recipe hash, the kernel it boots'))
    .action(async (f: Common) => list(loadConfig(f.config), f));
  common(image.command('verify <name>')
    .description('boot a throwaway VM of the image and run its recipe\'s verify checks; exit 1 if any fails'))
    .option('--no-build', 'use the current build as is, even if the recipe changed since')
    .option('--memory <mb>', 'guest memory for the checks (compilers want more than the default)', '1024')
    .option('--vcpus <n>', 'guest vCPUs')
    .option('--checks-from <recipe...>', 'also run these recipes\' checks (e.g. agent-ready on an import meant to replace it)')
    .action(async (name: string, f: Common & { build: boolean; memory: string; vcpus?: string; checksFrom?: string[] }) => verify(loadConfig(f.config), name, f));
  common(image.command('export <name>')
    .description('write the image\'s rootfs.ext4, vmlinux, initrd.cpio and manifest.json into a new directory, for other VMMs'))
    .requiredOption('--out <dir>', 'a new or empty directory')
    .action(async (name: string, f: Common & { out: string }) => exportCmd(loadConfig(f.config), name, f));
  common(image.command('gc')
    .description('remove superseded builds; keeps what workspaces, snapshots, templates and running VMs use'))
    .option('--dry-run', 'list what would be removed')
    .action(async (f: Common & { dryRun?: boolean }) => gc(loadConfig(f.config), f));
  common(image.command('import <name>')
    .description('register your own raw ext4 rootfs and vmlinux (under your home or [storage] data_dir) as an image'))
    .requiredOption('--kernel <file>', 'uncompressed x86-64 ELF vmlinux; booted when it has the PVH note, else islet\'s kernel is (with a warning)')
    .requiredOption('--rootfs <file>', 'raw ext4 filesystem image (copied, read-only)')
    .option('--init <mode>', 'fast: islet\'s agent, injected from the initramfs, is PID 1; full: the image\'s /sbin/init (systemd) starts its own islet-agent.service', 'fast')
    .action(async (name: string, f: Common & { kernel: string; rootfs: string; init: string }) => importCmd(loadConfig(f.config), name, f));
  common(image.command('rm <name>')
    .description('delete every cached build of an image; refused while a workspace uses it'))
    .action(async (name: string, f: Common) => rm(loadConfig(f.config), name, f));
}
