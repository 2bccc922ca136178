// Builds the Electron main process (src-main/app/main.ts + the backend utilityProcess), the preload
// (CommonJS: a sandboxed renderer's preload cannot be ESM) and the renderer (src-renderer → out/renderer).
import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import vue from '@vitejs/plugin-vue';
import type { Plugin } from 'vite';

const root = import.meta.dirname;

/** The renderer's Content-Security-Policy: strict in builds; the dev server needs inline styles and its socket. */
export function rendererCsp(dev: boolean): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    dev ? "style-src 'self' 'unsafe-inline'" : "style-src 'self'",
    "img-src 'self' data: blob: lenslab-media:",
    // audio/video items play from the media store; the waveform reads the clip's bytes (fetch)
    "media-src 'self' blob: lenslab-media:",
    "font-src 'self'",
    "connect-src 'self' lenslab-media: ws://127.0.0.1:* ws://localhost:*",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
}

function cspMeta(): Plugin {
  let dev = false;
  return {
    name: 'lenslab-csp-meta',
    configResolved(c) {
      dev = c.command === 'serve';
    },
    transformIndexHtml() {
      return [
        {
          tag: 'meta',
          attrs: { 'http-equiv': 'Content-Security-Policy', content: rendererCsp(dev) },
          injectTo: 'head-prepend',
        },
      ];
    },
  };
}

export default defineConfig({
  main: {
    build: {
      outDir: resolve(root, 'out/main'),
      rolldownOptions: {
        input: {
          main: resolve(root, 'src-main/app/main.ts'),
          backend: resolve(root, 'src-main/app/backend-process.ts'),
          // started by the backend as separate processes / threads, so they need entries of their own
          job: resolve(root, 'src-main/jobs/entry.ts'),
          'generate-worker': resolve(root, 'src-main/models/generate-worker.ts'),
          'backend-worker': resolve(root, 'src-main/services/work-worker.ts'),
          'import-worker': resolve(root, 'src-main/datasets/import-worker.ts'),
          'media-worker': resolve(root, 'src-main/media/media-worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      outDir: resolve(root, 'out/preload'),
      rolldownOptions: {
        input: { preload: resolve(root, 'src-main/app/preload.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(root, 'src-renderer'),
    base: './',
    plugins: [vue(), cspMeta()],
    server: { fs: { allow: [root] } },
    build: {
      outDir: resolve(root, 'out/renderer'),
      emptyOutDir: true,
      rolldownOptions: { input: resolve(root, 'src-renderer/index.html') },
    },
  },
});
