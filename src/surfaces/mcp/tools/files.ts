// File tools: content through the MCP message (file_write, file_read) and
// host files confined to [server] transfer_dir (file_upload, file_download).
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput } from '../../../core/schemas.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type { Caller } from '../../../service/types.js';
import { toToolResult } from '../result.js';

const transferFields = {
  host_path: z.string().describe('the host file, inside [server] transfer_dir'),
  guest_path: z.string(),
  bytes: z.number().int().nonnegative(),
};
const writeFields = { path: z.string(), bytes: z.number().int().nonnegative() };
const readFields = {
  path: z.string(),
  content: z.string(),
  encoding: z.enum(['utf8', 'base64']),
  bytes: z.number().int().nonnegative(),
};

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('file_write', {
    title: 'Write a file in a workspace',
    description:
      'Creates or replaces a file in the guest with the given content (utf8 text, or base64 for binary), creating '
      + 'parent directories unless create_parents is false. For files that already exist on the host, file_upload '
      + 'avoids sending the content through the conversation.',
    inputSchema: FileWriteInput.shape,
    outputSchema: writeFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileWrite(callerOf(), args, { signal: extra.signal }),
    { output: writeFields, summary: (o) => `wrote ${String(o.bytes)} bytes to ${String(o.path)}` }));

  server.registerTool('file_read', {
    title: 'Read a file from a workspace',
    description:
      'Returns a guest file\'s content, as utf8 text or base64 (use base64 for binary files). Files over max_bytes '
      + '(default 1 MiB) fail with FILE_TOO_LARGE: read a slice with exec (head, tail, sed -n) or copy the file to the '
      + 'host with file_download.',
    inputSchema: FileReadInput.shape,
    outputSchema: readFields,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileRead(callerOf(), args, { signal: extra.signal }),
    { output: readFields, summary: (o) => (o.encoding === 'utf8' ? String(o.content) : JSON.stringify(o)) }));

  server.registerTool('file_upload', {
    title: 'Copy a host file into a workspace',
    description:
      'Copies a file from the host into the guest. host_path is relative to the server\'s [server] transfer_dir (or '
      + 'absolute inside it); paths that leave it, including through symlinks, fail with PATH_OUTSIDE_ALLOWED. Size is '
      + 'limited by [server] max_transfer_bytes.',
    inputSchema: FileUploadInput.shape,
    outputSchema: transferFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileUpload(callerOf(), args, { signal: extra.signal }),
    { output: transferFields, summary: (o) => `copied ${String(o.bytes)} bytes from host ${String(o.host_path)} to ${String(o.guest_path)}` }));

  server.registerTool('file_download', {
    title: 'Copy a file from a workspace to the host',
    description:
      'Copies a guest file to the host under the server\'s [server] transfer_dir (host_path relative to it, parents '
      + 'created). Refuses paths outside transfer_dir (PATH_OUTSIDE_ALLOWED) and existing files unless overwrite is '
      + 'true. Size is limited by [server] max_transfer_bytes.',
    inputSchema: FileDownloadInput.shape,
    outputSchema: transferFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileDownload(callerOf(), args, { signal: extra.signal }),
    { output: transferFields, summary: (o) => `copied ${String(o.bytes)} bytes from ${String(o.guest_path)} to host ${String(o.host_path)}` }));
}
