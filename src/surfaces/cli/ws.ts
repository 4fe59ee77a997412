// `islet ws <sub>`: one WorkspaceService method per subcommand. Each opens
// the service (which reattaches to running VMs), validates its input with the
// operation's schema from core/schemas.ts, calls one method, renders, and
// closes the service; the VMs keep running for the next command.
import os from 'node:os';
import { Command } from 'commander';
import { InvalidArgumentError, IsletError } from '../../core/errors.js';
import {
  CreateInput, ExecInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ListInput,
} from '../../core/schemas.js';
import type { WorkspaceInfo } from '../../service/types.js';
import { json } from './format.js';
import { readBounded, readFileBounded } from './read-bounded.js';
import { statusTable } from './status.js';
import { Common, common, infoLines, int, ref, validate, withService } from './ws-common.js';
import { execDetached, registerWsProcesses, runOnTerminal } from './ws-process.js';
import { registerWsLifetime } from './ws-lifetime.js';
import { registerWsNetwork } from './ws-network.js';
import { registerWsSnapshots } from './ws-snapshot.js';

function octal(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-7]{1,5}$/.test(v)) throw new InvalidArgumentError(`${flag} must be octal permission bits such as 0644, got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}

const collect = (v: string, prev: string[]) => [...prev, v];


const toRow = (w: WorkspaceInfo) => ({ ...w, ip: w.network.ip, pid_alive: null });

function signalExit(name: string | null): number {
  const n = name ? (os.constants.signals as Record<string, number>)[name.startsWith('SIG') ? name : `SIG${name}`] : undefined;
  return 128 + (n ?? 1);
}

export function registerWs(program: Command): void {
  const ws = program.command('ws').description('create and use persistent workspaces (VMs that outlive the command)');

  common(ws.command('create').description('create a workspace and boot it'))
    .option('--name <name>', 'unique name, also the guest hostname (default: generated)')
    .option('--image <image>', 'image to boot (default [resources] default_image)')
    .option('--vcpus <n>', 'virtual CPUs (default [resources] default_vcpus)')
    .option('--memory <mb>', 'guest memory in MiB (default [resources] default_memory_mb)')
    .option('--disk <gb>', 'disk size in GiB (default [resources] default_disk_gb)')
    .option('--allow-internet', 'let the guest open connections out (default [network] default_allow_internet)')
    .option('--ttl <minutes>', 'stop it this many minutes after each start, keeping the disk; 0 = never (default [resources] default_ttl_minutes)')
    .action(async (f: Common & { name?: string; image?: string; vcpus?: string; memory?: string; disk?: string; allowInternet?: boolean; ttl?: string }) => {
      const input = validate(CreateInput, {
        name: f.name, image: f.image, vcpus: int('--vcpus', f.vcpus), memory_mb: int('--memory', f.memory), disk_gb: int('--disk', f.disk),
        allow_internet: f.allowInternet, ttl_minutes: int('--ttl', f.ttl),
      }, { name: '--name', image: '--image', vcpus: '--vcpus', memory_mb: '--memory', disk_gb: '--disk', ttl_minutes: '--ttl' });
      const w = await withService(f, (svc, c, signal) => svc.create(c, input, { signal }));
      if (f.json) json(w); else process.stdout.write(infoLines(w));
    });

  common(ws.command('list').description('list your workspaces (--all: everyone\'s)'))
    .option('--state <state>', 'only workspaces in this state (creating, running, stopped, failed)')
    .action(async (f: Common & { state?: string }) => {
      const input = validate(ListInput, { state: f.state }, { state: '--state' });
      const list = await withService(f, (svc, c) => svc.list(c, input));
      if (f.json) json(list);
      else process.stdout.write(list.length ? statusTable(list.map(toRow)) : 'no workspaces\n');
    });

  common(ws.command('info').description('show one workspace').argument('<id>', 'workspace id or name'))
    .action(async (id: string, f: Common) => {
      const input = ref(id);
      const w = await withService(f, (svc, c) => svc.info(c, input));
      if (f.json) json(w); else process.stdout.write(infoLines(w));
    });

  for (const [name, desc] of [['start', 'boot a stopped workspace'], ['stop', 'shut a workspace down, keeping its disk']] as const) {
    common(ws.command(name).description(desc).argument('<id>', 'workspace id or name'))
      .action(async (id: string, f: Common) => {
        const input = ref(id);
        const w = await withService(f, (svc, c, signal) => svc[name](c, input, { signal }));
        if (f.json) json(w); else process.stdout.write(`${w.name} (${w.workspace_id}): ${w.state}\n`);
      });
  }

  common(ws.command('destroy').description('stop a workspace and delete its disk').argument('<id>', 'workspace id or name'))
    .action(async (id: string, f: Common) => {
      const input = ref(id);
      const r = await withService(f, (svc, c, signal) => svc.destroy(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`destroyed ${r.workspace_id}\n`);
    });

  common(ws.command('exec').description('run a command in a workspace, streaming its output; exits with its exit code'))
    .argument('<id>', 'workspace id or name')
    .argument('[command...]', 'the command and its arguments (put them after --)')
    .option('--sh <script>', 'run this string with /bin/sh -c instead of an argv')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('--cwd <dir>', 'working directory in the guest (default /root)')
    .option('--timeout <ms>', 'kill the command after this many ms (default 30000)')
    .option('-i, --stdin', 'pass this process\'s stdin (text, up to 1 MiB) to the command')
    .option('-d, --detach', 'start it in the background and print its process id (see ws ps, ws logs, ws kill); no timeout unless --timeout')
    .option('-t, --tty', 'run it on a terminal wired to this one (raw mode, resize, ^C/^Z/^D reach it); exits with its status')
    .action(async (id: string, argv: string[], f: Common & { sh?: string; env: string[]; cwd?: string; timeout?: string; stdin?: boolean; detach?: boolean; tty?: boolean }) => {
      if (f.sh !== undefined && argv.length > 0) throw new InvalidArgumentError('give either --sh or a command, not both');
      if (f.sh === undefined && argv.length === 0) throw new InvalidArgumentError('no command given', 'islet ws exec ID -- uname -a   or   islet ws exec ID --sh "ls | wc -l"');
      const env: Record<string, string> = {};
      for (const kv of f.env) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new InvalidArgumentError(`--env ${JSON.stringify(kv)} is not KEY=VALUE`);
        env[kv.slice(0, i)] = kv.slice(i + 1);
      }
      if (f.detach || f.tty) {
        if (f.detach && f.tty) throw new InvalidArgumentError('give either --detach or --tty, not both');
        if (f.stdin) throw new InvalidArgumentError(`--stdin does not go with --${f.detach ? 'detach' : 'tty'}`);
        const start = { sh: f.sh, env, cwd: f.cwd, timeout: int('--timeout', f.timeout) };
        if (f.detach) return execDetached(id, f.sh ?? argv, start, f);
        process.exitCode = await runOnTerminal(id, f.sh ?? argv, start, f);
        return;
      }
      const input = validate(ExecInput, {
        workspace_id: id, command: f.sh ?? argv, env, cwd: f.cwd, timeout_ms: int('--timeout', f.timeout),
        stdin: f.stdin ? (await readBounded(process.stdin, ExecInput.shape.stdin.unwrap().maxLength ?? 1 << 20, '--stdin input')).toString('utf8') : undefined,
        // The CLI streams output, so it asks for the largest cap the schema allows.
        max_output_bytes: ExecInput.shape.max_output_bytes.unwrap().maxValue ?? undefined,
      }, { workspace_id: '<id>', command: f.sh === undefined ? 'command' : '--sh', env: '--env', cwd: '--cwd', timeout_ms: '--timeout', stdin: '--stdin' });
      const onData = f.json ? undefined : (stream: 'stdout' | 'stderr', chunk: Buffer) => { (stream === 'stdout' ? process.stdout : process.stderr).write(chunk); };
      const r = await withService(f, (svc, c, signal) => svc.exec(c, input, { signal, onData }));
      if (f.json) json(r);
      else {
        if (r.timed_out) process.stderr.write(`islet: command timed out after ${input.timeout_ms ?? 30_000} ms and was killed\n`);
        if (r.truncated) process.stderr.write('islet: output was truncated (per-stream cap reached)\n');
      }
      process.exitCode = r.exit_code ?? signalExit(r.signal);
    });

  common(ws.command('write').description('write a guest file from --from FILE or from stdin (binary-safe)'))
    .argument('<id>', 'workspace id or name')
    .argument('<guest-path>', 'absolute path in the guest')
    .option('--from <file>', 'host file to copy (default: read stdin)')
    .option('--mode <octal>', 'permission bits, e.g. 0755')
    .option('--no-parents', 'fail instead of creating missing parent directories')
    .action(async (id: string, guestPath: string, f: Common & { from?: string; mode?: string; parents: boolean }) => {
      // The most bytes whose base64 fits the schema's content limit; checked while reading.
      const maxBytes = Math.floor((FileWriteInput.shape.content.maxLength ?? 24 << 20) / 4) * 3;
      const hint = 'put the file under [server] transfer_dir and use islet ws upload';
      const bytes = f.from === undefined
        ? await readBounded(process.stdin, maxBytes, `stdin (ws write takes at most ${maxBytes} bytes)`, hint)
        : await readFileBounded(f.from, maxBytes, `--from ${f.from} (ws write takes at most ${maxBytes} bytes)`, hint);
      const input = validate(FileWriteInput, {
        workspace_id: id, path: guestPath, content: bytes.toString('base64'), encoding: 'base64', mode: octal('--mode', f.mode), create_parents: f.parents,
      }, { workspace_id: '<id>', path: '<guest-path>', mode: '--mode' });
      const r = await withService(f, (svc, c, signal) => svc.fileWrite(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`wrote ${r.bytes} bytes to ${r.path}\n`);
    });

  common(ws.command('read').description('print a guest file\'s raw bytes to stdout'))
    .argument('<id>', 'workspace id or name')
    .argument('<guest-path>', 'absolute path in the guest')
    .option('--max-bytes <n>', 'refuse files larger than this (default 1 MiB, at most 16 MiB)')
    .action(async (id: string, guestPath: string, f: Common & { maxBytes?: string }) => {
      const input = validate(FileReadInput, { workspace_id: id, path: guestPath, encoding: 'base64', max_bytes: int('--max-bytes', f.maxBytes) },
        { workspace_id: '<id>', path: '<guest-path>', max_bytes: '--max-bytes' });
      const r = await withService(f, (svc, c, signal) => svc.fileRead(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(Buffer.from(r.content, r.encoding));
    });

  common(ws.command('upload').description('copy a host file (confined to [server] transfer_dir) into the guest'))
    .argument('<id>', 'workspace id or name')
    .argument('<host-path>', 'relative to [server] transfer_dir, or absolute inside it')
    .argument('<guest-path>', 'absolute destination path in the guest')
    .option('--mode <octal>', 'permission bits, e.g. 0755')
    .action(async (id: string, hostPath: string, guestPath: string, f: Common & { mode?: string }) => {
      const input = validate(FileUploadInput, { workspace_id: id, host_path: hostPath, guest_path: guestPath, mode: octal('--mode', f.mode) },
        { workspace_id: '<id>', host_path: '<host-path>', guest_path: '<guest-path>', mode: '--mode' });
      const r = await withService(f, (svc, c, signal) => svc.fileUpload(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`uploaded ${r.bytes} bytes: ${r.host_path} -> ${r.guest_path}\n`);
    });

  common(ws.command('download').description('copy a guest file to the host (confined to [server] transfer_dir)'))
    .argument('<id>', 'workspace id or name')
    .argument('<host-path>', 'destination, relative to [server] transfer_dir or absolute inside it')
    .argument('<guest-path>', 'absolute source path in the guest')
    .option('--overwrite', 'replace an existing host file')
    .action(async (id: string, hostPath: string, guestPath: string, f: Common & { overwrite?: boolean }) => {
      const input = validate(FileDownloadInput, { workspace_id: id, host_path: hostPath, guest_path: guestPath, overwrite: f.overwrite === true },
        { workspace_id: '<id>', host_path: '<host-path>', guest_path: '<guest-path>' });
      const r = await withService(f, (svc, c, signal) => svc.fileDownload(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`downloaded ${r.bytes} bytes: ${r.guest_path} -> ${r.host_path}\n`);
    });

  registerWsSnapshots(ws);
  registerWsProcesses(ws);
  registerWsLifetime(ws);
  registerWsNetwork(ws);
}
