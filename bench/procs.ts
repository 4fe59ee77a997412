// Background process and terminal figures on one VM: start -> first output
// byte (baseline: a plain EXEC's start -> first byte in the same run), a
// terminal keystroke's echo round trip (p50/p99), and follow-mode output
// throughput against EXEC output throughput of the same bytes.
// Standalone: `node dist/bench/procs.js` (boots its own VM; run under the VM lock).
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/core/config.js';
import { Runtime } from '../src/service/runtime.js';
import type { Row } from './mcp.js';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const THROUGHPUT_BYTES = 64 << 20;

export async function benchProcs(rt: Runtime, n: number, record: (r: Row) => void): Promise<void> {
  const m = await rt.boot({});
  try {
    const bg: number[] = [];
    const ex: number[] = [];
    for (let i = 0; i < n; i++) {
      let t0 = performance.now();
      const { id } = await m.agent.processes.start({ shell: 'echo x' });
      let r = await m.agent.processes.output({ id, offset: 0, waitMs: 10_000 });
      while (r.parts.length === 0 && r.proc.running) r = await m.agent.processes.output({ id, offset: 0, waitMs: 10_000 });
      bg.push(performance.now() - t0);
      t0 = performance.now();
      let first = 0;
      await m.exec({ shell: 'echo x' }, { onData: () => { first ||= performance.now() - t0; } });
      ex.push(first);
    }
    const b50 = pct(bg, 50);
    const e50 = pct(ex, 50);
    record({ metric: 'background start -> first output byte p50', value: b50, unit: 'ms', baseline: e50, ratio: b50 / e50, note: 'baseline: exec start -> first byte' });

    // Echo: the terminal's line discipline echoes each key, so one key in -> one byte out.
    const { id } = await m.agent.processes.start({ argv: ['cat'], pty: { cols: 80, rows: 24 } });
    let offset = 0;
    const rtt: number[] = [];
    for (let i = 0; i < Math.max(50, n * 10); i++) {
      const t0 = performance.now();
      const pending = m.agent.processes.output({ id, offset, waitMs: 10_000 });
      await m.agent.processes.write(id, Buffer.from('a'), false);
      const r = await pending;
      offset = r.next;
      rtt.push(performance.now() - t0);
    }
    await m.agent.processes.write(id, Buffer.alloc(0), true);
    record({ metric: 'terminal keystroke echo round trip p50', value: pct(rtt, 50), unit: 'ms' });
    record({ metric: 'terminal keystroke echo round trip p99', value: pct(rtt, 99), unit: 'ms' });

    // Follow throughput: a 16 MiB ring, read as fast as the host can; dropped bytes are not counted as received.
    let t0 = performance.now();
    const p = await m.agent.processes.start({ shell: `head -c ${THROUGHPUT_BYTES} /dev/zero`, ringBytes: 16 << 20 });
    let got = 0;
    let dropped = 0;
    let off = 0;
    for (;;) {
      const r = await m.agent.processes.output({ id: p.id, offset: off, maxBytes: 4 << 20, waitMs: 10_000 });
      for (const part of r.parts) got += part.data.length;
      dropped += r.dropped;
      off = r.next;
      if (!r.proc.running && off >= r.proc.outputBytes) break;
    }
    const follow = got / 1e6 / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    const e = await m.exec({ shell: `head -c ${THROUGHPUT_BYTES} /dev/zero`, maxOutputBytes: THROUGHPUT_BYTES });
    const exec = e.stdout.length / 1e6 / ((performance.now() - t0) / 1000);
    record({ metric: 'follow output throughput (64 MiB)', value: follow, unit: 'MB/s', baseline: exec, ratio: follow / exec,
      note: `baseline: exec output; ${dropped} bytes dropped by the ring` });
  } finally {
    await m.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rt = await Runtime.open(loadConfig());
  await benchProcs(rt, Number(process.env.BENCH_BOOTS ?? 5), (r) => {
    const base = r.baseline !== undefined ? `  (baseline ${r.baseline.toFixed(1)} ${r.unit}, ratio ${r.ratio?.toFixed(2)}x)` : '';
    console.log(`${r.metric.padEnd(44)} ${r.value.toFixed(1).padStart(9)} ${r.unit}${base}${r.note ? `  ${r.note}` : ''}`);
  });
}
