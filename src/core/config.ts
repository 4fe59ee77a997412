// The config schema: TOML with agentiso's sections, every key optional with a
// documented default (docs/config.md), unknown keys rejected with their path.
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { DomainList, PortList } from './schemas.js';

const CIDR4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\/([0-9]|[12]\d|3[0-2])$/;

function defaultDataDir(): string {
  const xdg = process.env.XDG_DATA_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share'), 'islet');
}

/**
 * Unix socket paths must stay under ~100 bytes, so the base is short. The
 * name carries a hash of the data dir: two data dirs never share a run dir,
 * so one islet's cleanup can never touch another's VMs.
 */
function defaultRunDir(dataDir: string): string {
  const tag = createHash('sha256').update(dataDir).digest('hex').slice(0, 8);
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && xdg.length < 40) return path.join(xdg, `islet-${tag}`);
  return `/tmp/islet-${process.getuid?.() ?? 0}-${tag}`;
}

const absPath = z.string().min(1).refine((p) => path.isAbsolute(p), 'must be an absolute path');

const StorageSchema = z.object({
  data_dir: absPath.optional().describe('where workspace disks and state live; default $XDG_DATA_HOME/islet or ~/.local/share/islet'),
  cache_dir: absPath.optional().describe('built kernel, agent and images; default <data_dir>/cache'),
  run_dir: absPath.optional().describe('sockets and pid files; default $XDG_RUNTIME_DIR/islet-<hash> or /tmp/islet-<uid>-<hash of data_dir>'),
  zfs_pool: z.any().superRefine((_v, ctx) => ctx.addIssue({ code: z.ZodIssueCode.custom,
    message: 'not applicable in islet: disks are qcow2 overlays under [storage] data_dir (no ZFS)' })).optional(),
}).strict();

const VmSchema = z.object({
  accel: z.enum(['auto', 'kvm', 'tcg']).default('auto').describe('auto = KVM if a canary boot succeeds, else TCG'),
  kernel: z.enum(['auto', 'distro', 'custom']).default('auto')
    .describe('auto = the custom kernel when `islet kernel build` has built one, else the distro kernel + initramfs'),
  kernel_build: z.enum(['background', 'off']).default('background')
    .describe('background = `islet setup` starts `islet kernel build` in the background (nice 19) when kernel = auto or custom and none is built; VMs switch to it once it is ready'),
  kernel_path: absPath.optional().describe('a vmlinux to boot instead of the built one'),
  initrd_path: absPath.optional().describe('an initramfs to use instead of the built one'),
  qemu_binary: z.string().min(1).default('qemu-system-x86_64'),
  boot_timeout_ms: z.number().int().min(1000).max(600_000).default(120_000).describe('QEMU start to agent hello'),
  request_timeout_ms: z.number().int().min(100).max(600_000).default(30_000).describe('one agent request round trip'),
  tcg_tb_size_mb: z.number().int().min(0).max(1024).default(32).describe('TCG translation cache size; 0 = QEMU default'),
  restore_tcg_tb_size_mb: z.number().int().min(0).max(1024).default(0)
    .describe('TCG translation cache of VMs restored from a template (creates, pool VMs); 0 = tcg_tb_size_mb. Smaller: less host memory per idle VM, more retranslation'),
  canary_timeout_ms: z.number().int().min(500).max(120_000).default(8_000).describe('how long the KVM canary boot may take'),
}).strict();

const LifetimeMinutes = z.number().min(0).max(525_600).default(0);

