// `islet run -- <command...>`: boot a throwaway VM, run one command with its
// output streamed, exit with its exit code, and destroy the VM.
import { Command, Option } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import { loadConfig } from '../../core/config.js';
import { Runtime } from '../../service/runtime.js';
import { stderrProgress } from './progress.js';
import { readBounded } from './read-bounded.js';

/** What `islet run --stdin` forwards: read while bounded, so an endless pipe fails fast. */
const MAX_STDIN_BYTES = 64 << 20;

interface RunFlags {
  config?: string;
  image: string;
  vcpus?: string;
  memory?: string;
  sh?: string;
  env: string[];
  cwd?: string;
  timeout: string;
  stdin?: boolean;
  quiet?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerRun(program: Command): void {
  program.command('run')
    .description('boot a throwaway VM, run one command in it, print its output, destroy the VM')
    .argument('[command...]', 'the command and its arguments (put them after --)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--image <name>', 'image to boot', 'base')
    .option('--vcpus <n>', 'virtual CPUs')
    .option('--memory <mb>', 'guest memory in MiB')
    .option('--sh <script>', 'run this string with /bin/sh -c instead of an argv')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('--cwd <dir>', 'working directory in the guest (default /root)')
    .option('--timeout <ms>', 'kill the command after this many ms (0 = none)', '0')
    .option('-i, --stdin', 'pass this process\'s stdin to the command')
    .addOption(new Option('-q, --quiet', 'no progress lines on stderr'))
    .action(async (command: string[], flags: RunFlags) => {
      if (!flags.sh && command.length === 0) throw new InvalidArgumentError('no command given', 'islet run -- uname -a   or   islet run --sh "echo hi | wc -c"');
      if (flags.sh && command.length > 0) throw new InvalidArgumentError('give either --sh or a command, not both');
      const env: Record<string, string> = {};
      for (const kv of flags.env) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new InvalidArgumentError(`--env ${JSON.stringify(kv)} is not KEY=VALUE`);
        env[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const progress = flags.quiet ? undefined : stderrProgress();
      const config = loadConfig(flags.config);
      const rt = await Runtime.open(config, { progress });
      const abort = new AbortController();
      const onSignal = () => abort.abort(new Error('interrupted'));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const stdin = flags.stdin ? await readBounded(process.stdin, MAX_STDIN_BYTES, `stdin (--stdin takes at most ${MAX_STDIN_BYTES} bytes)`) : undefined;
        const r = await rt.runOnce({
          image: flags.image,
          vcpus: intFlag('--vcpus', flags.vcpus),
          memoryMb: intFlag('--memory', flags.memory),
          exec: {
            ...(flags.sh ? { shell: flags.sh } : { argv: command }),
            env, cwd: flags.cwd, stdin,
            timeoutMs: intFlag('--timeout', flags.timeout) ?? 0,
            maxOutputBytes: 64 << 20,
          },
          signal: abort.signal,
          onData: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
        });
        if (r.timedOut) process.stderr.write(`islet: command timed out after ${flags.timeout} ms and was killed\n`);
        if (r.truncated) process.stderr.write('islet: output was truncated at 64 MiB per stream\n');
        process.exitCode = r.exitCode ?? 128 + signalNumber(r.signal);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, ABRT: 6, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 };
function signalNumber(name: string | null): number {
  return (name && SIGNALS[name]) || 1;
}

