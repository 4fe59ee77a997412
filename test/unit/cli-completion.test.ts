// `islet completion bash|zsh` (generated from the command tree) and the
// parsers of the CLI's network and lifetime flags.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { completionScript, completionTable } from '../../src/surfaces/cli/completion.js';
import { minutesFlag } from '../../src/surfaces/cli/ws-lifetime.js';
import { list, onOff, ports } from '../../src/surfaces/cli/ws-network.js';

const islet = (...args: string[]) => spawnSync(process.execPath, [path.resolve('bin/islet.js'), ...args], { encoding: 'utf8', timeout: 30_000 });

/** What bash's completion function offers for the words typed so far (the last one being completed). */
function complete(script: string, words: string[]): string[] {
  const arr = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _islet; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('the bash script completes subcommands and flags at every level of the real command tree', () => {
  const r = islet('completion', 'bash');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(spawnSync('bash', ['-n'], { input: r.stdout }).status, 0, 'valid bash');
  assert.deepEqual(complete(r.stdout, ['islet', 'w']), ['ws']);
  assert.deepEqual(complete(r.stdout, ['islet', 'ws', 'forward', '']), ['add', 'rm', 'list']);
  assert.deepEqual(complete(r.stdout, ['islet', 'ws', 'po']), ['policy']);
  assert.deepEqual(complete(r.stdout, ['islet', 'ws', 'policy', 'ws-1', '--in']), ['--internet', '--inter-vm']);
  assert.ok(complete(r.stdout, ['islet', 'ws', 'create', '--']).includes('--ttl'));
  assert.ok(complete(r.stdout, ['islet', 'ws', 'create', '--']).includes('--allow-internet'));
  assert.ok(complete(r.stdout, ['islet', 'ws', '']).includes('lifetime'));
  assert.ok(complete(r.stdout, ['islet', '']).includes('completion'));
});

test('the zsh script has every command path; an unknown shell is a usage error', () => {
  const r = islet('completion', 'zsh');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^#compdef islet/);
  assert.match(r.stdout, /\(" ws forward"\) opts=\(add rm list/);
  assert.match(r.stdout, /compadd/);
  const bad = islet('completion', 'fish');
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /error\[INVALID_ARGUMENT\]: no completion for "fish"/);
});

test('the table follows the tree it is given, and refuses names a shell would interpret', () => {
  const p = new Command('islet');
  p.command('a').option('--x <v>').command('b');
  assert.deepEqual(completionTable(p), [{ path: '', words: ['a'] }, { path: ' a', words: ['b', '--x'] }, { path: ' a b', words: ['--help'] }]);
  const evil = new Command('islet');
  evil.command('$(rm)');
  assert.throws(() => completionScript(evil, 'bash'), /not safe/);
});

test('policy, forward and lifetime flag parsers', () => {
  assert.equal(onOff('--internet', 'on'), true);
  assert.equal(onOff('--internet', 'OFF'), false);
  assert.equal(onOff('--internet', undefined), undefined);
  assert.throws(() => onOff('--internet', 'maybe'), /--internet must be on or off/);
  assert.deepEqual(list('a.com, *.b.org'), ['a.com', '*.b.org']);
  assert.deepEqual(list('none'), []);
  assert.deepEqual(ports('--ports', '80,443'), [80, 443]);
  assert.throws(() => ports('--ports', '80,http'), /--ports: "http" is not a port number/);
  assert.equal(minutesFlag('--ttl', '30'), 30);
  assert.equal(minutesFlag('--ttl', 'never'), 0);
  assert.equal(minutesFlag('--ttl', 'default'), null);
  assert.throws(() => minutesFlag('--ttl', '1.5'), /--ttl must be whole minutes/);
});

test('ws create --ttl and ws lifetime flags are validated before any daemon is asked', () => {
  const r = islet('ws', 'create', '--ttl', 'soon');
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--ttl must be a whole number/);
  const l = islet('ws', 'lifetime', 'x', '--idle', '-3');
  assert.equal(l.status, 64);
});
