// The Runtime holds what every VM of this host shares: config, built
// artifacts, the accelerator verdict. It boots Machines; the workspace
// service builds on it.
import { statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { firstLine, IsletError } from '../core/errors.js';
import { Progress, silent } from '../core/progress.js';
import { connectAgent } from '../guest/agent.js';
import { qemuImgDisks } from '../storage/overlay.js';
import { AccelChoice, accelCacheKey, chooseAccel, kvmDeviceUsable, tscKhz } from '../vmm/accel.js';
import { QemuDriver } from '../vmm/qemu-driver.js';
import { resolveBootArtifacts } from './artifacts.js';
import { BootArtifacts, BootRequest, Drivers, Machine, MachineSpec } from './machine.js';
import { sweepOrphans } from './sweep.js';

export type { BootRequest } from './machine.js';

/** What a Runtime is built on; tests pass fakes (test/unit/service-fixture.ts). */
export interface RuntimeDeps {
  drivers?: Drivers;
  /** Where an image's kernel, initramfs and root filesystem are; default: the image cache (artifacts.ts). */
  artifacts?: (config: Config, image: string) => Promise<BootArtifacts & { kernelKey: string }>;
}

export function realDrivers(config: Config): Drivers {
  return { vmm: new QemuDriver(config.vm.qemu_binary), connectAgent, disks: qemuImgDisks };
}

export class Runtime {
  private accelChoice: AccelChoice | undefined;
  readonly drivers: Drivers;
  private readonly resolveArtifacts: NonNullable<RuntimeDeps['artifacts']>;

  private constructor(readonly config: Config, private readonly progress: Progress, deps: RuntimeDeps) {
    this.drivers = deps.drivers ?? realDrivers(config);
    this.resolveArtifacts = deps.artifacts ?? resolveBootArtifacts;
  }

  static async open(config: Config, o: { progress?: Progress } & RuntimeDeps = {}): Promise<Runtime> {
    const rt = new Runtime(config, o.progress ?? silent, o);
    await Promise.all([
      mkdir(config.paths.runDir, { recursive: true, mode: 0o700 }),
      mkdir(rt.diskDir, { recursive: true, mode: 0o700 }),
    ]);
    const swept = await sweepOrphans(config.paths.runDir);
    if (swept.removed.length) rt.progress(`removed ${swept.removed.length} VM(s) left by a dead islet process`);
    return rt;
  }

  get diskDir(): string {
    return path.join(this.config.paths.dataDir, 'disks');
  }

  async artifacts(image = 'base'): Promise<BootArtifacts & { kernelKey: string }> {
    return this.resolveArtifacts(this.config, image);
  }

  qemuVersion(): Promise<string> {
    return this.drivers.vmm.version();
  }

  /** The accelerator verdict, from config, the cache, or a canary boot now. */
  async accel(): Promise<AccelChoice> {
    if (this.accelChoice) return this.accelChoice;
    const art = await this.artifacts('base');
    this.accelChoice = await chooseAccel({
      configured: this.config.vm.accel,
      kvmDevice: () => kvmDeviceUsable(),
      cacheFile: path.join(this.config.paths.cacheDir, 'accel.json'),
      cacheKey: accelCacheKey({ qemuVersion: await this.qemuVersion(), kernelKey: art.kernelKey }),
      canary: async () => {
        this.progress(`probing KVM with a canary boot (up to ${this.config.vm.canary_timeout_ms} ms)`);
        const t0 = performance.now();
        try {
          const m = await this.bootWith(art, 'kvm', { bootTimeoutMs: this.config.vm.canary_timeout_ms });
          await m.destroy({ graceMs: 500 });
          return { ok: true, detail: 'agent answered', ms: Math.round(performance.now() - t0) };
        } catch (e) {
          const detail = e instanceof IsletError ? `${e.code}: ${firstLine(e)}` : String(e);
          return { ok: false, detail, ms: Math.round(performance.now() - t0) };
        }
      },
    });
    this.progress(`accelerator: ${this.accelChoice.accel} (${this.accelChoice.reason})`);
    return this.accelChoice;
  }

  async boot(req: BootRequest = {}): Promise<Machine> {
    const m = await Machine.boot(await this.machineSpec(req));
    this.progress(`VM ${m.id} ready in ${m.bootMs} ms`);
    return m;
  }

  /** The whole spec of a boot: the request, completed from the config, the image's artifacts and the accelerator. */
  async machineSpec(req: BootRequest = {}): Promise<MachineSpec> {
    const art = await this.artifacts(req.image ?? 'base');
    const { accel } = await this.accel();
    this.progress(`booting a ${req.image ?? 'base'} VM under ${accel}`);
    return this.specWith(art, accel, req);
  }

  private bootWith(art: BootArtifacts, accel: 'kvm' | 'tcg', req: BootRequest & { bootTimeoutMs?: number }): Promise<Machine> {
    return Machine.boot(this.specWith(art, accel, req));
  }

  private specWith(art: BootArtifacts, accel: 'kvm' | 'tcg', req: BootRequest & { bootTimeoutMs?: number }): MachineSpec {
    const c = this.config;
    return {
      ...req,
      artifacts: art,
      accel,
      runDir: c.paths.runDir,
      diskDir: this.diskDir,
      vcpus: req.vcpus ?? c.resources.default_vcpus,
      memoryMb: req.memoryMb ?? c.resources.default_memory_mb,
      // The overlay may not be smaller than its base, or the guest sees a truncated filesystem.
      diskBytes: Math.max(req.diskBytes ?? 2 * 1024 ** 3, statSync(art.rootfs).size),
      tcgTbSizeMb: req.tcgTbSizeMb ?? c.vm.tcg_tb_size_mb,
      tscKhz: tscKhz(),
      qemuBinary: c.vm.qemu_binary,
      bootTimeoutMs: req.bootTimeoutMs ?? c.vm.boot_timeout_ms,
      requestTimeoutMs: c.vm.request_timeout_ms,
      drivers: this.drivers,
    };
  }

  /** Finds a VM that an earlier islet process left running; undefined if it is gone. */
  async reattach(req: { id: string; disk: string; image: string; vcpus: number; memoryMb: number }): Promise<Machine | undefined> {
    const art = await this.artifacts(req.image).catch(() => undefined);
    const dir = path.join(this.config.paths.runDir, 'vm', req.id);
    return Machine.reattach({
      id: req.id, disk: req.disk, timeoutMs: 5_000, requestTimeoutMs: this.config.vm.request_timeout_ms, drivers: this.drivers,
      vmSpec: {
        id: req.id, dir, disk: req.disk, kernel: art?.vmlinux ?? '', initrd: art?.initrd ?? '', vcpus: req.vcpus, memoryMb: req.memoryMb,
        accel: this.accelChoice?.accel ?? 'tcg', initMode: art?.initMode ?? 'fast', hostname: req.id,
      },
    });
  }
}
