// `islet setup`: host packages, the guest agent, kernel, initramfs, the base
// image and the workspace default image, each built once into the cache and reused.
import { Command } from 'commander';
import { loadConfig } from '../../core/config.js';
import { setupHost } from '../../service/setup.js';
import { stderrProgress } from './progress.js';

export function registerSetup(program: Command): void {
  program.command('setup')
    .description('install missing host packages (as root), build the agent, kernel, initramfs, the base image and [resources] default_image (cached)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--image <name>', 'also build this image')
    .option('--no-packages', 'do not install host packages, only report them')
    .action(async (flags: { config?: string; image?: string; packages: boolean }) => {
      const config = loadConfig(flags.config);
      const r = await setupHost(config, { progress: stderrProgress(), image: flags.image, installPackages: flags.packages });
      for (const line of r.summary) process.stdout.write(`${line}\n`);
    });
}
