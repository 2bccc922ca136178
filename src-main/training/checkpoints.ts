// Training checkpoints written atomically, so that a crash at any moment leaves either the previous set of
// checkpoints or the previous set plus one complete new one — never a half-written one that looks valid.
//
// Layout under a run's checkpoint root:
//   step-000120/                 a complete checkpoint
//     manifest.json              written last: {format, version, step, createdAt, info, files:[{path, bytes, sha256}]}
//     adapter/adapter_model.safetensors, optimizer.safetensors, state.json, ...   (whatever the trainer saves)
//   step-000130.tmp-<pid>/       being written by process <pid> (or left by a crash; cleaned when that pid is gone)
//   step-000100.del-<pid>/       being deleted (pruning); cleaned likewise
//
// Writing: files go into the tmp dir, each fsynced; then manifest.json; the dir is fsynced and renamed to its final
// name; the parent dir is fsynced. A directory named step-N without a manifest that matches its files (sizes always,
// sha256 when verifying fully) is not a checkpoint: it is ignored and removed by cleanCheckpoints.
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { readSafetensors, writeSafetensors, type Tensor } from '../models/weights/safetensors';
import { pidAlive } from '../util/pid';

export const MANIFEST = 'manifest.json';
const FORMAT = 'lenslab-checkpoint';
const VERSION = 1;
const STEP_DIR = /^step-(\d{6,})$/;
const TEMP_DIR = /^step-(\d{6,})\.(tmp|del)-(\d+)$/;

