// An in-memory-format twin of overlay.ts for unit tests: an "overlay" is a
// small JSON file naming its backing file and size, so the service's chain
// logic (snapshots, restores, forks, crash recovery) runs without qemu-img.
import { readFile, stat, writeFile } from 'node:fs/promises';
import type { DiskDriver, OverlayInfo } from './overlay.js';

interface FakeOverlay { fake: 'qcow2'; backing: string; size: number }

export async function writeFakeOverlay(file: string, backing: string, size: number): Promise<void> {
  await writeFile(file, JSON.stringify({ fake: 'qcow2', backing, size } satisfies FakeOverlay), { mode: 0o600 });
}

async function readFake(file: string): Promise<FakeOverlay> {
  return JSON.parse(await readFile(file, 'utf8')) as FakeOverlay;
}

export const fakeDisks: DiskDriver = {
  async createOverlay(base, overlay, sizeBytes) {
    const size = sizeBytes ?? (await stat(base)).size;
    await writeFakeOverlay(overlay, base, size);
  },
  async createChildOverlay(backing, overlay) {
    await writeFakeOverlay(overlay, backing, (await readFake(backing)).size);
  },
  async overlayInfo(overlay): Promise<OverlayInfo> {
    const o = await readFake(overlay);
    return { virtualSize: o.size, actualSize: (await stat(overlay)).size, backingFile: o.backing };
  },
};
