// Bytes that must travel inside JSON (MCP results, CLI --json). Text goes as
// text only when it is text and survives JSON cheaply: valid UTF-8, no NUL,
// and an escaped form no bigger than base64 would be (plus a little slack,
// so a short line with a colour code stays readable). Anything else (invalid
// UTF-8, NULs, output made mostly of control bytes that JSON escapes as
// six-byte \u00XX) goes as base64 with an explicit flag, so the encoded size
// stays near 4/3 of the raw size and no byte is silently replaced.
import { isUtf8 } from 'node:buffer';
import { InvalidArgumentError } from './errors.js';

export type ContentEncoding = 'utf8' | 'base64';

const SLACK_BYTES = 64;

export function encodeBytes(b: Buffer, prefer: ContentEncoding = 'utf8'): { text: string; encoding: ContentEncoding } {
  if (prefer === 'utf8' && isUtf8(b) && !b.includes(0)) {
    const text = b.toString('utf8');
    if (Buffer.byteLength(JSON.stringify(text)) <= Math.ceil(b.length / 3) * 4 + SLACK_BYTES) return { text, encoding: 'utf8' };
  }
  return { text: b.toString('base64'), encoding: 'base64' };
}

// Padded base64; whitespace (line wrapping) is allowed and ignored. A plain
// character class, then the length: a grouped repetition backtracks through
// the whole string and overflows V8's stack on content of a few MiB.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (s: string) => s.length % 4 === 0 && BASE64_CHARS.test(s);

/** Decodes client content; invalid base64 is refused (Node's decoder would silently skip bad characters). */
export function decodeContent(content: string, encoding: ContentEncoding, field = 'content'): Buffer {
  if (encoding === 'utf8') return Buffer.from(content, 'utf8');
  const compact = content.replace(/[\t\n\r ]/g, '');
  if (!isBase64(compact)) {
    throw new InvalidArgumentError(`${field}: not valid base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4 characters)`,
      'send base64 of the bytes, or encoding: "utf8" for text', { field });
  }
  return Buffer.from(compact, 'base64');
}

/** An exec result's two streams, each encoded on its own. */
export function execStreams(stdout: Buffer, stderr: Buffer): {
  stdout: string; stderr: string; stdout_encoding: ContentEncoding; stderr_encoding: ContentEncoding;
} {
  const o = encodeBytes(stdout);
  const e = encodeBytes(stderr);
  return { stdout: o.text, stderr: e.text, stdout_encoding: o.encoding, stderr_encoding: e.encoding };
}
