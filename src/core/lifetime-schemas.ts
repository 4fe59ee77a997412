// Inputs of the lifetime operations (src/service/lifetimes.ts), shared by MCP, REST and the CLI.
import { z } from 'zod';
import { WorkspaceId } from './schemas.js';

/** Whole minutes, 0 = never; at most a year. */
export const LifetimeMinutes = z.number().int().min(0).max(525_600);

const setting = (what: string) => LifetimeMinutes.nullable().optional()
  .describe(`${what}; 0 = never, null = back to the host default ([resources] default_*), omitted = unchanged`);

export const SetLifetimeInput = z.object({
  workspace_id: WorkspaceId,
  ttl_minutes: setting('stop the running workspace this many minutes from now (and after each later start)'),
  idle_stop_minutes: setting('stop it after this many minutes with no exec, process output or client call'),
  retention_minutes: setting('destroy it (disk and snapshots) this many minutes after it stopped'),
});
export type SetLifetimeInput = z.infer<typeof SetLifetimeInput>;
