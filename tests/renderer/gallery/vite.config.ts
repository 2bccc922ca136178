import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';
import { fileURLToPath } from 'node:url';

// The component gallery: `node --import tsx tests/renderer/gallery/shoot.ts` serves and screenshots it;
// `npx vite tests/renderer/gallery` serves it for a person.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [vue()],
  logLevel: 'warn',
  server: {
    host: '127.0.0.1',
    strictPort: false,
    fs: { allow: [fileURLToPath(new URL('../../..', import.meta.url))] },
  },
  optimizeDeps: { include: ['vue', 'uplot'] },
});
