// Every config section: its defaults, TOML parsing, unknown keys and
// out-of-range values rejected by path, and agentiso keys refused with why.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-sections-'));
let n = 0;
const load = (text: string) => {
  const p = path.join(dir, `c${n++}.toml`);
  writeFileSync(p, text);
  return loadConfig(p);
};
const rejects = (text: string, re: RegExp) =>
  assert.throws(() => load(text), (e: unknown) => e instanceof IsletError && e.code === 'CONFIG_INVALID' && re.test(e.message),
    `expected ${re} for:\n${text}`);

const SECTIONS = ['storage', 'vm', 'resources', 'network', 'pool', 'server', 'images'] as const;

test('defaults of every section', () => {
  const c = resolveConfig({});
  assert.deepEqual(c.storage, {});
  assert.deepEqual(c.vm, {
    accel: 'auto', kernel: 'auto', kernel_build: 'background', qemu_binary: 'qemu-system-x86_64', boot_timeout_ms: 120_000, request_timeout_ms: 30_000,
    tcg_tb_size_mb: 32, restore_tcg_tb_size_mb: 0, canary_timeout_ms: 8_000,
  });
  assert.deepEqual(c.resources, {
    default_image: 'dev', default_vcpus: 1, default_memory_mb: 256, default_disk_gb: 2,
    max_vcpus: 4, max_memory_mb: 4096, max_disk_gb: 64, max_workspaces: 32, max_workspaces_per_owner: 16,
    default_ttl_minutes: 0, default_idle_stop_minutes: 0, default_retention_minutes: 0,
  });
  assert.deepEqual(c.network, {
    mode: 'user', bridge_name: 'br-islet', gateway_ip: '10.42.0.1', subnet_prefix: 16,
    default_allow_internet: false, default_allow_inter_vm: false, default_allowed_ports: [], default_allowed_domains: [], dns_upstream: [],
    allowed_private_cidrs: [], egress_ports: [],
  });
  assert.deepEqual(c.pool, { enabled: true, min_size: 0, max_size: 4, target_free: 1, max_memory_mb: 2048, template: true, session_templates: [] });
  assert.deepEqual(c.server, {
    http_host: '127.0.0.1', http_port: 7420, tokens: [], allowed_origins: [], stdio_owner: 'local', stdio_admin: false,
    max_transfer_bytes: 16 * 2 ** 30, exec_progress_interval_ms: 2_000, daemon_tcp: false, daemon_idle_exit_s: 300,
    max_result_bytes: 4 << 20, max_sessions: 256, session_idle_ms: 3_600_000, max_concurrent_calls: 32, max_buffered_output_bytes: 256 << 20,
    exec_detach_ms: 45_000,
  });
  assert.deepEqual(c.images, { mirror: 'http://deb.debian.org/debian', suite: 'bookworm', import_max_mb: 16_384 });
  assert.equal(c.paths.transferDir, path.join(c.paths.dataDir, 'transfer'));
  assert.equal(c.paths.stateDb, path.join(c.paths.dataDir, 'state.db'));
});

test('every section is parsed from TOML', () => {
  const c = load(`
[storage]
data_dir = "/srv/islet"
cache_dir = "/var/cache/islet"
run_dir = "/run/islet"
[vm]
accel = "kvm"
kernel = "distro"
kernel_build = "off"
kernel_path = "/boot/vmlinux"
initrd_path = "/boot/initrd"
qemu_binary = "/opt/qemu/bin/qemu-system-x86_64"
boot_timeout_ms = 60000
request_timeout_ms = 5000
tcg_tb_size_mb = 0
canary_timeout_ms = 4000
[resources]
default_image = "python"
default_vcpus = 2
default_memory_mb = 512
default_disk_gb = 4
max_vcpus = 8
max_memory_mb = 8192
max_disk_gb = 100
max_workspaces = 50
max_workspaces_per_owner = 5
[network]
mode = "bridge"
bridge_name = "br0"
gateway_ip = "10.0.0.1"
subnet_prefix = 24
default_allow_internet = true
default_allow_inter_vm = true
default_allowed_ports = [22, 8080]
default_allowed_domains = ["registry.npmjs.org", "*.debian.org"]
dns_upstream = ["10.0.0.53"]
[pool]
enabled = true
min_size = 1
max_size = 8
target_free = 2
max_memory_mb = 4096
template = false
session_templates = ["agent-ready"]
[server]
transfer_dir = "/srv/transfer"
http_host = "0.0.0.0"
http_port = 8080
allowed_origins = ["https://example.com"]
stdio_owner = "alice"
stdio_admin = true
max_transfer_bytes = 1048576
exec_progress_interval_ms = 500
[[server.tokens]]
token = "0123456789abcdef0123"
owner = "bob"
[[server.tokens]]
token = "fedcba9876543210fedc"
owner = "root@ops"
admin = true
[images]
mirror = "http://mirror.example/debian"
suite = "trixie"
kernel_package = "linux-image-6.1.0-30-cloud-amd64"
`);
  assert.equal(c.paths.dataDir, '/srv/islet');
  assert.equal(c.paths.cacheDir, '/var/cache/islet');
  assert.equal(c.paths.runDir, '/run/islet');
  assert.equal(c.paths.transferDir, '/srv/transfer');
  assert.equal(c.paths.stateDb, '/srv/islet/state.db');
  assert.equal(c.vm.accel, 'kvm');
  assert.equal(c.vm.tcg_tb_size_mb, 0);
  assert.equal(c.vm.kernel, 'distro');
  assert.equal(c.vm.kernel_build, 'off');
  assert.equal(c.vm.kernel_path, '/boot/vmlinux');
  assert.equal(c.resources.max_workspaces_per_owner, 5);
  assert.equal(c.resources.default_image, 'python');
  assert.equal(c.network.mode, 'bridge');
  assert.equal(c.network.subnet_prefix, 24);
  assert.equal(c.network.default_allow_inter_vm, true);
  assert.deepEqual(c.network.default_allowed_ports, [22, 8080]);
  assert.deepEqual(c.network.default_allowed_domains, ['registry.npmjs.org', '*.debian.org']);
  assert.deepEqual(c.network.dns_upstream, ['10.0.0.53']);
  assert.deepEqual(c.pool, { enabled: true, min_size: 1, max_size: 8, target_free: 2, max_memory_mb: 4096, template: false, session_templates: ['agent-ready'] });
  assert.equal(c.server.http_port, 8080);
  assert.equal(c.server.stdio_owner, 'alice');
  assert.deepEqual(c.server.tokens, [
    { token: '0123456789abcdef0123', owner: 'bob', admin: false },
    { token: 'fedcba9876543210fedc', owner: 'root@ops', admin: true },
  ]);
  assert.deepEqual(c.images, { mirror: 'http://mirror.example/debian', suite: 'trixie', kernel_package: 'linux-image-6.1.0-30-cloud-amd64', import_max_mb: 16_384 });
});

