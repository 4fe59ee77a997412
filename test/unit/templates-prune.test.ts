// Template pruning keeps KEEP_TEMPLATES of each kind: new plain shapes never
// push out a session template (minutes of OpenCode start to rebuild).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Runtime } from '../../src/service/runtime.js';
import { KEEP_TEMPLATES, Templates } from '../../src/service/templates.js';

test('prune keeps the most recently used of each kind: plain templates and session templates are counted apart', async () => {
  const cacheDir = await mkdtemp(path.join(os.tmpdir(), 'islet-tprune-'));
  try {
    const input = path.join(cacheDir, 'rootfs');
    await writeFile(input, 'x');
    const s = await stat(input);
    const files = [`${input}:${s.size}:${s.mtimeMs}:${s.ino}`];
    const root = path.join(cacheDir, 'templates');
    const make = async (name: string, age: number, warm?: string) => {
      const dir = path.join(root, name);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'meta.json'), JSON.stringify({ key: name, spec: {}, files, built_at: '', build_ms: 1, ...(warm ? { warm } : {}) }));
      const t = new Date(Date.now() - age * 1000);
      await utimes(dir, t, t);
    };
    await make('agent-ready-opencode-old', 1000, 'opencode'); // the oldest of all, but the only one of its kind
    for (let i = 0; i < KEEP_TEMPLATES + 2; i++) await make(`base-${i}`, i);
    const t = new Templates({ config: { paths: { cacheDir } } } as unknown as Runtime, () => undefined);
    const removed = (await t.prune()).map((d) => path.basename(d)).sort();
    assert.deepEqual(removed, [`base-${KEEP_TEMPLATES}`, `base-${KEEP_TEMPLATES + 1}`]);
    assert.ok((await readdir(root)).includes('agent-ready-opencode-old'));
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});
