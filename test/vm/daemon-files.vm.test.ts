// File bodies stream through the daemon both ways: a body bigger than any
// buffer the daemon could hold goes in and comes back byte-exact while the
// daemon's peak RSS stays flat; an over-limit body, an over-limit guest file
// and a client that goes away mid-upload each leave nothing behind.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { FileNotFoundError, FileTooLargeError, Islet, type Workspace } from '../../src/sdk/index.js';
import { daemonPidFor } from './daemon-stop.js';
import { vmEnv } from './factory.js';

const MAX = 192 << 20;
const env = vmEnv('dfiles', { pool: { enabled: false }, server: { daemon_idle_exit_s: 0, max_transfer_bytes: MAX } });
const cfg = env.cfgFile;

/** size bytes of a deterministic pattern, yielded in 1 MiB pieces and never held whole; hash receives them too. */
async function* pattern(size: number, hash?: ReturnType<typeof createHash>, onPiece?: (sent: number) => void): AsyncGenerator<Buffer> {
  let sent = 0;
  for (let i = 0; sent < size; i++) {
    const n = Math.min(1 << 20, size - sent);
    const b = Buffer.alloc(n, i & 0xff);
    b.writeUInt32LE(i, 0);
    hash?.update(b);
    sent += n;
    yield b;
    onPiece?.(sent);
  }
}

/** The daemon's peak RSS since the last reset, in MiB (VmHWM); clear_refs 5 resets it (root). */
const peakMiB = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const resetPeak = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, '5');

describe('daemon file bodies, streamed', { timeout: 900_000 }, () => {
  const islet = new Islet({ config: cfg, owner: 'files' });
  let ws: Workspace;

  test('160 MiB in and out byte-exact, with the daemon\'s peak RSS flat', async (t) => {
    ws = await islet.workspaces.create({ name: 'f1', image: 'base' });
    const pid = daemonPidFor(cfg);
    assert.ok(pid, 'the SDK started a daemon');
    resetPeak(pid);
    const before = peakMiB(pid);
    const size = 160 << 20;
    const sent = createHash('sha256');
    const w = await ws.files.write('/root/big.bin', pattern(size, sent), { mode: 0o600 });
    assert.equal(w.bytes, size);
    const want = sent.digest('hex');
    assert.equal((await ws.exec(['sha256sum', '/root/big.bin'])).stdout.split(' ')[0], want, 'the guest has the bytes');
    const got = createHash('sha256');
    let n = 0;
    for await (const c of await ws.files.readStream('/root/big.bin')) {
      got.update(c as Buffer);
      n += (c as Buffer).length;
    }
    assert.equal(n, size);
    assert.equal(got.digest('hex'), want, 'read back byte-exact');
    const grew = peakMiB(pid) - before;
    t.diagnostic(`daemon peak RSS ${before.toFixed(1)} → ${(before + grew).toFixed(1)} MiB over a ${size >> 20} MiB write and read`);
    // Buffered, the body's chunks and their concatenation are alive at once: at least twice its size (320 MiB).
    // Streamed, the live data is a few windows; the rest is garbage V8 collects lazily (up to ~75 MiB was seen).
    assert.ok(grew < 128, `daemon peak RSS grew by ${grew.toFixed(1)} MiB for a ${size >> 20} MiB round trip`);
  });

  test('an over-limit body is FILE_TOO_LARGE (with and without Content-Length) and leaves no file', async () => {
    await assert.rejects(ws.files.write('/root/up/big.bin', Buffer.alloc(MAX + 1)), FileTooLargeError);
    await assert.rejects(ws.files.write('/root/up/big.bin', pattern(MAX + (1 << 20))), FileTooLargeError);
    const ls = await ws.exec('ls -A /root/up 2>/dev/null | wc -l');
    assert.equal(ls.stdout.trim(), '0', 'no file and no temporary left');
  });

  test('a guest file over the limit is refused before any byte; a missing one is 404', async () => {
    assert.equal((await ws.exec(['truncate', '-s', String(MAX + 1), '/root/sparse.bin'])).exit_code, 0);
    await assert.rejects(ws.files.readStream('/root/sparse.bin'), FileTooLargeError);
    await assert.rejects(ws.files.readStream('/root/none.bin'), FileNotFoundError);
  });

  test('a client that goes away mid-upload leaves no file, and the workspace goes on', async () => {
    const ac = new AbortController();
    await assert.rejects(ws.files.write('/root/cut/half.bin', pattern(100 << 20, undefined, (s) => { if (s >= 20 << 20) ac.abort(); }), { signal: ac.signal }));
    // The agent drops the temporary once the daemon tells it (caps file.abort): poll briefly.
    let left = '';
    for (let i = 0; i < 50; i++) {
      left = (await ws.exec('ls -A /root/cut 2>/dev/null | wc -l')).stdout.trim();
      if (left === '0') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(left, '0', 'no file and no temporary left');
    await ws.files.write('/root/cut/after.txt', 'fine');
    assert.equal((await ws.files.read('/root/cut/after.txt')).toString(), 'fine');
    await ws.destroy();
  });
});
