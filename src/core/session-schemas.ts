// Agent sessions (src/service/sessions.ts): one schema per operation, shared
// by the REST routes (Bonfire's camelCase shapes), the MCP tools and the CLI.
import { z } from 'zod';

/** A session id is OpenCode's password and a systemd instance name and a directory name: letters, digits and "-" only. */
export const SESSION_ID = /^ses-[a-z0-9]{20}$/;
export const SessionId = z.string().regex(SESSION_ID, 'must be a session id such as ses-0123456789abcdefghij').describe('the session id (ses-...), as session_create returned it');

/**
 * Where the host may fetch from: https/http/ssh/git URLs, scp-like
 * user@host:path, or an absolute path on the daemon's host (confined to
 * [server] transfer_dir). Never an option (leading "-") or a transport helper
 * ("ext::", "fd::"), which would run programs on the host.
 */
export const RepoUrl = z.string().min(1).max(2048)
  .refine((u) => !u.startsWith('-'), 'must not start with "-"')
  .refine((u) => !/[\0-\x1f\x7f]/.test(u), 'must not contain control characters')
  .refine((u) => !u.includes('::'), 'must not name a git transport helper ("<transport>::<address>")')
  .refine((u) => /^(https?|ssh|git):\/\/[^/\s]+/.test(u) || /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\s]/.test(u) || u.startsWith('/'),
    'must be an https://, http://, ssh:// or git:// URL, user@host:path, or an absolute path on the daemon\'s host')
  .describe('the repository: https://, ssh:// or git:// URL, user@host:path, or an absolute path under the daemon\'s transfer_dir');

/** A branch name as git check-ref-format accepts it, minus what could read as an option or a range. */
export const Branch = z.string().min(1).max(255)
  .regex(/^[A-Za-z0-9._/+-]+$/, 'letters, digits and . _ / + - only')
  .refine((b) => !b.startsWith('-') && !b.startsWith('/') && !b.endsWith('/') && !b.endsWith('.') && !b.endsWith('.lock')
    && !b.includes('..') && !b.includes('//') && !b.split('/').some((p) => p.startsWith('.')), 'is not a valid git branch name')
  .describe('the branch to check out');

export const ImageRef = z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/).describe('the image (default agent-ready); it must have the agent user and opencode@.service');

export const SessionCreateInput = z.object({
  repoUrl: RepoUrl,
  branch: Branch,
  imageRef: ImageRef.optional(),
}).strict();
export type SessionCreateInput = z.infer<typeof SessionCreateInput>;

export const SESSION_STATES = ['creating', 'ready', 'failed', 'stopped'] as const;
export type SessionState = typeof SESSION_STATES[number];

export const SessionListInput = z.object({
  state: z.enum(SESSION_STATES).optional().describe('only sessions in this state'),
}).strict();
export type SessionListInput = z.infer<typeof SessionListInput>;

export const SessionRef = z.object({ sessionId: SessionId }).strict();
export type SessionRef = z.infer<typeof SessionRef>;

