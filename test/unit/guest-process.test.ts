// The host side of background processes against a fake agent on a unix
// socket: NOT_SUPPORTED without the capability, output parts in order with
// stream tags, the host's own bound on output bytes, waits that outlive
// [vm] request_timeout_ms, and guest strings cut short.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { AgentClient } from '../../src/guest/client.js';
import { decodeJson, encodeFrame, encodeJson, FrameDecoder, FrameType, PROTOCOL_VERSION, Stream } from '../../src/guest/frame.js';
import { listProcesses, readOutput, startProcess, waitProcess } from '../../src/guest/process.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-proc-'));
let caps: string[] = ['proc'];
/** What the fake sends for PROC_OUTPUT: DATA payloads (stream, text), then OK. */
let outputData: Array<[number, string]> = [];
let waitDelayMs = 0;
const server = net.createServer((c) => {
  const dec = new FrameDecoder();
  c.on('data', (chunk: Buffer) => {
    for (const f of dec.push(chunk)) {
      const id = f.requestId;
      switch (f.type) {
        case FrameType.HELLO: c.write(encodeJson(FrameType.OK, id, { protocol: PROTOCOL_VERSION, agent: 'fake', caps })); break;
        case FrameType.PROC_START: c.write(encodeJson(FrameType.OK, id, { id: 7, pid: 99 })); break;
        case FrameType.PROC_LIST:
          c.write(encodeJson(FrameType.OK, id, { procs: [{ id: 7, pid: 99, command: 'x'.repeat(5000), running: true, signal: 'TERMTERMTERMTERMTERM' }] }));
          break;
        case FrameType.PROC_OUTPUT: {
          const req = decodeJson(f);
          for (const [stream, text] of outputData) c.write(encodeFrame({ type: FrameType.DATA, flags: stream, requestId: id, payload: Buffer.from(text) }));
          c.write(encodeJson(FrameType.OK, id, { start: req.offset, next: Number(req.offset) + 6, dropped: 0, proc: { id: 7, running: false, exitCode: 0 } }));
          break;
        }
        case FrameType.PROC_WAIT:
          setTimeout(() => c.write(encodeJson(FrameType.OK, id, { id: 7, running: false, exitCode: 3 })), waitDelayMs);
          break;
      }
    }
  });
});
const sock = path.join(dir, 'agent.sock');
await new Promise<void>((r) => server.listen(sock, r));
after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); });

const connect = () => AgentClient.connect(sock, { timeoutMs: 5_000, requestTimeoutMs: 300 });

test('an agent without the proc capability gets NOT_SUPPORTED before any request', async () => {
  caps = ['exec'];
  const client = await connect();
  await assert.rejects(startProcess(client, { shell: 'true' }), (e: { code?: string; hint?: string }) => {
    assert.equal(e.code, 'NOT_SUPPORTED');
    assert.match(e.hint ?? '', /rebuild/);
    return true;
  });
  client.close();
  caps = ['proc'];
  const noPty = await connect();
  await assert.rejects(startProcess(noPty, { shell: 'bash', pty: { cols: 80, rows: 24 } }), { code: 'NOT_SUPPORTED' });
  noPty.close();
});

test('start, list (guest strings cut short) and output parts in order with their streams', async () => {
  const client = await connect();
  assert.deepEqual(await startProcess(client, { shell: 'make' }), { id: 7, pid: 99 });
  const [p] = await listProcesses(client);
  assert.equal(p?.command.length, 256);
  assert.equal(p?.signal, 'TERMTERMTERMTERM');
  outputData = [[Stream.STDOUT, 'ab'], [Stream.STDOUT, 'c'], [Stream.STDERR, 'err'], [Stream.STDOUT, 'd']];
  const r = await readOutput(client, { id: 7, offset: 10 });
  assert.deepEqual(r.parts.map((x) => [x.stream, x.data.toString()]), [['stdout', 'abc'], ['stderr', 'err'], ['stdout', 'd']]);
  assert.deepEqual([r.start, r.next, r.proc.exitCode], [10, 16, 0]);
  client.close();
});

test('more output than asked for is a protocol violation that resets the link', async () => {
  const client = await connect();
  outputData = [[Stream.STDOUT, 'x'.repeat(100)]];
  await assert.rejects(readOutput(client, { id: 7, offset: 0, maxBytes: 50 }), { code: 'GUEST_PROTOCOL_VIOLATION' });
  assert.equal(client.isClosed, true);
});

test('a wait longer than request_timeout_ms is not cut short by it', async () => {
  const client = await connect();
  waitDelayMs = 800; // request_timeout_ms is 300
  const w = await waitProcess(client, 7, 2_000);
  assert.deepEqual([w.running, w.exitCode], [false, 3]);
  client.close();
});
