// `islet ws ps | logs | kill | shell` and the background (`exec --detach`)
// and terminal (`exec -t`) forms of `ws exec`: background processes the
// guest agent keeps, read and driven through the service.
import { Command } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import { ProcessKillInput, ProcessOutputInput, ProcessRef, ProcessStartInput, SIGNALS } from '../../core/process-schemas.js';
import type { ProcessInfo } from '../../service/process-ops.js';
import type { Caller } from '../../service/types.js';
import type { RemoteService } from './remote.js';
import { age, json, table } from './format.js';
import { Common, common, int, ref, validate, withService } from './ws-common.js';

/** One follow poll: long enough to be cheap, short enough that a dead link is noticed. */
const FOLLOW_WAIT_MS = 30_000;
const READ_BYTES = 1 << 20;
const SHELL = 'if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi';

const status = (p: ProcessInfo) => (p.running ? 'running' : p.exit_code !== null ? `exited ${p.exit_code}` : `killed ${p.signal ?? '?'}`);

function pidArg(v: string): number {
  const n = int('<process-id>', v);
  if (!n) throw new InvalidArgumentError('<process-id> must be a positive whole number (see islet ws ps)');
  return n;
}

export interface StartFlags { sh?: string; env: Record<string, string>; cwd?: string; timeout?: number }

/** `ws exec --detach`: start in the background, print the process id. */
export async function execDetached(id: string, command: string | string[], flags: StartFlags, f: Common): Promise<void> {
  const input = validate(ProcessStartInput, { workspace_id: id, command, env: flags.env, cwd: flags.cwd, timeout_ms: flags.timeout },
    { workspace_id: '<id>', command: flags.sh === undefined ? 'command' : '--sh', env: '--env', cwd: '--cwd', timeout_ms: '--timeout' });
  const p = await withService(f, (svc, c, signal) => svc.processStart(c, input, { signal }));
  if (f.json) json(p);
  else process.stdout.write(`${p.process_id}\n`);
}

/** `ws exec -t` and `ws shell`: the command on a guest terminal wired to this one; exits with its status. */
export async function runOnTerminal(id: string, command: string | string[], flags: StartFlags, f: Common): Promise<number> {
  const input = validate(ProcessStartInput, {
    workspace_id: id, command, env: { TERM: process.env.TERM || 'xterm', ...flags.env }, cwd: flags.cwd, timeout_ms: flags.timeout,
  }, { workspace_id: '<id>', command: 'command', env: '--env', cwd: '--cwd', timeout_ms: '--timeout' });
  return withService(f, (svc, c) => terminal(svc, c, input));
}

async function terminal(svc: RemoteService, c: Caller, input: ProcessStartInput): Promise<number> {
  const size = () => ({ cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 });
  const p = await svc.processStart(c, { ...input, pty: size() });
  const pref: ProcessRef = { workspace_id: input.workspace_id, process_id: p.process_id };
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  // Raw: every key, ^C ^Z ^D included, goes to the guest's terminal, whose line discipline acts on it.
  if (raw) stdin.setRawMode(true);
  let writes: Promise<unknown> = Promise.resolve();
  const onKeys = (b: Buffer) => { writes = writes.then(() => svc.processWriteRaw(c, pref, b)).catch(() => undefined); };
  const onResize = () => { void svc.processResize(c, { ...pref, ...size() }).catch(() => undefined); };
  stdin.on('data', onKeys);
  stdin.resume();
  process.on('SIGWINCH', onResize);
  try {
    let offset = 0;
    for (;;) {
      const r = await svc.processOutputRaw(c, { ...pref, offset, max_bytes: READ_BYTES, wait_ms: FOLLOW_WAIT_MS });
      for (const part of r.parts) process.stdout.write(part.data);
      offset = r.next;
      if (!r.proc.running && offset >= r.proc.output_bytes) return r.proc.exit_status ?? 1;
    }
  } finally {
    process.off('SIGWINCH', onResize);
    stdin.off('data', onKeys);
    stdin.pause();
    if (raw) stdin.setRawMode(false);
  }
}

export function registerWsProcesses(ws: Command): void {
  common(ws.command('shell').description('an interactive login shell in a workspace on a real terminal; exits with the shell\'s status'))
    .argument('<id>', 'workspace id or name')
    .action(async (id: string, f: Common) => {
      ref(id);
      process.exitCode = await runOnTerminal(id, SHELL, { env: {} }, f);
    });

  common(ws.command('ps').description('list a workspace\'s background processes (ws exec --detach, process_start)'))
    .argument('<id>', 'workspace id or name')
    .action(async (id: string, f: Common) => {
      const input = ref(id);
      const r = await withService(f, (svc, c, signal) => svc.processList(c, input, { signal }));
      if (f.json) return json(r);
      process.stdout.write(r.processes.length === 0 ? 'no processes\n' : table(['ID', 'PID', 'STATUS', 'AGE', 'OUTPUT', 'COMMAND'],
        r.processes.map((p) => [String(p.process_id), String(p.pid), status(p), age(p.started_at), `${p.output_bytes}B`, p.command])));
    });

  common(ws.command('logs').description('print a background process\'s output (stdout to stdout, stderr to stderr)'))
    .argument('<id>', 'workspace id or name')
    .argument('<process-id>', 'from islet ws ps')
    .option('-f, --follow', 'keep printing new output until the process exits')
    .option('--offset <n>', 'start at this byte offset (default 0)')
    .action(async (id: string, pid: string, f: Common & { follow?: boolean; offset?: string }) => {
      const base = validate(ProcessOutputInput, { workspace_id: id, process_id: pidArg(pid), offset: int('--offset', f.offset) },
        { workspace_id: '<id>', process_id: '<process-id>', offset: '--offset' });
      const last = await withService(f, async (svc, c, signal) => {
        let offset = base.offset ?? 0;
        for (;;) {
          const r = await svc.processOutputRaw(c, { ...base, offset, max_bytes: READ_BYTES, wait_ms: f.follow ? FOLLOW_WAIT_MS : 0 }, { signal });
          if (r.dropped > 0) process.stderr.write(`islet: ${r.dropped} bytes of older output were dropped by the guest's buffer\n`);
          for (const part of r.parts) (part.stream === 'stdout' ? process.stdout : process.stderr).write(part.data);
          const caughtUp = r.next >= r.proc.output_bytes;
          offset = r.next;
          if (caughtUp && (!f.follow || !r.proc.running)) return r.proc;
        }
      });
      if (f.follow && !last.running) process.exitCode = last.exit_status ?? 1;
    });

  common(ws.command('kill').description('signal a background process and its process group'))
    .argument('<id>', 'workspace id or name')
    .argument('<process-id>', 'from islet ws ps')
    .option('-s, --signal <name>', `one of ${SIGNALS.join(', ')} (default TERM)`)
    .action(async (id: string, pid: string, f: Common & { signal?: string }) => {
      const input = validate(ProcessKillInput, { workspace_id: id, process_id: pidArg(pid), signal: f.signal?.replace(/^SIG/, '') },
        { workspace_id: '<id>', process_id: '<process-id>', signal: '--signal' });
      const p = await withService(f, (svc, c, signal) => svc.processKill(c, input, { signal }));
      if (f.json) json(p); else process.stdout.write(`process ${p.process_id}: sent ${input.signal ?? 'TERM'} (${status(p)})\n`);
    });
}
