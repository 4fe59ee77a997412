// `islet ws shell` in a real terminal: tmux runs the CLI, the test types with
// send-keys and reads the screen with capture-pane. The guest shell must see
// the terminal's size and its changes, ^C must stop the foreground command
// and leave the shell alive, and the CLI must exit with the shell's status.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { vmEnv } from './factory.js';

const env = vmEnv('shell', { pool: { enabled: false } });
const dataDir = env.dir;
const cfgFile = env.cfgFile;
const session = `islet-shell-${process.pid}`;
const exitFile = path.join(dataDir, 'exit-status');
const errFile = path.join(dataDir, 'shell-stderr');
/** Runs the CLI on this test's data dir; the flags go before any `--`, which ends them. */
function isletArgs(args: string[]): string[] {
  const i = args.indexOf('--');
  const flags = ['--config', cfgFile, '-q'];
  return [path.resolve('bin/islet.js'), ...(i < 0 ? [...args, ...flags] : [...args.slice(0, i), ...flags, ...args.slice(i)])];
}
const islet = (...args: string[]) => execFileSync(process.execPath, isletArgs(args), { encoding: 'utf8' });
const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', session);

async function until(what: string, pred: (s: string) => boolean, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  let s = '';
  while (Date.now() < end) {
    if (existsSync(exitFile)) throw new Error(`the CLI exited (${readFileSync(exitFile, 'utf8').trim()}) while waiting for ${what}: ${readFileSync(errFile, 'utf8')}`);
    s = screen();
    if (pred(s)) return s;
    await delay(200);
  }
  throw new Error(`timed out waiting for ${what}; screen:\n${s}`);
}

/** Types a line and waits for its marker to appear in the output (not just in the echoed input). */
async function run(line: string, marker: RegExp): Promise<string> {
  tmux('send-keys', '-t', session, line, 'Enter');
  return until(`output of ${line}`, (s) => marker.test(s));
}

after(() => {
  try { tmux('kill-session', '-t', session); } catch { /* already gone */ }
});

describe('islet ws shell in tmux', { timeout: 600_000 }, () => {
  test('stty size follows a resize, ^C stops sleep and the shell lives, exit 3 makes the CLI exit 3', async () => {
    islet('ws', 'create', '--name', 'term');
    const cmd = `${process.execPath} ${path.resolve('bin/islet.js')} ws shell term --config ${cfgFile} -q 2>${errFile}; echo $? > ${exitFile}`;
    tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30', 'sh', '-c', cmd);
    await until('the prompt', (s) => /[#$] *$/m.test(s));
    await run('stty size', /^30 100\s*$/m);
    tmux('resize-window', '-t', session, '-x', '120', '-y', '40');
    await delay(500);
    await run('clear; stty size', /^40 120\s*$/m);
    tmux('send-keys', '-t', session, 'sleep 100; echo not-interrupted', 'Enter');
    await delay(1_500);
    tmux('send-keys', '-t', session, 'C-c');
    await run('echo alive-$((40+2))', /^alive-42\s*$/m);
    assert.doesNotMatch(screen(), /^not-interrupted/m);
    tmux('send-keys', '-t', session, 'exit 3', 'Enter');
    const end = Date.now() + 30_000;
    while (!existsSync(exitFile) && Date.now() < end) await delay(200);
    assert.equal(readFileSync(exitFile, 'utf8').trim(), '3');
  });

  test('ws exec -d, ws ps, ws logs -f (stdout and stderr apart, exits with the status), ws kill', () => {
    const id = islet('ws', 'exec', 'term', '-d', '--sh', 'echo out; sleep 1; echo err >&2; exit 4').trim();
    assert.match(id, /^\d+$/);
    assert.match(islet('ws', 'ps', 'term'), new RegExp(`^${id}\\s+\\d+\\s+(running|exited 4)\\s`, 'm'));
    const logs = spawnSync(process.execPath, isletArgs(['ws', 'logs', 'term', id, '-f']), { encoding: 'utf8' });
    assert.deepEqual([logs.stdout, logs.stderr, logs.status], ['out\n', 'err\n', 4]);
    const sleeper = islet('ws', 'exec', 'term', '-d', '--', 'sleep', '600').trim();
    assert.match(islet('ws', 'kill', 'term', sleeper), /sent TERM/);
    const after = spawnSync(process.execPath, isletArgs(['ws', 'logs', 'term', sleeper, '-f']));
    assert.equal(after.status, 143);
  });
});
