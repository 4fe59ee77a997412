// Builds islet-egress (egress/), the user-mode egress proxy run on the host
// per guest connection (ADR 0009).
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import { ensureGoHelper } from '../images/go-helper.js';
import { packageRoot } from '../images/paths.js';

export const EGRESS_BINARY = 'islet-egress';
export const egressSourceDir = path.join(packageRoot, 'egress');

export async function ensureEgressHelper(config: Config, progress: Progress, signal?: AbortSignal): Promise<string> {
  const h = { kind: 'egress', label: 'egress helper', sourceDir: egressSourceDir, binary: EGRESS_BINARY, guest: false };
  return (await ensureGoHelper(h, config, progress, signal)).path;
}
