// Address allocation on the bridge subnet: lowest free first, the gateway
// and the network/broadcast addresses never handed out, a freed address
// reused, a full subnet reported.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import { newWorkspaceId } from '../../src/core/schemas.js';
import { allocate, cidr, contains, hostCount, intToIp, ipToInt, macOf, subnetOf, tapName } from '../../src/net/ipam.js';

test('the subnet comes from gateway_ip and subnet_prefix', () => {
  const s = subnetOf('10.42.0.1', 16);
  assert.equal(cidr(s), '10.42.0.0/16');
  assert.equal(intToIp(s.gateway), '10.42.0.1');
  assert.equal(hostCount(16), 65534);
  assert.equal(cidr(subnetOf('192.168.7.9', 24)), '192.168.7.0/24');
  for (const [gw, p] of [['10.42.0.0', 16], ['10.42.255.255', 16], ['10.0.0.3', 30]] as const) {
    assert.throws(() => subnetOf(gw, p), (e: unknown) => e instanceof IsletError && e.code === 'CONFIG_INVALID', `${gw}/${p}`);
  }
  assert.throws(() => subnetOf('10.42.0.1', 31), IsletError);
  assert.throws(() => subnetOf('10.42.0.300', 16), RangeError);
});

test('allocation: lowest free address, skipping the gateway; a freed address is the next one given', () => {
  const s = subnetOf('10.42.0.1', 16);
  assert.equal(allocate(s, []), '10.42.0.2');
  assert.equal(allocate(s, ['10.42.0.2']), '10.42.0.3');
  assert.equal(allocate(s, ['10.42.0.2', '10.42.0.3', '10.42.0.4']), '10.42.0.5');
  // 10.42.0.3 destroyed: its address comes back before any new one.
  assert.equal(allocate(s, ['10.42.0.2', '10.42.0.4']), '10.42.0.3');
  // Past a byte boundary.
  const used = Array.from({ length: 254 }, (_, i) => `10.42.0.${i + 2}`);
  assert.equal(allocate(s, used), '10.42.1.0');
  // A gateway in the middle of the range is skipped.
  const mid = subnetOf('10.9.0.3', 29); // hosts .1-.6, gateway .3
  assert.deepEqual(['10.9.0.1', '10.9.0.2', '10.9.0.4', '10.9.0.5', '10.9.0.6'].map((_, i, a) => allocate(mid, a.slice(0, i))),
    ['10.9.0.1', '10.9.0.2', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
  assert.equal(allocate(mid, ['10.9.0.1', '10.9.0.2', '10.9.0.4', '10.9.0.5', '10.9.0.6']), undefined, 'full');
});

test('contains: host addresses of the subnet other than the gateway', () => {
  const s = subnetOf('10.42.0.1', 16);
  assert.ok(contains(s, '10.42.0.2'));
  assert.ok(contains(s, '10.42.255.254'));
  for (const ip of ['10.42.0.1', '10.42.0.0', '10.42.255.255', '10.43.0.2', 'nonsense']) assert.ok(!contains(s, ip), ip);
});

test('MACs are unique per address and locally administered; TAP names fit IFNAMSIZ', () => {
  assert.equal(macOf('10.42.0.2'), '02:15:0a:2a:00:02');
  assert.notEqual(macOf('10.42.1.2'), macOf('10.42.0.2'));
  assert.equal(ipToInt('255.255.255.255'), 0xffffffff);
  assert.equal(tapName('ws-0a1b2c3d'), 'isl-0a1b2c3d');
  assert.ok(tapName('ws-0a1b2c3d').length <= 15);
  assert.equal(tapName('ws-0123456789abcdef'), 'isl-0123456789a');
  assert.equal(tapName(newWorkspaceId()).length, 15);
  for (const bad of ['ws-0a1b2c3', 'ws-0A1B2C3D', 'x-0a1b2c3d', 'ws-0a1b2c3d;']) assert.throws(() => tapName(bad), RangeError, bad);
});

test('leases in SQLite: one address per workspace, freed with it and then reused first', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { Store } = await import('../../src/service/store.js');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-lease-'));
  const store = Store.open(path.join(dir, 'state.db'));
  try {
    const s = subnetOf('10.42.0.1', 16);
    const now = new Date().toISOString();
    const add = (id: string) => store.insertChecked({
      id, name: id, owner: 'o', state: 'stopped', image: 'base', vcpus: 1, memory_mb: 256, disk_gb: 2, allow_internet: 0,
      pid: null, error: null, created_at: now, updated_at: now,
    }, { total: 10, perOwner: 10 });
    const lease = (id: string) => store.allocateLease(id, (used) => allocate(s, used));
    for (const id of ['ws-0000000a', 'ws-0000000b', 'ws-0000000c']) add(id);
    assert.deepEqual(['ws-0000000a', 'ws-0000000b', 'ws-0000000c'].map(lease), ['10.42.0.2', '10.42.0.3', '10.42.0.4']);
    assert.equal(store.lease('ws-0000000b'), '10.42.0.3');
    store.delete('ws-0000000b'); // the lease goes with the row (ON DELETE CASCADE)
    assert.equal(store.lease('ws-0000000b'), undefined);
    add('ws-0000000d');
    assert.equal(lease('ws-0000000d'), '10.42.0.3', 'the freed address is reused');
    assert.equal(lease('ws-0000000a'), '10.42.0.2', 're-allocating keeps a workspace on the lowest free address, its own');
    assert.equal(store.allocateLease('ws-0000000c', () => undefined), undefined, 'a full subnet allocates nothing');
    assert.equal(store.lease('ws-0000000c'), undefined);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
