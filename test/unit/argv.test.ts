import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildQemuArgv, hostfwdRule, kernelCmdline, netdevArg, VmSpec } from '../../src/vmm/argv.js';

const spec: VmSpec = {
  id: 'abc123', dir: '/tmp/islet-0/vm/abc123', kernel: '/k/vmlinux', initrd: '/k/initrd.cpio', disk: '/d/abc123.qcow2',
  vcpus: 2, memoryMb: 512, accel: 'tcg', initMode: 'fast', hostname: 'ws-1', tcgTbSizeMb: 32, tscKhz: 2_400_000,
};
const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

test('microvm argv: machine, accel, resources, devices', () => {
  const a = buildQemuArgv(spec);
  assert.equal(a[0], 'qemu-system-x86_64');
  assert.equal(after(a, '-M'), 'microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on');
  assert.equal(after(a, '-accel'), 'tcg,tb-size=32');
  assert.equal(after(a, '-cpu'), 'max');
  assert.equal(after(a, '-m'), '512');
  assert.equal(after(a, '-smp'), '2');
  assert.equal(after(a, '-name'), 'islet-abc123');
  assert.ok(a.includes('-no-reboot') && a.includes('-nodefaults'));
  assert.equal(after(a, '-serial'), 'file:/tmp/islet-0/vm/abc123/console.log');
  assert.equal(after(a, '-qmp'), 'unix:/tmp/islet-0/vm/abc123/qmp.sock,server=on,wait=off');
  assert.ok(a.includes('socket,id=agent,path=/tmp/islet-0/vm/abc123/agent.sock,server=on,wait=off'));
  assert.ok(a.includes('virtserialport,chardev=agent,name=org.islet.agent.0'));
  assert.ok(a.includes('id=root,file=/d/abc123.qcow2,format=qcow2,if=none,discard=unmap'));
});

test('KVM uses the host CPU and no tb-size', () => {
  const a = buildQemuArgv({ ...spec, accel: 'kvm' });
  assert.equal(after(a, '-accel'), 'kvm');
  assert.equal(after(a, '-cpu'), 'host');
});

test('tb-size 0 keeps the QEMU default', () => {
  assert.equal(after(buildQemuArgv({ ...spec, tcgTbSizeMb: 0 }), '-accel'), 'tcg');
});

test('kernel command line carries tsc_early_khz, init mode and hostname', () => {
  const c = kernelCmdline(spec);
  assert.match(c, /(^| )tsc_early_khz=2400000( |$)/);
  assert.match(c, /islet\.init=fast/);
  assert.match(c, /islet\.hostname=ws-1/);
  assert.match(c, /panic=-1/);
  assert.doesNotMatch(kernelCmdline({ ...spec, tscKhz: undefined }), /tsc_early_khz/);
});

test('under TCG user-space mappings are fixed (norandmaps), so processes reuse translated code; under KVM they stay random', () => {
  assert.match(kernelCmdline({ ...spec, accel: 'tcg' }), /(^| )norandmaps( |$)/);
  assert.doesNotMatch(kernelCmdline({ ...spec, accel: 'kvm' }), /norandmaps/);
});

test('commas in paths are escaped for QEMU option syntax', () => {
  const a = buildQemuArgv({ ...spec, disk: '/d/a,b.qcow2', dir: '/tmp/x,y' });
  assert.ok(a.includes('id=root,file=/d/a,,b.qcow2,format=qcow2,if=none,discard=unmap'));
  assert.equal(after(a, '-qmp'), 'unix:/tmp/x,,y/qmp.sock,server=on,wait=off');
});

test('bad ids, hostnames, resources and long socket paths are refused', () => {
  assert.throws(() => buildQemuArgv({ ...spec, id: '../x' }), RangeError);
  assert.throws(() => buildQemuArgv({ ...spec, hostname: 'a b' }), RangeError);
  assert.throws(() => buildQemuArgv({ ...spec, hostname: 'x islet.init=full' }), RangeError);
  assert.throws(() => buildQemuArgv({ ...spec, vcpus: 0 }), RangeError);
  assert.throws(() => buildQemuArgv({ ...spec, memoryMb: 10 }), RangeError);
  assert.throws(() => buildQemuArgv({ ...spec, dir: `/tmp/${'x'.repeat(100)}` }), /socket path too long/);
});

test('no net field: no network device and no islet.net', () => {
  const a = buildQemuArgv(spec);
  assert.ok(!a.includes('-netdev'));
  assert.ok(!a.some((x) => x.startsWith('virtio-net')));
  assert.doesNotMatch(kernelCmdline(spec), /islet\.net=/);
});

test('user-mode net: netdev, virtio-net device, restrict and islet.net', () => {
  const a = buildQemuArgv({ ...spec, net: { restrict: true } });
  assert.equal(after(a, '-netdev'), 'user,id=net0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off');
  assert.ok(a.includes('virtio-net-device,netdev=net0'));
  assert.match(after(a, '-append')!, /(^| )islet\.net=10\.0\.2\.15\/24,gw=10\.0\.2\.2,dns=10\.0\.2\.3( |$)/);
  const open = buildQemuArgv({ ...spec, net: { restrict: false } });
  assert.match(after(open, '-netdev')!, /,restrict=off,/);
});