const ResourcesSchema = z.object({
  default_image: z.string().regex(/^[a-z0-9][a-z0-9-]*$/).default('dev'),
  default_vcpus: z.number().int().min(1).max(64).default(1),
  default_memory_mb: z.number().int().min(64).max(65536).default(256),
  default_disk_gb: z.number().int().min(1).max(1024).default(2),
  max_vcpus: z.number().int().min(1).max(64).default(4),
  max_memory_mb: z.number().int().min(64).max(65536).default(4096),
  max_disk_gb: z.number().int().min(1).max(1024).default(64),
  max_workspaces: z.number().int().min(1).max(10_000).default(32).describe('across all owners'),
  max_workspaces_per_owner: z.number().int().min(1).max(10_000).default(16),
  // Lifetimes (src/service/lifetimes.ts). Minutes; 0 = never. Fractions are allowed here (0.5 = 30 s) so tests can use
  // short windows; the per-workspace values of the API are whole minutes.
  default_ttl_minutes: LifetimeMinutes.describe('a running workspace stops this long after it was created or last started; 0 = never'),
  default_idle_stop_minutes: LifetimeMinutes.describe('a running workspace stops after this long with no exec, process output or client call; 0 = never'),
  default_retention_minutes: LifetimeMinutes.describe('a stopped workspace is destroyed (disk and snapshots) this long after it stopped; 0 = never'),
}).strict();

