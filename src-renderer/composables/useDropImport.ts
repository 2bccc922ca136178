// Turn a drop (or a file picker selection) of files and folders into something the import service
// takes: in Electron, absolute paths from the preload's `getPathForFile`; in a browser (serve mode),
// `{ relativePath, file }` pairs found by walking dropped folders with webkitGetAsEntry().
//
// DataTransfer items are only readable during the drop event, so everything is captured
// synchronously before the first await. Structural types only: this compiles and tests in Node.
import { ref } from 'vue';

export interface DroppedFile {
  /** Path relative to the dropped root, with '/' separators, including the top folder name ('photos/a.jpg'). */
  relativePath: string;
  file: File;
}

export type DropResult = { kind: 'paths'; paths: string[] } | { kind: 'files'; files: DroppedFile[] };

// Minimal shapes of the File and Directory Entries API (https://wicg.github.io/entries-api/).
export interface FileEntryLike {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
  fullPath?: string;
  file?(success: (f: File) => void, failure?: (err: unknown) => void): void;
  createReader?(): { readEntries(success: (entries: FileEntryLike[]) => void, failure?: (err: unknown) => void): void };
}

export interface DataTransferItemLike {
  kind: string;
  webkitGetAsEntry?(): FileEntryLike | null;
  getAsFile?(): File | null;
}

export interface DataTransferLike {
  items?: ArrayLike<DataTransferItemLike> | null;
  files?: ArrayLike<File> | null;
  types?: ArrayLike<string>;
}

export type GetPathForFile = (file: File) => string;

/** Names never worth importing: OS metadata and hidden files/folders. */
export function isIgnoredName(name: string): boolean {
  return name.startsWith('.') || name === 'Thumbs.db' || name === 'desktop.ini' || name === '__MACOSX';
}

function readFile(entry: FileEntryLike): Promise<File> {
  return new Promise((resolve, reject) => {
    if (!entry.file) return reject(new Error(`${entry.name}: cannot be read`));
    entry.file(resolve, (err) =>
      reject(new Error(`${entry.name}: cannot be read (${String((err as Error)?.message ?? err)})`)),
    );
  });
}

function readAllEntries(entry: FileEntryLike): Promise<FileEntryLike[]> {
  if (!entry.createReader) return Promise.resolve([]);
  const reader = entry.createReader();
  const all: FileEntryLike[] = [];
  // readEntries returns batches (Chromium: 100 at a time) until an empty batch.
  return new Promise((resolve, reject) => {
    const next = () =>
      reader.readEntries(
        (batch) => {
          if (batch.length === 0) return resolve(all);
          all.push(...batch);
          next();
        },
        (err) => reject(new Error(`${entry.name}: folder cannot be read (${String((err as Error)?.message ?? err)})`)),
      );
    next();
  });
}

/** All files under an entry, depth first, sorted by name within each folder for a stable order. */
export async function walkEntry(entry: FileEntryLike, prefix = '', out: DroppedFile[] = []): Promise<DroppedFile[]> {
  if (isIgnoredName(entry.name)) return out;
  const path = prefix ? `${prefix}/${entry.name}` : entry.name;
  if (entry.isFile) {
    out.push({ relativePath: path, file: await readFile(entry) });
  } else if (entry.isDirectory) {
    const children = await readAllEntries(entry);
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) await walkEntry(child, path, out);
  }
  return out;
}

/** Does this drag carry files (and not, say, a text selection)? */
export function hasFiles(dt: DataTransferLike | null | undefined): boolean {
  if (!dt) return false;
  const types = dt.types ? Array.from(dt.types) : [];
  return types.includes('Files');
}

/**
 * Read a drop. Call synchronously from the drop handler; the returned promise may settle later.
 * With `getPathForFile` (Electron) each top-level dropped file or folder becomes an absolute path;
 * if none yields a path it falls back to walking entries like a browser.
 */
export function collectDrop(dt: DataTransferLike, getPathForFile?: GetPathForFile): Promise<DropResult> {
  // Synchronous capture: items/files are emptied once the event handler returns.
  const files = dt.files ? Array.from(dt.files) : [];
  const entries: FileEntryLike[] = [];
  const looseFiles: File[] = [];
  const items = dt.items ? Array.from(dt.items) : [];
  for (const item of items) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.() ?? null;
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile?.();
      if (f) looseFiles.push(f);
    }
  }
  if (getPathForFile) {
    const paths = files.map((f) => safePath(getPathForFile, f)).filter((p): p is string => !!p);
    if (paths.length > 0) return Promise.resolve({ kind: 'paths', paths });
  }
  return (async () => {
    const out: DroppedFile[] = [];
    if (entries.length > 0) {
      for (const e of entries) await walkEntry(e, '', out);
      for (const f of looseFiles) pushLoose(out, f);
    } else {
      // No entries (an older browser, a drag source that gives none, or a drop made by a script, where
      // Chromium's webkitGetAsEntry() returns null): the plain files, each under its webkitRelativePath
      // when it has one (keeps a folder's structure), else its name.
      for (const f of files.length > 0 ? files : looseFiles) pushLoose(out, f);
    }
    return { kind: 'files', files: out } as DropResult;
  })();
}

