// File tools: content through the MCP message (file_write, file_read) and
// host files confined to [server] transfer_dir (file_upload, file_download).
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput } from '../../../core/schemas.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type { Caller } from '../../../service/types.js';
import { IsletError } from '../../../core/errors.js';
import { limitsFor } from '../limits.js';
import { toToolResult } from '../result.js';

const DEFAULT_READ_MAX = 1 << 20;
const SUMMARY_CHARS = 2000;

/** The content travels once, in structuredContent; the text block carries a short view of it. */
function readSummary(o: Record<string, unknown>): string {
  const content = String(o.content);
  const head = `${String(o.path)}: ${String(o.bytes)} bytes`;
  if (o.encoding !== 'utf8') return `${head}, not plain text (base64 in the structured result)`;
  if (content.length <= SUMMARY_CHARS) return `${head}\n${content}`;
  return `${head} (first ${SUMMARY_CHARS} characters; all of it in the structured result)\n${content.slice(0, SUMMARY_CHARS)}`;
}

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
  const maxResult = svc.config.server.max_result_bytes;
  const maxTransfer = svc.config.server.max_transfer_bytes;
  server.registerTool('file_write', {
    title: 'Write a file in a workspace',
    description:
      'Creates or replaces a file in the guest with the given content (utf8 text, or base64 for binary; content that '
      + 'is not valid base64 fails with INVALID_ARGUMENT), creating parent directories unless create_parents is false. '
      + 'mode sets permission bits including setuid/setgid/sticky. content is at most 24 Mi characters. For files that '
      + 'already exist on the host, or large ones, file_upload avoids sending the content through the conversation.',
    inputSchema: FileWriteInput.shape,
    outputSchema: writeFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileWrite(callerOf(), args, { signal: extra.signal }),
    { output: writeFields, summary: (o) => `wrote ${String(o.bytes)} bytes to ${String(o.path)}` }));

  server.registerTool('file_read', {
    title: 'Read a file from a workspace',
    description:
      'Returns a guest file\'s content, as utf8 text or base64. A file that is not plain text (invalid UTF-8, a '
      + 'NUL byte, or mostly control bytes) comes back as base64 even when utf8 is asked: check the encoding field. Files over '
      + `max_bytes (default 1 MiB; over MCP at most ${maxResult} bytes, whatever you ask) fail with FILE_TOO_LARGE: read `
      + 'a slice with exec (head -c, tail -c, dd) or copy the whole file to the host with file_download '
      + `(up to ${maxTransfer} bytes).`,
    inputSchema: FileReadInput.shape,
    outputSchema: readFields,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(async () => {
    const max = Math.min(args.max_bytes ?? DEFAULT_READ_MAX, maxResult);
    const release = limitsFor(svc).reserveOutput('file_read', max);
    try {
      return await svc.fileRead(callerOf(), { ...args, max_bytes: max }, { signal: extra.signal });
    } catch (e) {
      if (e instanceof IsletError && e.code === 'FILE_TOO_LARGE') {
        throw new IsletError('FILE_TOO_LARGE', `${args.path} is over ${max} bytes, the most file_read returns here`,
          `copy it to the host with file_download (up to [server] max_transfer_bytes, ${maxTransfer}), or read a slice with exec (head -c, tail -c, dd)`,
          { path: args.path, maxBytes: max }, { cause: e });
      }
      throw e;
    } finally {
      release();
    }
  }, { output: readFields, summary: (o) => readSummary(o) }));

  server.registerTool('file_upload', {
    title: 'Copy a host file into a workspace',
    description:
      'Copies a file from the host into the guest. host_path is relative to the server\'s [server] transfer_dir (or '
      + 'absolute inside it); paths that leave it, including through symlinks, fail with PATH_OUTSIDE_ALLOWED, and '
      + `anything but a regular file (FIFO, device) with INVALID_ARGUMENT. Size is limited by [server] max_transfer_bytes (${maxTransfer} bytes).`,
    inputSchema: FileUploadInput.shape,
    outputSchema: transferFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileUpload(callerOf(), args, { signal: extra.signal }),
    { output: transferFields, summary: (o) => `copied ${String(o.bytes)} bytes from host ${String(o.host_path)} to ${String(o.guest_path)}` }));

  server.registerTool('file_download', {
    title: 'Copy a file from a workspace to the host',
    description:
      'Copies a guest file to the host under the server\'s [server] transfer_dir (host_path relative to it, parents '
      + 'created). This is the path for large content: the bytes never pass through the MCP message. Refuses paths '
      + 'outside transfer_dir (PATH_OUTSIDE_ALLOWED) and existing files unless overwrite is true; the host file changes '
      + `only when the whole copy succeeded. Size is limited by [server] max_transfer_bytes (${maxTransfer} bytes).`,
    inputSchema: FileDownloadInput.shape,
    outputSchema: transferFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fileDownload(callerOf(), args, { signal: extra.signal }),
    { output: transferFields, summary: (o) => `copied ${String(o.bytes)} bytes from ${String(o.guest_path)} to host ${String(o.host_path)}` }));
}
