// Electron main entry: app lifecycle and windows only (see app.ts); the backend runs in a utilityProcess.
import * as electron from 'electron';
import { fileURLToPath } from 'node:url';
import { startApp } from './app';

startApp(electron, {
  mainDir: fileURLToPath(new URL('.', import.meta.url)),
  rendererUrl: process.env.ELECTRON_RENDERER_URL,
});
