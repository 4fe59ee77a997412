// The QEMU driver's memory save/load waits for QEMU's MIGRATION event: a
// fake QMP server on a unix socket plays QEMU, so the event handling
// (completed, failed with the reason from query-migrate, no event in time,
// QEMU gone) is tested without a VM.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import { migrate } from '../../src/vmm/qemu-driver.js';
import { QmpClient } from '../../src/vmm/qmp.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-qmp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

/** A QMP server whose answer to `migrate` is scripted: events to emit after the reply, and what query-migrate says. */
async function fakeQemu(name: string, onMigrate: (sock: net.Socket) => void, queryMigrate: Record<string, unknown> = {}): Promise<QmpClient> {
  const file = path.join(dir, name);
  const srv = net.createServer((sock) => {
    sock.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } })}\n`);
    let buf = '';
    sock.on('data', (c) => {
      buf += c.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string };
        buf = buf.slice(nl + 1);
        sock.write(`${JSON.stringify({ return: cmd.execute === 'query-migrate' ? queryMigrate : {} })}\n`);
        if (cmd.execute === 'migrate') onMigrate(sock);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(file, r));
  after(() => srv.close());
  const qmp = await QmpClient.connect(file);
  after(() => qmp.close());
  return qmp;
}

const event = (sock: net.Socket, status: string) => sock.write(`${JSON.stringify({ event: 'MIGRATION', data: { status } })}\n`);
const start = (qmp: QmpClient) => () => qmp.execute('migrate', { uri: 'exec:cat > /dev/null' });

test('completes on the MIGRATION event with status completed (intermediate statuses ignored)', async () => {
  const qmp = await fakeQemu('ok.sock', (s) => { event(s, 'setup'); event(s, 'active'); setTimeout(() => event(s, 'completed'), 20); });
  await migrate(qmp, 'memory migration', 5_000, start(qmp));
});

test('a failed migration is QMP_ERROR with the reason query-migrate gives', async () => {
  const qmp = await fakeQemu('fail.sock', (s) => event(s, 'failed'), { status: 'failed', 'error-desc': 'disk full' });
  await assert.rejects(migrate(qmp, 'memory migration', 5_000, start(qmp)),
    (e: unknown) => e instanceof IsletError && e.code === 'QMP_ERROR' && e.message === 'memory migration failed: disk full');
});

test('no final event in time is GUEST_TIMEOUT naming the operation', async () => {
  const qmp = await fakeQemu('slow.sock', (s) => event(s, 'active'));
  await assert.rejects(migrate(qmp, 'memory restore', 200, start(qmp)),
    (e: unknown) => e instanceof IsletError && e.code === 'GUEST_TIMEOUT' && /memory restore did not finish in 200 ms/.test(e.message));
});

test('QEMU going away mid-migration is VM_EXITED, not a timeout', async () => {
  const qmp = await fakeQemu('gone.sock', (s) => setTimeout(() => s.destroy(), 20));
  await assert.rejects(migrate(qmp, 'memory migration', 5_000, start(qmp)), coded('VM_EXITED'));
});
