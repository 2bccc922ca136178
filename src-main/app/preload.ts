// Preload (CommonJS, sandboxed): exposes window.lenslab, typed by the contract's LenslabBridge, and
// window.lenslabFiles.getPathForFile (a dropped File's absolute path, so imports read files in place).
import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { createBridge } from './bridge';
import type { LenslabBridge } from '../contract/index';

contextBridge.exposeInMainWorld('lenslab', createBridge(ipcRenderer) satisfies LenslabBridge);
contextBridge.exposeInMainWorld('lenslabFiles', { getPathForFile: (file: File) => webUtils.getPathForFile(file) });
