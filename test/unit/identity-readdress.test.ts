// The identity reset of a guest started from saved memory: in bridge mode
// (a TAP net) eth0 is re-addressed to the workspace's lease, by the agent's
// NET_CONFIG, or, for an agent without it, in the same exec, with the
// lease's values passed as arguments, never spliced into the script.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spareAddress, subnetOf } from '../../src/net/ipam.js';
import { freshIdentity } from '../../src/service/identity.js';
import type { Machine } from '../../src/service/machine.js';
import type { TapNetSpec } from '../../src/vmm/argv.js';

function fakeMachine(netConfigCap = false): { m: Machine; argvs: string[][]; configs: Array<{ mac: string; net: string }> } {
  const argvs: string[][] = [];
  const configs: Array<{ mac: string; net: string }> = [];
  const m = {
    exec: async (req: { argv: string[] }) => { argvs.push(req.argv); return { exitCode: 0, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }; },
    agent: {
      syncClock: async () => undefined,
      netConfig: async (c: { mac: string; net: string }) => { if (netConfigCap) configs.push(c); return netConfigCap; },
    },
  } as unknown as Machine;
  return { m, argvs, configs };
}

const tap: TapNetSpec = { kind: 'tap', ifname: 'isl-0000abcd', mac: '02:15:0a:2a:00:07', ip: '10.42.0.7', prefix: 16, gateway: '10.42.0.1', dns: '10.42.0.1' };

test('with a TAP net and an agent with net.config, the agent re-addresses eth0 and the exec does not', async () => {
  const { m, argvs, configs } = fakeMachine(true);
  await freshIdentity(m, 'ws1', undefined, tap);
  assert.deepEqual(configs, [{ mac: '02:15:0a:2a:00:07', net: '10.42.0.7/16,gw=10.42.0.1,dns=10.42.0.1' }]);
  assert.doesNotMatch(argvs[0]![2]!, /eth0/);
  assert.equal(argvs[0]!.length, 8);
});

test('with a TAP net and an agent without net.config, the identity exec re-addresses eth0 from its arguments', async () => {
  const { m, argvs } = fakeMachine();
  await freshIdentity(m, 'ws1', undefined, tap);
  const [argv] = argvs;
  assert.equal(argv![0], 'sh');
  const script = argv![2]!;
  assert.match(script, /link set dev eth0 down/);
  assert.match(script, /link set dev eth0 address "\$5"/);
  assert.match(script, /addr add "\$6" dev eth0/);
  assert.match(script, /route add default via "\$7"/);
  assert.doesNotMatch(script, /10\.42\.0\.7|02:15/, 'the lease is an argument, not part of the script');
  assert.deepEqual(argv!.slice(4, 5), ['ws1']);
  assert.deepEqual(argv!.slice(8), ['02:15:0a:2a:00:07', '10.42.0.7/16', '10.42.0.1', '10.42.0.1']);
});

test('without a TAP net (user mode, none), no re-address', async () => {
  const { m, argvs, configs } = fakeMachine(true);
  await freshIdentity(m, 'ws2', undefined, { restrict: true });
  assert.deepEqual(configs, []);
  assert.doesNotMatch(argvs[0]![2]!, /eth0/);
  assert.equal(argvs[0]!.length, 8);
});

test('the spare address of templates and pool VMs is the subnet\'s last host address', () => {
  assert.equal(spareAddress(subnetOf('10.42.0.1', 16)), '10.42.255.254');
  assert.equal(spareAddress(subnetOf('192.168.7.1', 24)), '192.168.7.254');
});