test('an unknown key in each section is rejected with its section', () => {
  for (const s of SECTIONS) rejects(`[${s}]\nbogus_key = 1\n`, new RegExp(`unknown key\\(s\\) "bogus_key" in \\[${s}\\]`));
  rejects('[[server.tokens]]\ntoken = "0123456789abcdef"\nowner = "a"\nscope = "x"\n', /unknown key\(s\) "scope" in \[server\.tokens\.0\]/);
  rejects('[nonsense]\nx = 1\n', /unknown key\(s\) "nonsense" in top level/);
});

test('out-of-range and malformed values are rejected naming the key', () => {
  const cases: Array<[string, RegExp]> = [
    ['[vm]\nrequest_timeout_ms = 50\n', /vm\.request_timeout_ms: /],
    ['[vm]\ntcg_tb_size_mb = 2048\n', /vm\.tcg_tb_size_mb: /],
    ['[vm]\nkernel_path = "vmlinux"\n', /vm\.kernel_path: must be an absolute path/],
    ['[vm]\nkernel_build = "now"\n', /vm\.kernel_build: /],
    ['[resources]\nmax_vcpus = 0\n', /resources\.max_vcpus: /],
    ['[resources]\ndefault_memory_mb = 32\n', /resources\.default_memory_mb: /],
    ['[resources]\ndefault_image = "Base Image"\n', /resources\.default_image: /],
    ['[resources]\nmax_workspaces = 1.5\n', /resources\.max_workspaces: /],
    ['[network]\nmode = "tap"\n', /network\.mode: /],
    ['[network]\ngateway_ip = "10.0.0.300"\n', /network\.gateway_ip: /],
    ['[network]\nsubnet_prefix = 31\n', /network\.subnet_prefix: /],
    ['[network]\nbridge_name = "a-bridge-name-too-long"\n', /network\.bridge_name: /],
    ['[network]\ndefault_allowed_ports = [0]\n', /network\.default_allowed_ports\.0: /],
    ['[network]\ndefault_allowed_ports = [8080, 8080]\n', /network\.default_allowed_ports: ports must not repeat/],
    ['[network]\ndefault_allowed_domains = ["exa mple.com"]\n', /network\.default_allowed_domains\.0: a domain name/],
    ['[network]\ndns_upstream = ["resolver.example"]\n', /network\.dns_upstream\.0: /],
    ['[network]\nallowed_private_cidrs = ["10.0.0.0/33"]\n', /network\.allowed_private_cidrs\.0: must be an IPv4 CIDR/],
    ['[network]\nallowed_private_cidrs = ["10.0.0.0"]\n', /network\.allowed_private_cidrs\.0: must be an IPv4 CIDR/],
    ['[network]\negress_ports = [0]\n', /network\.egress_ports\.0: /],
    ['[pool]\nmax_size = -1\n', /pool\.max_size: /],
    ['[pool]\nenabled = "yes"\n', /pool\.enabled: /],
    ['[pool]\nsession_templates = ["../etc"]\n', /pool\.session_templates\.0: /],
    ['[server]\nhttp_port = 70000\n', /server\.http_port: /],
    ['[server]\nhttp_port = 0\n', /server\.http_port: /],
    ['[server]\nstdio_owner = "has space"\n', /server\.stdio_owner: /],
    ['[server]\nmax_transfer_bytes = 0\n', /server\.max_transfer_bytes: /],
    ['[server]\ntransfer_dir = "transfer"\n', /server\.transfer_dir: must be an absolute path/],
    ['[[server.tokens]]\ntoken = "short"\nowner = "alice"\n', /server\.tokens\.0\.token: tokens must be at least 16 characters/],
    ['[images]\nmirror = "not a url"\n', /images\.mirror: /],
    ['[images]\nkernel_package = "linux-headers-amd64"\n', /images\.kernel_package: /],
    ['[storage]\ncache_dir = "./cache"\n', /storage\.cache_dir: must be an absolute path/],
  ];
  for (const [text, re] of cases) rejects(text, re);
});

test('agentiso keys with no meaning in islet are refused with the reason', () => {
  rejects('[storage]\nzfs_pool = "tank/islet"\n', /storage\.zfs_pool: not applicable in islet: .*qcow2/);
  rejects('[network]\nvsock_cid_start = 100\n', /network\.vsock_cid_start: not applicable in islet: .*virtio-serial/);
});
