// Static files for serve mode: the built renderer and the content-addressed media store,
// both resolved so that no request path can escape its root.
import { closeSync, createReadStream, fstatSync, openSync, statSync } from 'node:fs';
import { extname, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import type { ServerResponse } from 'node:http';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wav': 'audio/wav',
  '.flac': 'audio/flac',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.opus': 'audio/ogg',
  '.m4a': 'audio/mp4',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.mov': 'video/quicktime',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
};

export function contentType(file: string): string {
  return TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Resolve a URL pathname inside root; undefined when it would escape root, is malformed,
 * or names a hidden segment. The caller checks existence.
 */
export function safeResolve(root: string, pathname: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s.length > 0);
  if (segments.some((s) => s === '..' || s.startsWith('.'))) return undefined;
  const base = resolve(root);
  const full = resolve(base, ...segments);
  if (full !== base && !full.startsWith(base + sep)) return undefined;
  return full;
}

/**
 * Stream a regular file; returns false when it does not exist or is not a file. The file is opened before
 * answering, so one removed meanwhile (image garbage collection) is a 404, not an unhandled stream error that
 * would end the server; a client that goes away closes the file.
 */
export function sendFile(res: ServerResponse, file: string, headers: Record<string, string> = {}): boolean {
  let size: number;
  let fd: number;
  try {
    if (!statSync(file).isFile()) return false;
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch {
    closeSync(fd);
    return false;
  }
  res.writeHead(200, { 'Content-Type': contentType(file), 'Content-Length': String(size), ...headers });
  pipeline(createReadStream('', { fd, autoClose: true }), res, () => {});
  return true;
}

/** Media paths clients may fetch: images/<aa>/<sha256>.<ext>, thumbs/<aa>/<sha256>.webp and audio/video media/<aa>/<sha256>.<ext>. */
export const MEDIA_PATH = /^\/media\/(images|thumbs|media)\/([0-9a-f]{2})\/([0-9a-f]{64})\.([a-z0-9]{1,5})$/;
