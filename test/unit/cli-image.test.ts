// `islet image list` rendering: the columns the catalog promises, from rows
// as listImages returns them (no builds, no VMs).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CatalogRow } from '../../src/images/catalog.js';
import { imageListTable } from '../../src/surfaces/cli/image.js';

const row = (o: Partial<CatalogRow>): CatalogRow => ({
  name: 'x', parent: null, initMode: 'fast', hasRecipe: true, built: true, key: 'k', usedBytes: 100 * 2 ** 20, fileBytes: 356 * 2 ** 20,
  builtAt: '2026-11-23T12:13:54.847Z', buildMs: 52_000, builds: 1, referenceMB: null, ...o,
});

test('image list: name, parent, size, built at, recipe hash and the kernel it boots', () => {
  const now = Date.parse('2026-11-23T14:13:54.847Z');
  const out = imageListTable([
    row({ name: 'base', key: '8b4e89655cdb48d7', referenceMB: 64 }),
    row({ name: 'dev', parent: 'base', key: '80e8bbd4ffa6a2a3', builds: 2 }),
    row({ name: 'agent-ready', parent: 'dev', built: false, key: null, usedBytes: null, fileBytes: null, builtAt: null, buildMs: null }),
    row({ name: 'mine', hasRecipe: false, key: 'abcd' }),
  ], 'distro 6.1.0-56-cloud-amd64', now);
  const [head, ...lines] = out.trimEnd().split('\n');
  assert.deepEqual(head?.split(/\s{2,}/), ['NAME', 'PARENT', 'INIT', 'SIZE', 'REFERENCE', 'FILE', 'BUILT AT', 'BUILD TIME', 'RECIPE HASH', 'KERNEL', 'NOTE']);
  const cells = (name: string) => lines.find((l) => l.startsWith(`${name} `))?.split(/\s{2,}/) ?? [];
  assert.deepEqual(cells('dev').slice(0, 11),
    ['dev', 'base', 'fast', '100.0 MiB', '-', '356.0 MiB', '2026-11-23 12:13Z (2h ago)', '52.0 s', '80e8bbd4ffa6a2a3', 'distro 6.1.0-56-cloud-amd64', '2 builds cached']);
  assert.deepEqual(cells('agent-ready').slice(0, 10), ['agent-ready', 'dev', 'fast', '-', '-', '-', '-', '-', '-', 'distro 6.1.0-56-cloud-amd64']);
  assert.deepEqual(cells('base').slice(3, 5), ['100.0 MiB', '~64 MB'], 'base is set against agentkernel\'s 64 MB');
  assert.match(cells('agent-ready').at(-1) ?? '', /not built/);
  assert.match(cells('mine').at(-1) ?? '', /no recipe, imported/);
});
