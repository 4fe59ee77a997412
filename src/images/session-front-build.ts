// Builds islet-session-front (session-front/): the authenticating front of
// sessions restored from a session template (docs/sessions.md). It runs in
// the guest.
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import { ensureGoHelper } from './go-helper.js';
import { packageRoot } from './paths.js';

export const SESSION_FRONT_BINARY = 'islet-session-front';
export const sessionFrontSourceDir = path.join(packageRoot, 'session-front');

export interface SessionFront {
  path: string;
  /** The cache key: changes whenever the sources do, so templates holding an older front are not used. */
  key: string;
}

export function ensureSessionFront(config: Config, progress: Progress, signal?: AbortSignal): Promise<SessionFront> {
  const h = { kind: 'session-front', label: 'session front', sourceDir: sessionFrontSourceDir, binary: SESSION_FRONT_BINARY, guest: true };
  return ensureGoHelper(h, config, progress, signal);
}
