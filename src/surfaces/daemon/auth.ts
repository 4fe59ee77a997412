// Bearer tokens on the daemon's TCP listener, shared with MCP ([server]
// tokens). REST over TCP always needs a token: with none configured there is
// no way to tell callers apart, so the unix socket is the only way in.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../core/config.js';
import type { Caller } from '../../service/types.js';

export type AuthResult = { ok: true; caller: Caller } | { ok: false; message: string; hint: string };

/** Tokens are compared as SHA-256 digests so timingSafeEqual always sees equal lengths. */
const digest = (s: string) => createHash('sha256').update(s).digest();

export function bearerAuth(config: Config): (header: string | undefined) => AuthResult {
  const tokens = config.server.tokens;
  const digests = tokens.map((t) => digest(t.token));
  return (header) => {
    if (tokens.length === 0) {
      return { ok: false, message: 'the REST API over TCP needs bearer tokens, and none are configured',
        hint: 'add [[server.tokens]] (token, owner) to the config, or use the unix socket (the SDK and CLI do by default)' };
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m?.[1]) return { ok: false, message: 'missing bearer token', hint: 'send Authorization: Bearer <token> with a token from [server] tokens' };
    const d = digest(m[1]);
    let found = -1;
    // No early exit: the time taken must not depend on which token matched.
    digests.forEach((t, i) => { if (timingSafeEqual(t, d) && found < 0) found = i; });
    const t = tokens[found];
    if (!t) return { ok: false, message: 'invalid bearer token', hint: 'use a token from [server] tokens' };
    return { ok: true, caller: { owner: t.owner, admin: t.admin } };
  };
}
