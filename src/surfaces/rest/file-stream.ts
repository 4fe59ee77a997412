// GET /v1/workspaces/{id}/files, answered straight on the node response:
// each piece the guest sends is written as it comes, and the next one is
// taken only once the client has taken the last (the socket drained), so
// memory stays about a window whatever the file's size.
import type { ServerResponse } from 'node:http';
import type { WorkspaceService } from '../../service/workspaces.js';

type FileStream = Awaited<ReturnType<WorkspaceService['readStream']>>;

export async function streamFile(res: ServerResponse, f: FileStream): Promise<void> {
  const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Content-Length': String(f.size) };
  if (f.mode !== undefined) headers['x-islet-file-mode'] = f.mode.toString(8).padStart(4, '0');
  res.writeHead(200, headers);
  const it = f.chunks[Symbol.asyncIterator]();
  let gone = false;
  const onClose = () => { gone = true; };
  res.once('close', onClose);
  try {
    for (;;) {
      const n = await it.next();
      if (n.done) break;
      if (gone) return;
      if (!res.write(n.value)) {
        await new Promise<void>((resolve) => {
          const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
          res.once('drain', done);
          res.once('close', done);
        });
      }
      if (gone) return;
    }
    res.end();
  } catch {
    // Headers are out: a read that fails midway (the file changed size, the guest went away) can only
    // cut the body short of its Content-Length, which the client sees as a truncated transfer.
    res.destroy();
  } finally {
    res.off('close', onClose);
    if (gone) await it.return?.(undefined);
  }
}
