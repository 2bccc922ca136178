// Token checks for serve mode: 32 random bytes hex, accepted from `Authorization: Bearer`, `?token=`
// or the per-port cookie set when the app page is opened with ?token=.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export function newToken(): string {
  return randomBytes(32).toString('hex');
}

export function cookieName(port: number): string {
  return `lenslab_token_${port}`;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

export function tokenEquals(given: string | undefined | null, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export type TokenSource = 'header' | 'query' | 'cookie';

/** Which presented credential matches the token (undefined when none does). */
export function authenticate(req: IncomingMessage, url: URL, token: string, port: number): TokenSource | undefined {
  const auth = req.headers.authorization;
  if (auth && /^Bearer\s+/i.test(auth) && tokenEquals(auth.replace(/^Bearer\s+/i, '').trim(), token)) return 'header';
  if (tokenEquals(url.searchParams.get('token'), token)) return 'query';
  if (tokenEquals(parseCookies(req.headers.cookie).get(cookieName(port)), token)) return 'cookie';
  return undefined;
}

/** Host header must name this loopback server (defends against DNS rebinding). */
export function hostAllowed(hostHeader: string | undefined, port: number): boolean {
  if (!hostHeader) return false;
  return hostHeader === `127.0.0.1:${port}` || hostHeader === `localhost:${port}`;
}

/** A browser's Origin (when sent) must be this server. Non-browser clients send none. */
export function originAllowed(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true;
  return origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`;
}
