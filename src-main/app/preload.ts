// Preload (CommonJS, sandboxed): exposes window.lenslab, typed by the contract's LenslabBridge.
import { contextBridge, ipcRenderer } from 'electron';
import { createBridge } from './bridge';
import type { LenslabBridge } from '../contract/index';

contextBridge.exposeInMainWorld('lenslab', createBridge(ipcRenderer) satisfies LenslabBridge);