test('user-mode egress: a guestfwd at the proxy address runs the helper with the VM dir\'s policy; odd paths are refused', () => {
  const a = buildQemuArgv({ ...spec, net: { restrict: true, egressHelper: '/cache/egress/k/islet-egress' } });
  assert.equal(after(a, '-netdev'), `user,id=net0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off,`
    + `guestfwd=tcp:10.0.2.100:3128-cmd:/cache/egress/k/islet-egress ${spec.dir}/egress.json`);
  for (const bad of ['relative/islet-egress', '/a b/islet-egress', "/a'b/islet-egress", '/a,b/islet-egress', '/a;b', '/a$(x)']) {
    assert.throws(() => buildQemuArgv({ ...spec, net: { restrict: true, egressHelper: bad } }), RangeError, bad);
  }
  assert.throws(() => buildQemuArgv({ ...spec, dir: '/run/with space', net: { restrict: true, egressHelper: '/x/islet-egress' } }), RangeError);
});

test('port forwards bind 127.0.0.1 and are validated', () => {
  assert.equal(hostfwdRule({ hostPort: 8080, guestPort: 80 }), 'tcp:127.0.0.1:8080-:80');
  assert.equal(netdevArg({ restrict: true, forwards: [{ hostPort: 2222, guestPort: 22 }, { hostPort: 65535, guestPort: 1 }] }),
    'user,id=net0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:65535-:1');
  for (const [h, g] of [[0, 80], [70000, 80], [8080, 0], [8080, 65536], [1.5, 80], [-1, 80]] as const) {
    assert.throws(() => hostfwdRule({ hostPort: h, guestPort: g }), RangeError);
    assert.throws(() => buildQemuArgv({ ...spec, net: { restrict: true, forwards: [{ hostPort: h, guestPort: g }] } }), RangeError);
  }
});

test('bridge mode: a tap netdev QEMU opens itself, a unique MAC, and the static address in islet.net', () => {
  const tap = { kind: 'tap', ifname: 'isl-0a1b2c3d', mac: '02:15:0a:2a:00:05', ip: '10.42.0.5', prefix: 16, gateway: '10.42.0.1', dns: '10.42.0.1' } as const;
  const a = buildQemuArgv({ ...spec, net: tap });
  assert.equal(after(a, '-netdev'), 'tap,id=net0,ifname=isl-0a1b2c3d,script=no,downscript=no');
  assert.ok(a.includes('virtio-net-device,netdev=net0,mac=02:15:0a:2a:00:05'));
  assert.match(after(a, '-append')!, /(^| )islet\.net=10\.42\.0\.5\/16,gw=10\.42\.0\.1,dns=10\.42\.0\.1( |$)/);
  assert.ok(!a.some((x) => x.startsWith('user,')));
  // Anything that would break out of QEMU's option syntax or the command line is refused.
  for (const bad of [
    { ifname: 'isl-x,script=/bin/sh' }, { ifname: 'a-name-longer-than-15' }, { mac: '02:15:0a:2a:00' }, { mac: '02:15:0a:2a:00:05,x=y' },
    { ip: '10.42.0.256' }, { gateway: '10.42.0.1 init=/bin/sh' }, { dns: '' }, { prefix: 0 }, { prefix: 33 },
  ]) {
    assert.throws(() => buildQemuArgv({ ...spec, net: { ...tap, ...bad } }), RangeError, JSON.stringify(bad));
  }
});

test('bridge mode, unaddressed (a template or pool VM): the TAP and MAC, but no islet.net, so eth0 stays down', () => {
  const tap = { kind: 'tap', ifname: 'template', mac: '02:15:0a:2a:ff:fe', ip: '10.42.255.254', prefix: 16, gateway: '10.42.0.1', dns: '10.42.0.1' } as const;
  const a = buildQemuArgv({ ...spec, net: { ...tap, unaddressed: true } });
  assert.ok(a.includes('virtio-net-device,netdev=net0,mac=02:15:0a:2a:ff:fe'));
  assert.doesNotMatch(after(a, '-append')!, /islet\.net=/);
  assert.match(after(buildQemuArgv({ ...spec, net: tap }), '-append')!, /islet\.net=10\.42\.255\.254\/16/);
});

test('file-backed guest RAM: shared for a template, a private mapping for a restore, named like the default RAM', () => {
  const shared = buildQemuArgv({ ...spec, ramFile: { path: '/c/templates/base-1/mem', shared: true } });
  assert.equal(after(shared, '-M'), 'microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on,memory-backend=microvm.ram');
  assert.equal(after(shared, '-object'),
    'memory-backend-file,id=microvm.ram,x-use-canonical-path-for-ramblock-id=off,size=512M,mem-path=/c/templates/base-1/mem,share=on');
  assert.equal(after(shared, '-m'), '512', '-m stays: it must agree with the backend size');
  const restored = buildQemuArgv({ ...spec, ramFile: { path: '/c/t,x/mem', shared: false }, incoming: true });
  assert.match(after(restored, '-object')!, /,mem-path=\/c\/t,,x\/mem,share=off$/);
  assert.equal(after(restored, '-incoming'), 'defer');
  assert.ok(!buildQemuArgv(spec).includes('-object'), 'ordinary VMs keep anonymous RAM');
});
