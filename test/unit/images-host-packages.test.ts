import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostPrerequisiteError } from '../../src/core/errors.js';
import { checkHostPackages, missingPackagesError, requiredHostPackages } from '../../src/host/packages.js';

test('the error names exactly the missing packages and the command to install them', () => {
  const missing = requiredHostPackages.filter((p) => p.name === 'lz4' || p.name === 'mmdebstrap');
  const e = missingPackagesError(missing);
  assert.ok(e instanceof HostPrerequisiteError);
  assert.equal(e.code, 'HOST_PREREQUISITE');
  assert.equal(e.hint, 'sudo apt-get install -y --no-install-recommends mmdebstrap lz4');
  assert.deepEqual(e.details, { missing: ['mmdebstrap', 'lz4'] });
  assert.match(e.message, /^missing host packages: mmdebstrap lz4 /);
});

test('every package names the programs that prove it is installed', async () => {
  for (const p of requiredHostPackages) {
    assert.ok(p.programs.length > 0 && p.why.length > 0, p.name);
  }
  // Whatever this host has, the answer is a subset of the table.
  const missing = await checkHostPackages();
  for (const m of missing) assert.ok(requiredHostPackages.includes(m));
});