/** A float32 tensor to save (stored as F32 unless dtype says otherwise). */
export interface StateTensor {
  shape: number[];
  data: Float32Array;
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** One file of a checkpoint, by kind. */
export type CheckpointFile =
  | { kind: 'safetensors'; tensors: Record<string, StateTensor>; metadata?: Record<string, string> }
  | { kind: 'json'; value: unknown }
  | { kind: 'bytes'; data: Uint8Array | string };

/** Relative path (forward slashes, may have sub-folders) → content. */
export type CheckpointFiles = Record<string, CheckpointFile>;

export interface ManifestEntry {
  path: string;
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: typeof FORMAT;
  version: number;
  step: number;
  createdAt: string;
  /** Free-form JSON the writer attaches (e.g. metrics at this step). */
  info: Record<string, unknown>;
  files: ManifestEntry[];
}

export interface CheckpointRef {
  step: number;
  dir: string;
  manifest: Manifest;
  /** Total bytes of the listed files. */
  bytes: number;
}

export function stepDirName(step: number): string {
  if (!Number.isInteger(step) || step < 0)
    throw new Error(`checkpoint step must be a non-negative integer, got ${step}`);
  return `step-${String(step).padStart(6, '0')}`;
}

function checkRelPath(p: string): string {
  const n = normalize(p).split(sep).join('/');
  if (!p || isAbsolute(p) || n.startsWith('../') || n === '..' || n === '.' || n.includes('/../') || p.includes('\0'))
    throw new Error(`checkpoint file path ${JSON.stringify(p)} must be relative and stay inside the checkpoint`);
  if (n === MANIFEST) throw new Error(`checkpoint file path ${JSON.stringify(p)} is reserved`);
  return n;
}

function fsyncPath(path: string): void {
  // Directories cannot be opened for fsync on every platform (Windows); durability there comes from the rename.
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

function writeDurable(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'w');
  try {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface SaveOptions {
  /** After saving, keep only the newest K complete checkpoints (default: keep all). */
  keepLastK?: number;
  info?: Record<string, unknown>;
  /** Test hook: called after the files are written and before the manifest/rename (to simulate a crash mid-save). */
  beforeCommit?: (tmpDir: string) => void;
}

/** Write a checkpoint for `step` under `root` atomically; returns it. An existing checkpoint of the same step is replaced. */
export function saveCheckpoint(
  root: string,
  step: number,
  files: CheckpointFiles,
  opts: SaveOptions = {},
): CheckpointRef {
  const name = stepDirName(step);
  mkdirSync(root, { recursive: true });
  const tmp = join(root, `${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const entries: ManifestEntry[] = [];
    const paths = Object.keys(files).map(checkRelPath);
    if (new Set(paths).size !== paths.length)
      throw new Error(`checkpoint step ${step}: two files map to the same path`);
    for (const [rel, file] of Object.entries(files)) {
      const relN = checkRelPath(rel);
      const full = join(tmp, relN);
      mkdirSync(dirname(full), { recursive: true });
      if (file.kind === 'safetensors') {
        const list = Object.entries(file.tensors).map(([tname, t]) => {
          const n = t.shape.reduce((a, b) => a * b, 1);
          if (n !== t.data.length)
            throw new Error(
              `checkpoint ${relN}: tensor "${tname}" has shape ${JSON.stringify(t.shape)} (${n} values) but ${t.data.length} values`,
            );
          return { name: tname, dtype: t.dtype ?? ('F32' as const), shape: t.shape, data: () => t.data };
        });
        writeSafetensors(full, list, file.metadata ?? { format: 'pt' });
      } else if (file.kind === 'json') {
        writeDurable(full, Buffer.from(JSON.stringify(file.value, null, 1) + '\n', 'utf8'));
      } else {
        writeDurable(full, typeof file.data === 'string' ? Buffer.from(file.data, 'utf8') : file.data);
      }
      entries.push({ path: relN, bytes: statSync(full).size, sha256: sha256File(full) });
    }
    opts.beforeCommit?.(tmp);
    const manifest: Manifest = {
      format: FORMAT,
      version: VERSION,
      step,
      createdAt: new Date().toISOString(),
      info: opts.info ?? {},
      files: entries,
    };
    writeDurable(join(tmp, MANIFEST), Buffer.from(JSON.stringify(manifest, null, 1) + '\n', 'utf8'));
    for (const d of new Set(entries.map((e) => dirname(join(tmp, e.path))))) fsyncPath(d);
    fsyncPath(tmp);
    const final = join(root, name);
    if (existsSync(final)) removeDir(root, name);
    renameSync(tmp, final);
    fsyncPath(root);
    const ref: CheckpointRef = { step, dir: final, manifest, bytes: entries.reduce((s, e) => s + e.bytes, 0) };
    if (opts.keepLastK !== undefined) pruneCheckpoints(root, opts.keepLastK);
    return ref;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Remove a step directory so that it disappears at once (rename to .del-<pid>, then delete). */
function removeDir(root: string, name: string): void {
  const del = join(root, `${name}.del-${process.pid}`);
  rmSync(del, { recursive: true, force: true });
  renameSync(join(root, name), del);
  rmSync(del, { recursive: true, force: true });
}

/** Check a checkpoint directory; returns its manifest or a reason it is not a valid checkpoint. */
export function verifyCheckpoint(
  dir: string,
  level: 'size' | 'sha256' = 'sha256',
): { ok: true; manifest: Manifest } | { ok: false; reason: string } {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (e) {
    return {
      ok: false,
      reason: `no readable ${MANIFEST} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    };
  }
  if (!manifest || manifest.format !== FORMAT || typeof manifest.step !== 'number' || !Array.isArray(manifest.files))
    return { ok: false, reason: `${MANIFEST} is not a ${FORMAT} manifest` };
  if (manifest.version > VERSION)
    return { ok: false, reason: `manifest version ${manifest.version} is newer than this Lenslab (${VERSION})` };
  for (const f of manifest.files) {
    let rel: string;
    try {
      rel = checkRelPath(f.path);
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
    const full = join(dir, rel);
    let size: number;
    try {
      size = statSync(full).size;
    } catch {
      return { ok: false, reason: `file ${f.path} is missing` };
    }
    if (size !== f.bytes) return { ok: false, reason: `file ${f.path} is ${size} bytes, the manifest says ${f.bytes}` };
    if (level === 'sha256' && sha256File(full) !== f.sha256)
      return { ok: false, reason: `file ${f.path} does not match its sha256` };
  }
  return { ok: true, manifest };
}

/** Complete checkpoints under root, oldest first (size-checked; directories that fail are skipped). */
export function listCheckpoints(root: string): CheckpointRef[] {
  if (!existsSync(root)) return [];
  const out: CheckpointRef[] = [];
  for (const name of readdirSync(root)) {
    const m = STEP_DIR.exec(name);
    if (!m) continue;
    const dir = join(root, name);
    const v = verifyCheckpoint(dir, 'size');
    if (!v.ok || v.manifest.step !== Number(m[1])) continue;
    out.push({
      step: v.manifest.step,
      dir,
      manifest: v.manifest,
      bytes: v.manifest.files.reduce((s, f) => s + f.bytes, 0),
    });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest checkpoint whose files all match their sha256, or null. Older ones are tried when the newest fails. */
export function latestCheckpoint(root: string): CheckpointRef | null {
  const all = listCheckpoints(root);
  for (let i = all.length - 1; i >= 0; i--) if (verifyCheckpoint(all[i].dir, 'sha256').ok) return all[i];
  return null;
}

/** Delete all but the newest `keep` complete checkpoints; returns the steps removed. */
export function pruneCheckpoints(root: string, keep: number): number[] {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`keepLastK must be a positive integer, got ${keep}`);
  const all = listCheckpoints(root);
  const drop = all.slice(0, Math.max(0, all.length - keep));
  for (const c of drop) removeDir(root, stepDirName(c.step));
  return drop.map((c) => c.step);
}

/**
 * Remove what a crash or a cancel can leave behind: temp/deleting directories whose writer process is gone, and
 * step directories that are not valid checkpoints. Returns the names removed.
 */
export function cleanCheckpoints(root: string): string[] {
  if (!existsSync(root)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(root)) {
    const t = TEMP_DIR.exec(name);
    const full = join(root, name);
    if (t) {
      const pid = Number(t[3]);
      if (pid === process.pid || !pidAlive(pid)) {
        rmSync(full, { recursive: true, force: true });
        removed.push(name);
      }
      continue;
    }
    const m = STEP_DIR.exec(name);
    if (m && statSync(full).isDirectory()) {
      const v = verifyCheckpoint(full, 'size');
      if (!v.ok || v.manifest.step !== Number(m[1])) {
        rmSync(full, { recursive: true, force: true });
        removed.push(name);
      }
    }
  }
  return removed;
}

/** Readers for a verified checkpoint's files. */
export interface LoadedCheckpoint extends CheckpointRef {
  has(path: string): boolean;
  json<T = unknown>(path: string): T;
  tensors(path: string): Map<string, Tensor>;
  raw(path: string): Buffer;
}

/** Open a checkpoint directory after verifying every file's sha256; throws naming the problem. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const v = verifyCheckpoint(dir, 'sha256');
  if (!v.ok) throw new Error(`checkpoint ${dir} is not usable: ${v.reason}`);
  const listed = new Set(v.manifest.files.map((f) => f.path));
  const resolve = (p: string) => {
    const rel = checkRelPath(p);
    if (!listed.has(rel)) throw new Error(`checkpoint ${dir} has no file ${p}`);
    return join(dir, rel);
  };
  return {
    step: v.manifest.step,
    dir,
    manifest: v.manifest,
    bytes: v.manifest.files.reduce((s, f) => s + f.bytes, 0),
    has: (p) => listed.has(checkRelPath(p)),
    json: <T>(p: string) => JSON.parse(readFileSync(resolve(p), 'utf8')) as T,
    tensors: (p) => readSafetensors(resolve(p)),
    raw: (p) => readFileSync(resolve(p)),
  };
}
