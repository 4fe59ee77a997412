// A guest terminal through the SDK against a real daemon: ws.pty.create
// attaches over the daemon's WebSocket; the guest sees the size given and
// a resize, output streams to onData, and `exit 3` makes wait() return 3.
// Also prints the keystroke echo round trip (p50, p99) through the socket.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import { Islet } from '../../src/sdk/index.js';
import { stopDaemon } from './daemon-stop.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-pty-'));
const cfgFile = path.join(dataDir, 'islet.toml');
writeFileSync(cfgFile, `[storage]\ndata_dir = "${dataDir}"\ncache_dir = "${loadConfig().paths.cacheDir}"\n[pool]\nenabled = false\n`);
const islet = new Islet({ config: cfgFile });

after(async () => {
  for (const w of await islet.workspaces.list().catch(() => [])) await w.destroy().catch(() => undefined);
  stopDaemon(cfgFile);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('ws.pty over the daemon WebSocket', { timeout: 600_000 }, () => {
  test('stty size shows the size and follows a resize; exit 3 makes wait() return 3', async () => {
    const ws = await islet.workspaces.create({ name: 'pty' });
    let seen = '';
    let waiter: (() => void) | undefined;
    const until = (re: RegExp, ms = 60_000) => new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${re} on the terminal; it shows ${JSON.stringify(seen.slice(-500))}`)), ms);
      waiter = () => { if (re.test(seen)) { clearTimeout(t); waiter = undefined; resolve(); } };
      waiter();
    });
    const pty = await ws.pty.create({ cols: 80, rows: 24, onData: (d) => { seen += d.toString(); waiter?.(); } });
    pty.write('stty size; echo h""i\n'); // the echo of the typed line shows h""i, the output hi
    await until(/24 80\r?\n[^]*\bhi\r?\n/);
    pty.resize(100, 30);
    pty.write('stty size\n');
    await until(/30 100/);
    // Echo round trip: a keystroke in, its echo out (the guest terminal echoes in cooked mode).
    const rtts: number[] = [];
    for (let i = 0; i < 30; i++) {
      const mark = `${String.fromCharCode(97 + (i % 26))}`;
      const before = seen.length;
      const t0 = performance.now();
      const got = new Promise<void>((r) => { waiter = () => { if (seen.length > before && seen.slice(before).includes(mark)) { waiter = undefined; r(); } }; });
      pty.write(mark);
      await got;
      rtts.push(performance.now() - t0);
    }
    pty.write('\x15'); // ^U: drop the typed line
    rtts.sort((a, b) => a - b);
    process.stderr.write(`[pty] keystroke echo round trip over the WebSocket: p50 ${rtts[15]!.toFixed(1)} ms, p99 ${rtts[29]!.toFixed(1)} ms (30 keys)\n`);
    pty.write('exit 3\n');
    assert.equal(await pty.wait(), 3);
    await ws.destroy();
  });
});
