// The SDK from a program, as a user of islet/sdk writes it. CI runs it
// (npm run example) against the local daemon, which it starts if needed.
import { Islet, WorkspaceNotFoundError } from 'islet/sdk';

const islet = new Islet();
const ws = await islet.workspaces.create({ image: 'base', name: `example-${process.pid}` });
try {
  const r = await ws.exec('uname -sr; echo $((6 * 7))', { onStdout: (b) => process.stdout.write(b) });
  if (r.exit_code !== 0 || !r.stdout.includes('42')) throw new Error(`unexpected exec result: ${JSON.stringify(r)}`);
  await ws.files.write('/root/hello.txt', 'hello from the SDK\n');
  const back = (await ws.files.read('/root/hello.txt')).toString();
  if (back !== 'hello from the SDK\n') throw new Error(`read back ${JSON.stringify(back)}`);
  await ws.snapshots.create('after-hello');
  const fork = await ws.fork({ snapshot: 'after-hello' });
  console.log(`fork ${fork.id}: ${(await fork.exec(['cat', '/root/hello.txt'])).stdout.trim()}`);
  await fork.destroy();
} finally {
  await ws.destroy();
}
try {
  await islet.workspaces.get(ws.id);
  throw new Error('a destroyed workspace was still found');
} catch (e) {
  if (!(e instanceof WorkspaceNotFoundError)) throw e;
  console.log(`example: ok (${ws.id} destroyed: ${e.code})`);
}
