// The official MCP conformance suite (@modelcontextprotocol/conformance, a
// client we did not write) against the daemon's Streamable HTTP endpoint over
// TCP. No VM boots: these scenarios exercise the protocol, not the tools.
//
// Scenarios for capabilities islet does not advertise (logging, completions,
// resources, prompts) are left out: the spec answers them with -32601, which
// the suite counts as a failure. So are the ones that call fixture tools of
// the suite's reference server (test_simple_text, test_reconnection, ...).
// The suite is pinned at 0.1.13: later releases need Node 22 (fs.globSync).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { vmEnv } from './factory.js';

const run = promisify(execFile);
const env = vmEnv('mcp-conformance', { pool: { enabled: false }, server: { daemon_idle_exit_s: 0 } });
after(() => env.cleanup());

// Its bin is not in the package's exports: resolve the package root from its manifest.
const suite = path.join(path.dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/conformance/package.json')), 'dist/index.js');

const SCENARIOS = [
  'server-initialize',
  'ping',
  'tools-list',
  'tools-call-error',
  'server-sse-multiple-streams',
  'dns-rebinding-protection',
];

describe('MCP conformance suite against the daemon', () => {
  let url = '';
  before(async () => {
    const d = env.spawn(process.execPath, [path.resolve('bin/islet.js'), 'daemon', 'run', '--tcp', '--port', '0', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    env.note('daemon stderr', () => err);
    url = await new Promise<string>((resolve, reject) => {
      d.stderr!.on('data', (c: Buffer) => {
        err += c;
        const m = /and (http:\/\/[^\s]+)/.exec(err);
        if (m?.[1]) resolve(`${m[1]}/mcp`);
      });
      d.once('exit', () => reject(new Error(`daemon exited: ${err}`)));
    });
  });

  for (const scenario of SCENARIOS) {
    test(scenario, async () => {
      const r = await run(process.execPath, [suite, 'server', '--url', url, '--scenario', scenario], { timeout: 60_000, maxBuffer: 4 << 20 })
        .catch((e: { stdout?: string; stderr?: string; message: string }) => ({ stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}\n${e.message}` }));
      const out = r.stdout.replace(/\x1b\[[0-9;]*m/g, '');
      const m = /Passed: (\d+)\/(\d+), (\d+) failed/.exec(out);
      assert.ok(m, `no result line from the suite:\n${out}\n${r.stderr}`);
      assert.equal(m[3], '0', out);
      assert.equal(m[1], m[2], out);
      assert.ok(Number(m[2]) > 0, 'the scenario ran checks');
    });
  }
});
