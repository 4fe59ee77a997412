// `islet run -- <command...>`: one command in a throwaway VM, its output
// streamed, the exit code its own. A client of the daemon (POST /v1/run),
// which makes the VM (a warm pool VM or a template restore where it can) and
// destroys it when the command ends or this process goes away.
import { Command, Option } from 'commander';
import { CancelledError, InvalidArgumentError } from '../../core/errors.js';
import { loadConfig } from '../../core/config.js';
import { MAX_RUN_STDIN_BYTES, RunInput } from '../../core/run-schemas.js';
import { readBounded } from './read-bounded.js';
import { RemoteService } from './remote.js';
import { validate } from './ws-common.js';

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
    .description('run one command in a throwaway VM (made and destroyed by the daemon), print its output, exit with its code')
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
      const config = loadConfig(flags.config);
      // Read while bounded, before the daemon is asked for a VM: an endless pipe fails fast and costs no boot.
      const stdin = flags.stdin ? await readBounded(process.stdin, MAX_RUN_STDIN_BYTES, `stdin (--stdin takes at most ${MAX_RUN_STDIN_BYTES} bytes)`) : undefined;
      const input = validate(RunInput, {
        image: flags.image,
        vcpus: intFlag('--vcpus', flags.vcpus),
        memory_mb: intFlag('--memory', flags.memory),
        command: flags.sh ?? command,
        env, cwd: flags.cwd,
        stdin: stdin?.toString('base64'),
        timeout_ms: intFlag('--timeout', flags.timeout) ?? 0,
      }, { image: '--image', vcpus: '--vcpus', memory_mb: '--memory', command: flags.sh ? '--sh' : '<command>', env: '--env', cwd: '--cwd', stdin: '--stdin', timeout_ms: '--timeout' });
      // The daemon makes the VM, runs the command and destroys the VM when it ends or this connection closes
      // (Ctrl-C, or this process killed): the VM's life is the daemon's to end, not this process's.
      const svc = await RemoteService.connect(config);
      const abort = new AbortController();
      const onSignal = () => abort.abort(new Error('interrupted'));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const r = await svc.run({ owner: config.server.stdio_owner }, input, {
          signal: abort.signal,
          onData: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
          onStarted: (st) => {
            if (!flags.quiet) process.stderr.write(`islet: running in ${st.name} (${st.via === 'pool' ? 'a warm pool VM' : st.via === 'template' ? 'restored from a template' : 'booted'}, ${st.create_ms} ms)\n`);
          },
        }).catch((e: unknown) => {
          throw abort.signal.aborted ? new CancelledError('islet run', e) : e;
        });
        if (r.timed_out) process.stderr.write(`islet: command timed out after ${flags.timeout} ms and was killed\n`);
        if (r.truncated) process.stderr.write('islet: output was truncated at 64 MiB per stream\n');
        process.exitCode = r.exit_code ?? 128 + signalNumber(r.signal);
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

