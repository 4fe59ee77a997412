// Accelerator choice. A /dev/kvm that opens is not proof that KVM runs
// guests (our build hosts expose KVM-PVM, where ordinary guests hang), so
// "auto" boots a short canary under KVM and falls back to TCG. The verdict
// is cached per (QEMU, host kernel, guest kernel) so it is paid once.
import { constants, readFileSync } from 'node:fs';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Accel } from './argv.js';

export interface AccelChoice {
  accel: Accel;
  reason: string;
  /** True when the answer came from the cache file, not a canary run now. */
  cached: boolean;
  canaryMs?: number;
}

export interface AccelProbe {
  configured: 'auto' | Accel;
  /** Whether /dev/kvm exists and is read-write for us. */
  kvmDevice: () => Promise<boolean>;
  /** Boots a canary VM under KVM; resolves true if the guest agent answered. */
  canary: () => Promise<{ ok: boolean; detail: string; ms: number }>;
  /** Where to remember the verdict; undefined disables caching. */
  cacheFile?: string;
  /** Anything that should invalidate the cached verdict when it changes. */
  cacheKey: string;
}

export async function kvmDeviceUsable(dev = '/dev/kvm'): Promise<boolean> {
  try {
    await access(dev, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Host TSC in kHz, for tsc_early_khz: microvm guests cannot calibrate it. */
export function tscKhz(cpuinfo?: string): number | undefined {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(text);
  return m ? Math.round(Number.parseFloat(m[1]!) * 1000) : undefined;
}

export async function chooseAccel(p: AccelProbe): Promise<AccelChoice> {
  if (p.configured !== 'auto') return { accel: p.configured, reason: `configured: [vm] accel = "${p.configured}"`, cached: false };
  if (!(await p.kvmDevice())) return { accel: 'tcg', reason: '/dev/kvm is missing or not read-write for this user', cached: false };
  if (p.cacheFile) {
    const hit = await readCache(p.cacheFile, p.cacheKey);
    if (hit) return { ...hit, cached: true };
  }
  const r = await p.canary();
  const choice: AccelChoice = r.ok
    ? { accel: 'kvm', reason: `KVM canary booted in ${r.ms} ms`, cached: false, canaryMs: r.ms }
    : { accel: 'tcg', reason: `KVM canary failed (${r.detail}); using TCG`, cached: false, canaryMs: r.ms };
  if (p.cacheFile) await writeCache(p.cacheFile, p.cacheKey, choice);
  return choice;
}

export function accelCacheKey(parts: { qemuVersion: string; kernelKey: string }): string {
  return JSON.stringify({ ...parts, host: os.release() });
}

async function readCache(file: string, key: string): Promise<Omit<AccelChoice, 'cached'> | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as { key?: string; accel?: string; reason?: string };
    if (v.key !== key || (v.accel !== 'kvm' && v.accel !== 'tcg')) return undefined;
    return { accel: v.accel, reason: `${v.reason ?? ''} (cached)` };
  } catch {
    return undefined;
  }
}

async function writeCache(file: string, key: string, c: AccelChoice): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ key, accel: c.accel, reason: c.reason, at: new Date().toISOString() }));
  await rename(tmp, file);
}
