// `islet serve`: the MCP server, over stdio (default) or Streamable HTTP.
// stdout belongs to the stdio protocol, so everything human goes to stderr.
// Stopping the server leaves VMs running; the next serve reattaches to them.
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { Command } from 'commander';
import { loadConfig } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { WorkspaceService } from '../../service/workspaces.js';
import { MAX_BODY_BYTES, assertSafeBind, startHttpServer } from '../mcp/http.js';
import { createMcpServer } from '../mcp/server.js';
import { stderrProgress } from './progress.js';

interface ServeFlags {
  config?: string;
  http?: boolean;
  host?: string;
  port?: string;
  quiet?: boolean;
}

export function registerServe(program: Command): void {
  program.command('serve')
    .description('serve the islet MCP tools over stdio (default) or Streamable HTTP (--http)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--http', 'serve Streamable HTTP on [server] http_host:http_port instead of stdio')
    .option('--host <host>', 'HTTP bind address (default [server] http_host)')
    .option('--port <port>', 'HTTP port, 0 = any free port (default [server] http_port)')
    .option('-q, --quiet', 'no progress lines on stderr')
    .action(async (flags: ServeFlags) => {
      if (!flags.http && (flags.host !== undefined || flags.port !== undefined)) {
        throw new InvalidArgumentError('--host and --port only apply with --http', 'islet serve --http --port 7420');
      }
      const config = loadConfig(flags.config);
      const host = flags.host ?? config.server.http_host;
      const port = flags.port === undefined ? config.server.http_port : portFlag(flags.port);
      if (flags.http) assertSafeBind(config, host);
      const progress = flags.quiet ? undefined : stderrProgress();
      // A long-lived server is where a warm pool pays: it follows [pool] enabled.
      const svc = await WorkspaceService.open(config, { progress, pool: config.pool.enabled });
      let closeTransport: () => Promise<void>;
      let endStdio: (why: string) => void = () => {};
      const stopped = new Promise<string>((resolve) => {
        endStdio = resolve;
        const onSignal = (sig: NodeJS.Signals) => resolve(sig);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        // A stdio client that goes away closes our stdin: that is the end of the session.
        if (!flags.http) {
          process.stdin.once('end', () => resolve('stdin closed'));
          process.stdin.once('close', () => resolve('stdin closed'));
        }
      });
      try {
        if (flags.http) {
          const http = await startHttpServer(svc, config, { host, port });
          closeTransport = http.close;
          process.stderr.write(`islet: MCP Streamable HTTP on ${http.url}\n`);
          if (config.server.tokens.length === 0) {
            process.stderr.write('islet: no [server] tokens: each MCP session owns its own workspaces and a reconnect starts '
              + 'with none (see docs/mcp.md)\n');
          }
        } else {
          const server = createMcpServer(svc, () => ({ owner: config.server.stdio_owner, admin: config.server.stdio_admin }));
          // Requests as big as HTTP takes (file_write content); the SDK's default 10 MiB would drop an 11 MiB
          // file_write and close the transport. Results stay far below the client's 10 MiB ([server] max_result_bytes).
          const transport = new StdioServerTransport(process.stdin, process.stdout, { maxBufferSize: MAX_BODY_BYTES });
          // A transport the SDK closed (an oversized message) must end the process, not leave it up but deaf.
          server.server.onclose = () => endStdio('stdio transport closed');
          await server.connect(transport);
          closeTransport = () => server.close();
          if (!flags.quiet) process.stderr.write(`islet: MCP on stdio (owner "${config.server.stdio_owner}")\n`);
        }
        const why = await stopped;
        if (!flags.quiet) process.stderr.write(`islet: stopping (${why}); VMs keep running\n`);
        await closeTransport();
      } finally {
        await svc.close();
        // Anything still holding the event loop (a stuck client socket) must not keep a stopped server alive.
        setTimeout(() => process.exit(), 3_000).unref();
      }
    });
}

function portFlag(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(v)}`);
  }
  return n;
}
