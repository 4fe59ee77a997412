// `islet serve`: what MCP clients launch. Over stdio (default) it is a front
// for the data dir's daemon, starting it when none runs, so any number of MCP
// clients, CLI commands and SDK programs share one set of VMs. With --http it
// runs the daemon itself in the foreground with its TCP listener.
// stdout belongs to the stdio protocol, so everything human goes to stderr.
import { Command } from 'commander';
import { ConfigSchema, loadConfig } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { ensureDaemon } from '../daemon/connect.js';
import { runDaemonForeground } from './daemon.js';
import { bridgeStdio } from './stdio-bridge.js';

interface ServeFlags {
  config?: string;
  http?: boolean;
  host?: string;
  port?: string;
  owner?: string;
  quiet?: boolean;
}

const Owner = ConfigSchema.shape.server.removeDefault().shape.stdio_owner.removeDefault();

export function registerServe(program: Command): void {
  program.command('serve')
    .description('serve the islet MCP tools over stdio (default; through the daemon) or Streamable HTTP (--http: run the daemon here with TCP)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--http', 'run the daemon in the foreground, serving /mcp (and REST /v1) on [server] http_host:http_port too')
    .option('--host <host>', 'HTTP bind address (default [server] http_host)')
    .option('--port <port>', 'HTTP port, 0 = any free port (default [server] http_port)')
    .option('--owner <owner>', 'stdio: owner of this client\'s workspaces (default [server] stdio_owner)')
    .option('-q, --quiet', 'no progress lines on stderr')
    .action(async (flags: ServeFlags) => {
      if (!flags.http && (flags.host !== undefined || flags.port !== undefined)) {
        throw new InvalidArgumentError('--host and --port only apply with --http', 'islet serve --http --port 7420');
      }
      if (flags.http) {
        await runDaemonForeground({ config: flags.config, tcp: true, host: flags.host, port: flags.port, quiet: flags.quiet });
        return;
      }
      const config = loadConfig(flags.config);
      if (flags.owner !== undefined && !Owner.safeParse(flags.owner).success) {
        throw new InvalidArgumentError(`--owner ${JSON.stringify(flags.owner)}: 1 to 64 letters, digits, "_", ".", "@" or "-"`);
      }
      const owner = flags.owner ?? config.server.stdio_owner;
      if (!flags.quiet) process.stderr.write(`islet: MCP on stdio through the daemon of ${config.paths.dataDir} (owner "${owner}")\n`);
      const why = await bridgeStdio(() => ensureDaemon(config), owner);
      if (!flags.quiet) process.stderr.write(`islet: stopping (${why}); VMs keep running\n`);
      setTimeout(() => process.exit(), 1_000).unref();
    });
}

export function portFlag(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(v)}`);
  }
  return n;
}