/** 'ds/img/a.jpg' for a file that carries a folder-relative path, else its name. */
function relativePathOf(f: File): string {
  const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath;
  return rel ? rel.replace(/\\/g, '/').replace(/^\/+/, '') : f.name;
}

/** Add a file that came without an entry, unless a segment of its path is hidden or an OS file. */
function pushLoose(out: DroppedFile[], f: File): void {
  const rel = relativePathOf(f);
  if (rel.split('/').some((seg) => seg === '' || isIgnoredName(seg))) return; // isIgnoredName covers '.' and '..'
  out.push({ relativePath: rel, file: f });
}

function safePath(get: GetPathForFile, f: File): string | null {
  try {
    const p = get(f);
    return typeof p === 'string' && p.length > 0 ? p : null;
  } catch {
    return null;
  }
}

/** '/home/u/ds/img/a.jpg' with relative 'ds/img/a.jpg' -> '/home/u/ds' (either separator). */
function folderOf(abs: string, rel: string): string {
  const depth = rel.split('/').length - 1; // segments below the top folder
  let p = abs;
  for (let i = 0; i < depth; i++) {
    const cut = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
    if (cut <= 0) return abs;
    p = p.slice(0, cut);
  }
  return p;
}

/** Files chosen with <input type=file> (with or without webkitdirectory). */
export function collectPicked(files: ArrayLike<File>, getPathForFile?: GetPathForFile): DropResult {
  const list = Array.from(files);
  if (getPathForFile && list.length > 0) {
    // A folder picker yields every file under the folder: hand over the folder itself instead.
    const paths: string[] = [];
    for (const f of list) {
      const p = safePath(getPathForFile, f);
      if (!p) break;
      const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath || '';
      paths.push(rel.includes('/') ? folderOf(p, rel) : p);
    }
    if (paths.length === list.length) return { kind: 'paths', paths: [...new Set(paths)] };
  }
  const out: DroppedFile[] = [];
  for (const f of list) pushLoose(out, f);
  return { kind: 'files', files: out };
}

export interface DragEventLike {
  dataTransfer?: DataTransferLike | null;
  preventDefault(): void;
}

export interface UseDropImportOptions {
  onResult: (result: DropResult) => void;
  getPathForFile?: () => GetPathForFile | undefined;
  disabled?: () => boolean;
}

/** Drag state + handlers for a drop target. Nested dragenter/dragleave pairs are counted so the highlight does not flicker. */
export function useDropImport(opts: UseDropImportOptions) {
  const dragging = ref(false);
  const busy = ref(false);
  const error = ref<string | null>(null);
  let depth = 0;

  const usable = (e: DragEventLike) => !opts.disabled?.() && hasFiles(e.dataTransfer);

  function onDragEnter(e: DragEventLike) {
    if (!usable(e)) return;
    e.preventDefault();
    depth++;
    dragging.value = true;
  }
  function onDragOver(e: DragEventLike) {
    if (!usable(e)) return;
    e.preventDefault(); // required for the drop to be allowed
    const dt = e.dataTransfer as { dropEffect?: string } | null | undefined;
    if (dt) dt.dropEffect = 'copy';
  }
  function onDragLeave(e: DragEventLike) {
    if (!dragging.value) return;
    e.preventDefault();
    depth = Math.max(0, depth - 1);
    if (depth === 0) dragging.value = false;
  }
  async function onDrop(e: DragEventLike) {
    depth = 0;
    dragging.value = false;
    if (!e.dataTransfer || opts.disabled?.()) return;
    e.preventDefault();
    await run(collectDrop(e.dataTransfer, opts.getPathForFile?.()));
  }
  async function onPicked(files: ArrayLike<File> | null | undefined) {
    if (!files || files.length === 0 || opts.disabled?.()) return;
    await run(Promise.resolve(collectPicked(files, opts.getPathForFile?.())));
  }
  async function run(p: Promise<DropResult>) {
    busy.value = true;
    error.value = null;
    try {
      const result = await p;
      const n = result.kind === 'paths' ? result.paths.length : result.files.length;
      if (n === 0) {
        error.value = 'Nothing to import: the drop held no files (hidden and system files are skipped).';
        return;
      }
      opts.onResult(result);
    } catch (err) {
      error.value = `Could not read what was dropped: ${(err as Error).message ?? String(err)}`;
    } finally {
      busy.value = false;
    }
  }

  return { dragging, busy, error, onDragEnter, onDragOver, onDragLeave, onDrop, onPicked };
}