/** agentiso keys that have no meaning in islet's design: refused with the reason, never ignored. */
const notApplicable = (why: string) => z.any().superRefine((_v, ctx) => ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not applicable in islet: ${why}` }));

const NetworkSchema = z.object({
  mode: z.enum(['none', 'user', 'bridge']).default('user')
    .describe('user = QEMU user-mode network per VM (no root); none = no network device; bridge = a TAP per VM on a host bridge, nftables policy (root)'),
  bridge_name: z.string().regex(/^[a-zA-Z0-9_-]{1,15}$/).default('br-islet'),
  gateway_ip: z.string().ip({ version: 'v4' }).default('10.42.0.1'),
  subnet_prefix: z.number().int().min(8).max(30).default(16),
  default_allow_internet: z.boolean().default(false),
  default_allow_inter_vm: z.boolean().default(false),
  default_allowed_ports: PortList.default([]).describe('bridge mode: guest TCP ports open to other guests and the host, for new workspaces'),
  default_allowed_domains: DomainList.default([]).describe('bridge mode: egress domain allowlist for new workspaces ([] = no limit)'),
  dns_upstream: z.array(z.string().ip({ version: 'v4' })).max(3).default([])
    .describe('resolvers the bridge DNS forwarder and the user-mode egress proxy ask; [] = the nameservers of /etc/resolv.conf'),
  allowed_private_cidrs: z.array(z.string().regex(CIDR4, 'must be an IPv4 CIDR such as 10.1.0.0/16')).max(64).default([])
    .describe('with internet on, private and shared ranges (RFC 1918, 100.64/10) guests may still reach; [] = none'),
  egress_ports: PortList.default([]).describe('with internet on, the destination TCP ports guests may connect to; [] = any'),
  vsock_cid_start: notApplicable('the agent channel is virtio-serial, there is no vsock').optional(),
}).strict();

const PoolSchema = z.object({
  enabled: z.boolean().default(true).describe('keep pre-booted VMs for workspace_create in `islet serve` (never in one-shot `islet ws`)'),
  min_size: z.number().int().min(0).max(1000).default(0).describe('never fewer pool VMs (of the default shape)'),
  max_size: z.number().int().min(0).max(1000).default(4).describe('never more pool VMs'),
  target_free: z.number().int().min(0).max(1000).default(1).describe('ready VMs to keep per shape'),
  max_memory_mb: z.number().int().min(0).max(1 << 20).default(2048).describe('guest memory all pool VMs together may have'),
  template: z.boolean().default(true).describe('start workspaces by restoring a template snapshot of their image (built on first use)'),
  session_templates: z.array(z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9-]*$/)).max(16).default([])
    .describe('images whose session template (OpenCode started once, docs/sessions.md) `islet serve` builds in the background at start; [] = built on the first session'),
}).strict();

const TokenSchema = z.object({
  token: z.string().min(16, 'tokens must be at least 16 characters'),
  owner: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.@-]+$/),
  admin: z.boolean().default(false),
}).strict();

const ServerSchema = z.object({
  transfer_dir: absPath.optional().describe('host directory file_upload/file_download are confined to; default <data_dir>/transfer'),
  http_host: z.string().min(1).default('127.0.0.1'),
  http_port: z.number().int().min(1).max(65535).default(7420),
  tokens: z.array(TokenSchema).max(1000).default([]).describe('bearer tokens for Streamable HTTP; required when http_host is not loopback'),
  allowed_origins: z.array(z.string().min(1)).default([]).describe('extra Origin values accepted over HTTP (loopback origins always are)'),
  stdio_owner: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.@-]+$/).default('local').describe('owner of workspaces created over stdio'),
  stdio_admin: z.boolean().default(false),
  // Every transfer streams (a window in memory), so this bounds disk use and time, not memory.
  max_transfer_bytes: z.number().int().min(1).max(2 ** 40).default(16 * 2 ** 30),
  exec_progress_interval_ms: z.number().int().min(100).max(60_000).default(2_000),
  daemon_tcp: z.boolean().default(false).describe('islet daemon also listens on http_host:http_port (REST /v1 and /mcp); the unix socket is always on'),
  daemon_idle_exit_s: z.number().int().min(0).max(7 * 86_400).default(300)
    .describe('a daemon with no workspaces, no pool and no client connection for this long exits; 0 = never'),
  socket_group: z.string().min(1).max(64).optional().describe('group given the daemon socket (mode 0660); default: owner only (0600)'),
  // Limits on what MCP clients control (docs/mcp.md, "Limits"); each refusal is a coded error.
  max_result_bytes: z.number().int().min(64 << 10).max(5 << 20).default(4 << 20)
    .describe('content bytes one MCP tool result may carry (exec stdout+stderr, file_read); kept well under the SDK stdio transport\'s 10 MiB message limit'),
  max_sessions: z.number().int().min(1).max(100_000).default(256).describe('open Streamable HTTP sessions; initialize beyond it fails'),
  session_idle_ms: z.number().int().min(1000).max(7 * 86_400_000).default(3_600_000)
    .describe('an HTTP session with no request for this long is closed'),
  max_concurrent_calls: z.number().int().min(1).max(10_000).default(32).describe('tool calls in progress at once, over all sessions'),
  max_buffered_output_bytes: z.number().int().min(1 << 20).max(2 ** 34).default(256 << 20)
    .describe('exec output held in memory at once, over all calls (each exec reserves twice its max_output_bytes)'),
  exec_detach_ms: z.number().int().min(1_000).max(3_600_000).default(45_000)
    .describe('an exec whose timeout_ms is above this returns after this long with its process_id if still running (below MCP clients\' usual 60 s)'),
}).strict();

const ImagesSchema = z.object({
  mirror: z.string().url().default('http://deb.debian.org/debian').describe('Debian mirror for mmdebstrap'),
  suite: z.string().min(1).default('bookworm'),
  kernel_package: z.string().regex(/^linux-image-[a-z0-9.+-]+$/).optional()
    .describe('Debian kernel package; default: the newest linux-image-*-cloud-amd64 apt offers'),
  import_max_mb: z.number().int().min(1).max(1 << 20).default(16_384)
    .describe('largest rootfs (and kernel) `islet image import` and POST /api/images/pull accept'),
}).strict();

export const ConfigSchema = z.object({
  storage: StorageSchema.default({}),
  vm: VmSchema.default({}),
  resources: ResourcesSchema.default({}),
  network: NetworkSchema.default({}),
  pool: PoolSchema.default({}),
  server: ServerSchema.default({}),
  images: ImagesSchema.default({}),
}).strict();

/** Pairs of keys that contradict each other: accepted, they would make every create (or every call) fail later. */
function consistent(c: z.output<typeof ConfigSchema>, ctx: z.RefinementCtx): void {
  const over = (path: string[], a: number, aKey: string, b: number, bKey: string) => {
    if (a > b) ctx.addIssue({ code: z.ZodIssueCode.custom, path, message: `${a} is above ${bKey} (${b}): ${aKey} must be at most ${bKey}` });
  };
  const r = c.resources;
  over(['resources', 'default_vcpus'], r.default_vcpus, 'default_vcpus', r.max_vcpus, 'max_vcpus');
  over(['resources', 'default_memory_mb'], r.default_memory_mb, 'default_memory_mb', r.max_memory_mb, 'max_memory_mb');
  over(['resources', 'default_disk_gb'], r.default_disk_gb, 'default_disk_gb', r.max_disk_gb, 'max_disk_gb');
  over(['resources', 'max_workspaces_per_owner'], r.max_workspaces_per_owner, 'max_workspaces_per_owner', r.max_workspaces, 'max_workspaces');
  const p = c.pool;
  over(['pool', 'min_size'], p.min_size, 'min_size', p.max_size, 'max_size');
  over(['pool', 'target_free'], p.target_free, 'target_free', p.max_size, 'max_size');
  if (p.min_size > 0 && p.min_size * r.default_memory_mb > p.max_memory_mb) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['pool', 'min_size'],
      message: `${p.min_size} VMs of ${r.default_memory_mb} MiB ([resources] default_memory_mb) exceed [pool] max_memory_mb (${p.max_memory_mb})` });
  }
  const seen = new Map<string, number>();
  c.server.tokens.forEach((t, i) => {
    const j = seen.get(t.token);
    if (j !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['server', 'tokens', i, 'token'],
        message: `the same token as tokens[${j}]: one token must name one owner` });
    }
    seen.set(t.token, i);
  });
}

export type ConfigInput = z.input<typeof ConfigSchema>;
type Parsed = z.output<typeof ConfigSchema>;

export interface Paths {
  dataDir: string;
  cacheDir: string;
  runDir: string;
  transferDir: string;
  stateDb: string;
}

export type Config = Parsed & { paths: Paths; source: string | undefined };

export function resolveConfig(raw: unknown, source?: string): Config {
  const r = ConfigSchema.superRefine(consistent).safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const key = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') {
        const where = i.path.length ? `[${i.path.join('.')}]` : 'top level';
        return `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')} in ${where}`;
      }
      return `${key}: ${i.message}`;
    });
    throw new ConfigError(`invalid config${source ? ` ${source}` : ''}: ${lines.join('; ')}`, undefined, { issues: r.error.issues });
  }
  const c = r.data;
  const dataDir = c.storage.data_dir ?? defaultDataDir();
  return {
    ...c,
    paths: {
      dataDir,
      cacheDir: c.storage.cache_dir ?? path.join(dataDir, 'cache'),
      runDir: c.storage.run_dir ?? defaultRunDir(dataDir),
      transferDir: c.server.transfer_dir ?? path.join(dataDir, 'transfer'),
      stateDb: path.join(dataDir, 'state.db'),
    },
    source,
  };
}

