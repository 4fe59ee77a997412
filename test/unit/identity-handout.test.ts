// What a warm pool hand-out still does to the guest (handOutIdentity): the
// pool already gave the VM its machine-id, entropy and host key when it
// filled it, so a hand-out syncs the clock and renames the guest only when
// the workspace's name is not its id (the name an argument, never part of
// the script); under bridge networking it re-addresses eth0 by NET_CONFIG, or
// falls back to the whole reset for an agent without it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handOutIdentity } from '../../src/service/identity.js';
import type { Machine } from '../../src/service/machine.js';
import type { TapNetSpec } from '../../src/vmm/argv.js';

function fakeMachine(netConfigCap = true): { m: Machine; argvs: string[][]; clocks: number; configs: number } {
  const seen = { argvs: [] as string[][], clocks: 0, configs: 0 };
  const m = {
    exec: async (req: { argv: string[] }) => { seen.argvs.push(req.argv); return { exitCode: 0, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }; },
    agent: {
      syncClock: async () => { seen.clocks++; },
      netConfig: async () => { if (netConfigCap) seen.configs++; return netConfigCap; },
    },
  } as unknown as Machine;
  return { m, get argvs() { return seen.argvs; }, get clocks() { return seen.clocks; }, get configs() { return seen.configs; } };
}

const tap: TapNetSpec = { kind: 'tap', ifname: 'isl-0000abcd', mac: '02:15:0a:2a:00:07', ip: '10.42.0.7', prefix: 16, gateway: '10.42.0.1', dns: '10.42.0.1' };

test('a workspace named as its id: no program runs in the guest, only the clock is synced', async () => {
  const f = fakeMachine();
  await handOutIdentity(f.m, 'ws-0123456789abcdef', 'ws-0123456789abcdef');
  assert.deepEqual(f.argvs, []);
  assert.equal(f.clocks, 1);
});

test('a named workspace: one shell renames the guest, with the name as its argument', async () => {
  const f = fakeMachine();
  await handOutIdentity(f.m, 'my-box', 'ws-0123456789abcdef');
  assert.equal(f.argvs.length, 1);
  const [argv] = f.argvs;
  assert.deepEqual([argv![0], argv![1], argv![3], argv![4]], ['sh', '-c', 'sh', 'my-box']);
  assert.match(argv![2]!, /\/proc\/sys\/kernel\/hostname/);
  assert.match(argv![2]!, /\/etc\/hostname/);
  assert.doesNotMatch(argv![2]!, /my-box/, 'the name is an argument, not part of the script');
  assert.equal(f.clocks, 1);
});

test('bridge: NET_CONFIG re-addresses eth0 and the machine-id is left as the fill made it', async () => {
  const f = fakeMachine(true);
  await handOutIdentity(f.m, 'my-box', 'ws-0123456789abcdef', undefined, tap);
  assert.equal(f.configs, 1);
  assert.equal(f.argvs.length, 1);
  assert.doesNotMatch(f.argvs[0]![2]!, /machine-id|eth0/);
});

test('bridge with an agent without NET_CONFIG: the whole reset, whose script re-addresses eth0', async () => {
  const f = fakeMachine(false);
  await handOutIdentity(f.m, 'my-box', 'ws-0123456789abcdef', undefined, tap);
  assert.equal(f.argvs.length, 1);
  assert.match(f.argvs[0]![2]!, /machine-id/);
  assert.match(f.argvs[0]![2]!, /link set dev eth0 address "\$5"/);
});
