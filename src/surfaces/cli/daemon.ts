// `islet daemon [run|status|stop]`: the process that owns a data dir's VMs.
// Clients (islet serve, islet ws, the SDK) start it on demand; run it by hand
// (or from systemd) to choose its flags, e.g. TCP with --tcp.
import { Command } from 'commander';
import { loadConfig } from '../../core/config.js';
import { IsletError } from '../../core/errors.js';
import { pidAlive } from '../../host/pid.js';
import { ApiClient } from '../../sdk/api.js';
import { daemonPid, socketAnswers } from '../daemon/connect.js';
import { runDaemon } from '../daemon/daemon.js';
import { daemonPaths } from '../daemon/paths.js';
import { portFlag } from './serve.js';
import { stderrProgress } from './progress.js';

interface RunFlags { config?: string; tcp?: boolean; host?: string; port?: string; quiet?: boolean }

/** Runs the daemon in this process until SIGINT/SIGTERM or its idle exit. */
export async function runDaemonForeground(flags: RunFlags): Promise<void> {
  const config = loadConfig(flags.config);
  const wantTcp = flags.tcp === true || config.server.daemon_tcp;
  const tcp = wantTcp ? { host: flags.host ?? config.server.http_host, port: flags.port === undefined ? config.server.http_port : portFlag(flags.port) } : undefined;
  const d = await runDaemon(config, { progress: flags.quiet ? undefined : stderrProgress(), tcp });
  process.stderr.write(`islet daemon: pid ${process.pid}, listening on unix:${d.socket}${d.tcpUrl ? ` and ${d.tcpUrl}` : ''}\n`);
  if (d.tcpUrl) {
    process.stderr.write(`islet: MCP Streamable HTTP on ${d.tcpUrl}/mcp\n`);
    if (config.server.tokens.length === 0) {
      process.stderr.write('islet: no [server] tokens: each MCP session owns its own workspaces and a reconnect starts with none; '
        + 'REST over TCP is refused (use the unix socket) (see docs/daemon.md)\n');
    }
  }
  const onSignal = (sig: NodeJS.Signals) => { void d.stop(sig); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const why = await d.stopped;
  process.stderr.write(`islet daemon: stopped (${why}); VMs keep running\n`);
  // A stuck client connection must not keep a stopped daemon alive.
  setTimeout(() => process.exit(0), 3_000).unref();
}

export function registerDaemon(program: Command): void {
  const daemon = program.command('daemon').description('the islet daemon: one per data dir, owns the VMs; clients start it when needed');
  daemon.command('run', { isDefault: true })
    .description('run the daemon in the foreground (unix socket in the run dir; TCP with --tcp or [server] daemon_tcp)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--tcp', 'also listen on [server] http_host:http_port (REST /v1 needs [server] tokens there; /mcp as islet serve --http)')
    .option('--host <host>', 'TCP bind address (default [server] http_host)')
    .option('--port <port>', 'TCP port, 0 = any free port (default [server] http_port)')
    .option('-q, --quiet', 'no progress lines on stderr')
    .action(runDaemonForeground);
  daemon.command('status')
    .description('is a daemon running for this data dir; what it reports about the node')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print JSON')
    .action(async (flags: { config?: string; json?: boolean }) => {
      const config = loadConfig(flags.config);
      const paths = daemonPaths(config);
      if (!(await socketAnswers(paths.socket))) {
        if (flags.json) process.stdout.write(`${JSON.stringify({ running: false, socket: paths.socket })}\n`);
        else process.stdout.write(`islet daemon: not running (socket ${paths.socket})\n`);
        process.exitCode = 3; // as `systemctl status` for a stopped unit
        return;
      }
      const node = await new ApiClient({ socketPath: paths.socket }).node();
      const out = { running: true, pid: daemonPid(config) ?? null, socket: paths.socket, ...node };
      if (flags.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      else process.stdout.write(`islet daemon: running, pid ${out.pid ?? '?'}, socket ${paths.socket}\n${JSON.stringify(node, null, 2)}\n`);
    });
  daemon.command('stop')
    .description('stop the daemon (VMs keep running; the next client starts a new daemon, which re-attaches them)')
    .option('-c, --config <file>', 'config file (TOML)')
    .action(async (flags: { config?: string }) => {
      const config = loadConfig(flags.config);
      const pid = daemonPid(config);
      if (pid === undefined) {
        process.stdout.write('islet daemon: not running\n');
        return;
      }
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 30_000;
      while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (pidAlive(pid)) {
        // It holds no state a kill loses: VMs run on, and the next daemon reconciles (as after a crash).
        process.kill(pid, 'SIGKILL');
        process.stdout.write(`islet daemon: pid ${pid} did not stop within 30 s; killed it (VMs keep running)\n`);
        return;
      }
      process.stdout.write(`islet daemon: stopped pid ${pid}\n`);
    });
}
