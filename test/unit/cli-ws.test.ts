// `islet ws` input checking: bad flags fail with INVALID_ARGUMENT naming the
// flag before any service (or VM) is touched.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-ws-'));
const cfg = path.join(dir, 'islet.toml');
writeFileSync(cfg, `[storage]\ndata_dir = "${dir}/data"\nrun_dir = "${dir}/run"\n`);
// --config goes right after the subcommand: anything after `--` is the guest's argv.
const islet = (sub: string, ...args: string[]) =>
  spawnSync(process.execPath, [path.resolve('bin/islet.js'), 'ws', sub, '--config', cfg, ...args], { encoding: 'utf8', timeout: 30_000, input: '' });

const usage = (args: string[], re: RegExp) => {
  const r = islet(...(args as [string, ...string[]]));
  assert.equal(r.status, 64, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, re);
};

test('create flags are validated with the create schema and name the flag', () => {
  usage(['create', '--vcpus', 'two'], /error\[INVALID_ARGUMENT\]: --vcpus must be a whole number, got "two"/);
  usage(['create', '--vcpus', '0'], /--vcpus: Number must be greater than or equal to 1/);
  usage(['create', '--memory', '99999999'], /--memory: /);
  usage(['create', '--disk', '5000'], /--disk: /);
  usage(['create', '--name', 'Not_Valid'], /--name: lowercase letters/);
  usage(['create', '--image', 'UPPER'], /--image: /);
  usage(['create', '--owner', 'two words'], /--owner "two words": /);
});

test('ids, paths and exec input are validated', () => {
  usage(['info', 'bad id!'], /<id>: letters, digits/);
  usage(['list', '--state', 'sleeping'], /--state: Invalid enum value/);
  usage(['exec', 'ws1'], /no command given/);
  usage(['exec', 'ws1', '--sh', 'true', '--', 'ls'], /either --sh or a command/);
  usage(['exec', 'ws1', '-e', 'NOEQUALS', '--', 'ls'], /--env "NOEQUALS" is not KEY=VALUE/);
  usage(['exec', 'ws1', '-e', '1BAD=x', '--', 'ls'], /--env 1BAD: /);
  usage(['exec', 'ws1', '--timeout', '0', '--', 'ls'], /--timeout: /);
  usage(['exec', 'ws1', '--cwd', 'relative', '--', 'ls'], /--cwd: must be an absolute path in the guest/);
  usage(['read', 'ws1', 'etc/passwd'], /<guest-path>: must be an absolute path/);
  usage(['read', 'ws1', '/etc/passwd', '--max-bytes', '999999999'], /--max-bytes: /);
  usage(['write', 'ws1', '/tmp/x', '--mode', '999'], /--mode must be octal/);
  usage(['upload', 'ws1', 'in.txt', 'relative'], /<guest-path>: must be an absolute path/);
  usage(['download', 'ws1', '', '/etc/hostname'], /<host-path>: /);
});

test('a missing --from file is FILE_NOT_FOUND', () => {
  const r = islet('write', 'ws1', '/tmp/x', '--from', path.join(dir, 'nope'));
  assert.equal(r.status, 66, r.stderr);
  assert.match(r.stderr, /error\[FILE_NOT_FOUND\]: --from /);
});

test('snapshot, fork and pause input is validated with the same schemas', () => {
  const snap = (...args: string[]) => {
    const [sub, ...rest] = args as [string, ...string[]];
    const r = spawnSync(process.execPath, [path.resolve('bin/islet.js'), 'ws', 'snapshot', sub, '--config', cfg, ...rest], { encoding: 'utf8', timeout: 30_000 });
    return r;
  };
  const bad = snap('create', 'ws1', 'bad name!');
  assert.equal(bad.status, 64, bad.stderr);
  assert.match(bad.stderr, /<name>: /);
  const badRef = snap('restore', 'ws1', '../x');
  assert.equal(badRef.status, 64, badRef.stderr);
  assert.match(badRef.stderr, /<snapshot>: /);
  usage(['fork', 'ws1', '--name', 'Bad_Name'], /--name: /);
  usage(['pause', 'bad id!'], /<id>: /);
});

test('validation failures never create state', () => {
  islet('create', '--vcpus', '0');
  assert.equal(existsSync(path.join(dir, 'data', 'state.db')), false);
});

test('ws write reads stdin and --from with a bound, failing fast on an endless source (issue 12 #8)', () => {
  const t0 = Date.now();
  const zero = openSync('/dev/zero', 'r');
  const r = spawnSync(process.execPath, [path.resolve('bin/islet.js'), 'ws', 'write', '--config', cfg, 'ws1', '/x'],
    { encoding: 'utf8', timeout: 20_000, stdio: [zero, 'pipe', 'pipe'] });
  closeSync(zero);
  assert.equal(r.signal, null, 'killed by the timeout: stdin was read without a bound');
  assert.match(r.stderr, /error\[FILE_TOO_LARGE\]: stdin \(ws write takes at most \d+ bytes\) is more than/);
  const f = islet('write', 'ws1', '/x', '--from', '/dev/zero');
  assert.equal(f.signal, null);
  assert.match(f.stderr, /error\[FILE_TOO_LARGE\]: --from \/dev\/zero/);
  assert.ok(Date.now() - t0 < 20_000);
});

test('background process and terminal flags are validated before any service is touched', () => {
  usage(['exec', 'ws1', '-d', '-t', '--', 'ls'], /either --detach or --tty/);
  usage(['exec', 'ws1', '-d', '-i', '--', 'cat'], /--stdin does not go with --detach/);
  usage(['logs', 'ws1', 'x'], /<process-id> must be a whole number/);
  usage(['logs', 'ws1', '0'], /<process-id> must be a positive whole number/);
  usage(['logs', 'ws1', '3', '--offset', '-1'], /--offset must be a whole number/);
  usage(['kill', 'ws1', '3', '--signal', 'STOP'], /--signal: Invalid enum value/);
  usage(['ps', 'bad id!'], /<id>: letters, digits/);
  usage(['shell', 'bad id!'], /<id>: letters, digits/);
});
