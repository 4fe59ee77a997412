// `islet check`: a line per check; exit 0 when every required one passes.
import { Command } from 'commander';
import { loadConfig } from '../../core/config.js';
import { runChecks } from '../../service/check.js';

export function registerCheck(program: Command): void {
  program.command('check')
    .description('check that this host can run islet VMs (QEMU, kernel, images, KVM or TCG, directories)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print the results as JSON')
    .option('--no-canary', 'do not boot a canary VM to test KVM')
    .action(async (flags: { config?: string; json?: boolean; canary: boolean }) => {
      const results = await runChecks(loadConfig(flags.config), { canary: flags.canary });
      const passed = results.every((r) => r.ok || !r.required);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ ok: passed, checks: results }, null, 2)}\n`);
      } else {
        for (const r of results) {
          const tag = r.ok ? '[ OK ]' : r.required ? '[FAIL]' : '[WARN]';
          process.stdout.write(`${tag} ${r.name}: ${r.detail}\n`);
          if (!r.ok && r.hint) process.stdout.write(`       hint: ${r.hint}\n`);
        }
        process.stdout.write(passed ? 'all required checks passed\n' : 'some required checks failed\n');
      }
      process.exitCode = passed ? 0 : 1;
    });
}
