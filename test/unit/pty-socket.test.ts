// The terminal WebSocket (surfaces/daemon/pty-socket.ts) and the SDK's pty
// handle (sdk/pty.ts), end to end over a unix socket, against a fake service
// that plays a terminal: keystrokes are echoed, resizes recorded, "exit N"
// ends it with status N. The real guest terminal is in test/vm/pty.vm.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import type { RawOutput } from '../../src/service/process-ops.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { ApiClient } from '../../src/sdk/api.js';
import { attachPty } from '../../src/sdk/pty.js';
import { isPtyUpgrade, PtySockets } from '../../src/surfaces/daemon/pty-socket.js';

class FakeTerminal {
  out = Buffer.alloc(0);
  exit: number | null = null;
  sizes: Array<[number, number]> = [];
  signals: string[] = [];
  private wake: Array<() => void> = [];
  private emit(s: string) { this.out = Buffer.concat([this.out, Buffer.from(s)]); for (const w of this.wake.splice(0)) w(); }
  proc() {
    return { workspace_id: 'ws-1', process_id: 7, pid: 99, command: 'sh', running: this.exit === null, exit_code: this.exit, signal: null,
      exit_status: this.exit, timed_out: false, started_at: '', duration_ms: 0, output_bytes: this.out.length, dropped_bytes: 0, stdin: true, pty: true };
  }
  async processOutputRaw(_c: unknown, i: { offset: number; wait_ms?: number }, o: { signal?: AbortSignal }): Promise<RawOutput> {
    if (i.offset >= this.out.length && this.exit === null && (i.wait_ms ?? 0) > 0) {
      await new Promise<void>((r) => { this.wake.push(r); o.signal?.addEventListener('abort', () => r()); });
    }
    const data = this.out.subarray(i.offset);
    return { parts: data.length ? [{ stream: 'stdout', data }] : [], next: this.out.length, dropped: 0, proc: this.proc() };
  }
  async processWriteRaw(_c: unknown, _r: unknown, data: Buffer) {
    const s = data.toString();
    this.emit(s.replace(/\n/g, '\r\n'));
    const m = /exit (\d+)/.exec(s);
    if (m) { this.exit = Number(m[1]); this.emit(''); }
    if (/stty size/.test(s)) this.emit(`${this.sizes.at(-1)?.[1] ?? 24} ${this.sizes.at(-1)?.[0] ?? 80}\r\n`);
    return data.length;
  }
  async processResize(_c: unknown, i: { cols: number; rows: number }) { this.sizes.push([i.cols, i.rows]); }
  async processKill(_c: unknown, i: { signal?: string }) { this.signals.push(i.signal ?? 'TERM'); return this.proc(); }
}

let dir: string;
let server: Server;
let term: FakeTerminal;
let api: ApiClient;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'islet-pty-'));
  term = new FakeTerminal();
  const ptys = new PtySockets(term as unknown as WorkspaceService);
  server = createServer((_q, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (isPtyUpgrade(req)) ptys.handle(req, socket, head, { owner: 'alice' });
    else socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(path.join(dir, 's.sock'), r));
  api = new ApiClient({ socketPath: path.join(dir, 's.sock') });
});
after(() => {
  server.closeAllConnections();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the SDK handle writes, resizes, signals and waits for the exit status over the WebSocket', async () => {
  let seen = '';
  let got: () => void = () => undefined;
  const onData = (d: Buffer) => { seen += d.toString(); got(); };
  const until = (re: RegExp) => new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(seen)}`)), 5_000);
    got = () => { if (re.test(seen)) { clearTimeout(t); resolve(); } };
    got();
  });
  const h = await attachPty(api, 'ws-1', term.proc() as never, { onData });
  assert.equal(h.processId, 7);
  h.write('stty size; echo hi\n');
  await until(/24 80/);
  h.resize(100, 30);
  h.kill('INT');
  await new Promise((r) => setTimeout(r, 100));
  h.write('stty size\n');
  await until(/30 100/);
  assert.deepEqual(term.sizes, [[100, 30]]);
  assert.deepEqual(term.signals, ['INT']);
  h.write('exit 3\n');
  assert.equal(await h.wait(), 3);
});

test('a bad control message ends the connection with a coded error message', async () => {
  term.exit = null; // a live terminal again
  const ws = new WebSocket(`ws+unix:${path.join(dir, 's.sock')}:/v1/workspaces/ws-1/processes/7/pty?offset=0`);
  const msgs: string[] = [];
  ws.on('message', (d, bin) => { if (!bin) msgs.push(d.toString()); });
  await new Promise((r) => ws.once('open', r));
  ws.send('{"type":"resize","cols":0,"rows":5}');
  const code = await new Promise<number>((r) => ws.once('close', (c) => r(c)));
  assert.equal(code, 1011);
  const err = msgs.map((m) => JSON.parse(m) as { type: string; error?: { code: string } }).find((m) => m.type === 'error');
  assert.equal(err?.error?.code, 'INVALID_ARGUMENT');
});

test('only the terminal path upgrades', () => {
  const req = (url: string, upgrade = 'websocket') => ({ url, headers: { upgrade } }) as never;
  assert.equal(isPtyUpgrade(req('/v1/workspaces/ws-1/processes/7/pty')), true);
  assert.equal(isPtyUpgrade(req('/v1/workspaces/ws-1/processes/7/pty?offset=5')), true);
  assert.equal(isPtyUpgrade(req('/v1/workspaces/ws-1/processes/x/pty')), false);
  assert.equal(isPtyUpgrade(req('/v1/workspaces/ws-1/processes/7/pty', 'islet-mcp-stdio')), false);
});
