// Snapshot undo/redo for a small value (an editor draft). `record(next, mergeKey)` pushes the previous
// state; consecutive records with the same mergeKey (typing in one field) coalesce into one step.
import { computed, shallowRef, type ShallowRef } from 'vue';

export interface UndoStack<T> {
  present: ShallowRef<T>;
  canUndo: Readonly<{ value: boolean }>;
  canRedo: Readonly<{ value: boolean }>;
  record(next: T, mergeKey?: string): void;
  undo(): T | undefined;
  redo(): T | undefined;
  /** Replace the state and forget history (a new item was loaded). */
  reset(value: T): void;
  /** Stop coalescing: the next record starts a new step even with the same key. */
  seal(): void;
}

export function useUndoStack<T>(initial: T, limit = 200): UndoStack<T> {
  const present = shallowRef(initial);
  const past = shallowRef<T[]>([]);
  const future = shallowRef<T[]>([]);
  let lastKey: string | undefined;

  function record(next: T, mergeKey?: string) {
    if (mergeKey !== undefined && mergeKey === lastKey && past.value.length > 0) {
      // Coalesce: keep the snapshot from before the burst began.
      present.value = next;
      future.value = [];
      return;
    }
    const p = past.value.concat([present.value]);
    if (p.length > limit) p.splice(0, p.length - limit);
    past.value = p;
    present.value = next;
    future.value = [];
    lastKey = mergeKey;
  }
  function undo(): T | undefined {
    if (past.value.length === 0) return undefined;
    const p = past.value.slice();
    const prev = p.pop() as T;
    future.value = [present.value, ...future.value];
    past.value = p;
    present.value = prev;
    lastKey = undefined;
    return prev;
  }
  function redo(): T | undefined {
    if (future.value.length === 0) return undefined;
    const [next, ...rest] = future.value;
    past.value = past.value.concat([present.value]);
    future.value = rest;
    present.value = next;
    lastKey = undefined;
    return next;
  }
  function reset(value: T) {
    present.value = value;
    past.value = [];
    future.value = [];
    lastKey = undefined;
  }
  return {
    present,
    canUndo: computed(() => past.value.length > 0),
    canRedo: computed(() => future.value.length > 0),
    record,
    undo,
    redo,
    reset,
    seal: () => {
      lastKey = undefined;
    },
  };
}
