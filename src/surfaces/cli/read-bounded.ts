// The CLI's reads of stdin and of --from files: bounded while reading, so
// `yes | islet ws write ...` or `--from /dev/zero` fails fast at the limit
// instead of buffering gigabytes before a size check.
import { createReadStream } from 'node:fs';
import { IsletError } from '../../core/errors.js';

export async function readBounded(s: NodeJS.ReadableStream, max: number, what: string, hint?: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of s) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c);
    size += b.length;
    if (size > max) {
      // Stop reading now: the rest is never pulled into memory.
      (s as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      throw new IsletError('FILE_TOO_LARGE', `${what} is more than ${max} bytes`, hint, { max });
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, size);
}

/** A host file for the CLI to send: any readable file (a FIFO from <(cmd) too), read up to max bytes. */
export async function readFileBounded(file: string, max: number, what: string, hint?: string): Promise<Buffer> {
  const s = createReadStream(file);
  try {
    return await readBounded(s, max, what, hint);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err instanceof IsletError) throw err;
    throw new IsletError(err.code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'INVALID_ARGUMENT', `${what}: ${err.message}`);
  } finally {
    s.destroy();
  }
}
