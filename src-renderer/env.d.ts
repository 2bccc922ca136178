/// <reference types="vite/client" />
import type { LenslabBridge } from '../src-main/contract/index';

declare global {
  interface Window {
    /** Exposed by the Electron preload; undefined in a browser (serve mode). */
    lenslab?: LenslabBridge;
    /** Exposed by the Electron preload: the absolute path of a dropped or picked File. */
    lenslabFiles?: { getPathForFile(file: File): string };
  }
}

declare module '*.vue' {
  import type { DefineComponent } from 'vue';
  const component: DefineComponent<object, object, unknown>;
  export default component;
}

export {};
