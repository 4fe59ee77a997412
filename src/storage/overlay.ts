// Per-VM copy-on-write disks: a qcow2 overlay whose backing file is the
// shared, read-only base image. The base is never opened for writing.
import { rm } from 'node:fs/promises';
import { run } from '../host/run.js';

export interface OverlayInfo {
  virtualSize: number;
  actualSize: number;
  backingFile: string | undefined;
}

/**
 * Creates `overlay` backed by the raw `base`. With `sizeBytes` larger than the
 * base, the virtual disk is bigger and the guest grows its filesystem at boot.
 */
export async function createOverlay(base: string, overlay: string, sizeBytes?: number, signal?: AbortSignal): Promise<void> {
  const argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, overlay];
  if (sizeBytes !== undefined) argv.push(String(sizeBytes));
  await run(argv, { timeoutMs: 30_000, signal });
}

/** Creates an empty qcow2 `overlay` backed by the qcow2 `backing` (a snapshot); it inherits the virtual size. */
export async function createChildOverlay(backing: string, overlay: string, signal?: AbortSignal): Promise<void> {
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, overlay], { timeoutMs: 30_000, signal });
}

export async function overlayInfo(overlay: string): Promise<OverlayInfo> {
  const r = await run(['qemu-img', 'info', '--output=json', '-U', overlay], { timeoutMs: 30_000 });
  const v = JSON.parse(r.stdout) as { 'virtual-size': number; 'actual-size': number; 'backing-filename'?: string };
  return { virtualSize: v['virtual-size'], actualSize: v['actual-size'], backingFile: v['backing-filename'] };
}

export async function removeOverlay(overlay: string): Promise<void> {
  await rm(overlay, { force: true });
}

/** The disk operations the service uses, so its unit tests can run on storage/fake.ts instead of qemu-img. */
export interface DiskDriver {
  createOverlay(base: string, overlay: string, sizeBytes?: number, signal?: AbortSignal): Promise<void>;
  createChildOverlay(backing: string, overlay: string, signal?: AbortSignal): Promise<void>;
  overlayInfo(overlay: string): Promise<OverlayInfo>;
}

export const qemuImgDisks: DiskDriver = { createOverlay, createChildOverlay, overlayInfo };
