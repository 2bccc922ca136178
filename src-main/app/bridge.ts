// What the preload exposes as window.lenslab, built from an ipcRenderer. Only type imports here:
// a sandboxed preload cannot load modules from node_modules.
import type { IpcRenderer, IpcRendererEvent } from 'electron';
import type { LenslabBridge } from '../contract/index';

export const INVOKE_CHANNEL = 'lenslab:invoke';
export const EVENT_CHANNEL = 'lenslab:event';

export type IpcRendererLike = Pick<IpcRenderer, 'invoke' | 'on' | 'removeListener'>;

export function createBridge(ipc: IpcRendererLike): LenslabBridge {
  return {
    // Main answers with an envelope ({ok, result} | {ok: false, error}), so errors keep code and field.
    invoke: (method, params) => ipc.invoke(INVOKE_CHANNEL, String(method), params ?? {}),
    on(event, listener) {
      const name = String(event);
      // The IpcRendererEvent (with its sender) never reaches the page.
      const wrapped = (_e: IpcRendererEvent, ev: unknown, payload: unknown) => {
        if (ev === name) listener(payload as Parameters<typeof listener>[0]);
      };
      ipc.on(EVENT_CHANNEL, wrapped);
      return () => {
        ipc.removeListener(EVENT_CHANNEL, wrapped);
      };
    },
  };
}
