// One McpServer per client connection (stdio process or HTTP session), with
// every islet tool registered. The transport decides who the caller is.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { WorkspaceService } from '../../service/workspaces.js';
import type { Caller } from '../../service/types.js';
import { guardTools } from './guard.js';
import { limitsFor } from './limits.js';
import { register as registerExec } from './tools/exec.js';
import { register as registerFiles } from './tools/files.js';
import { register as registerLifetime } from './tools/lifetime.js';
import { register as registerNetwork } from './tools/network.js';
import { register as registerProcess } from './tools/process.js';
import { register as registerSessions } from './tools/sessions.js';
import { register as registerSnapshots } from './tools/snapshots.js';
import { register as registerWorkspace } from './tools/workspace.js';

export const SERVER_INFO = { name: 'islet', title: 'islet microVM workspaces', version: '0.1.0' };

const INSTRUCTIONS =
  'islet gives you isolated Linux microVM workspaces. Create one with workspace_create, run commands with exec, move '
  + 'files with file_write/file_read (content) or file_upload/file_download (host files under the server\'s transfer '
  + 'directory), and workspace_destroy it when done. Tool errors are JSON {code, message, hint}: follow the hint.';

/** `caller` is asked on every tool call, so it can depend on state known only after initialization (the session id). */
export function createMcpServer(svc: WorkspaceService, caller: () => Caller): McpServer {
  const server = new McpServer(SERVER_INFO, { instructions: INSTRUCTIONS });
  guardTools(server, limitsFor(svc));
  registerWorkspace(server, svc, caller);
  registerLifetime(server, svc, caller);
  registerExec(server, svc, caller);
  registerFiles(server, svc, caller);
  registerNetwork(server, svc, caller);
  registerProcess(server, svc, caller);
  registerSnapshots(server, svc, caller);
  registerSessions(server, svc, caller);
  return server;
}