/** Loads a TOML config file; with no file, the defaults (and $ISLET_CONFIG if set). */
/** Where a config is found without --config or ISLET_CONFIG: the user's, then the system's. */
export function defaultConfigFiles(): string[] {
  const xdg = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return [path.join(xdg, 'islet', 'config.toml'), '/etc/islet/config.toml'];
}

export function loadConfig(file?: string): Config {
  const f = file ?? process.env.ISLET_CONFIG ?? defaultConfigFiles().find((p) => existsSync(p));
  if (!f) return resolveConfig({});
  const text = readConfigText(f);
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    throw new ConfigError(`config file ${f} is not valid TOML: ${(e as Error).message}`, undefined, { file: f });
  }
  return resolveConfig(raw, f);
}

/** A config file is small; anything bigger is a mistake (or /dev/zero) and is refused while reading. */
export const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Reads at most MAX_CONFIG_BYTES of a regular file. O_NONBLOCK so that a FIFO
 * cannot hang the open; fstat then refuses anything but a regular file.
 */
function readConfigText(f: string): string {
  let fd: number;
  try {
    fd = openSync(f, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new ConfigError(`cannot read config file ${f}: ${(e as Error).message}`, 'pass an existing file with --config', { file: f });
  }
  try {
    if (!fstatSync(fd).isFile()) {
      throw new ConfigError(`config file ${f} is not a regular file`, 'pass a plain TOML file with --config (not a FIFO, device or directory)', { file: f });
    }
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_CONFIG_BYTES) throw new ConfigError(`config file ${f} is over ${MAX_CONFIG_BYTES} bytes`, 'a config file is a few KiB of TOML', { file: f });
    }
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}
