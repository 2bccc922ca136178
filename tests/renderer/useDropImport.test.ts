import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  collectDrop,
  collectPicked,
  walkEntry,
  useDropImport,
  type FileEntryLike,
  type DataTransferLike,
  type DropResult,
} from '../../src-renderer/composables/useDropImport';

function fileEntry(name: string, content = name): FileEntryLike {
  return { isFile: true, isDirectory: false, name, file: (ok) => ok(new File([content], name)) };
}
function dirEntry(name: string, children: FileEntryLike[], batch = 2): FileEntryLike {
  return {
    isFile: false,
    isDirectory: true,
    name,
    createReader() {
      let pos = 0;
      // Returns entries in batches like Chromium, then an empty batch.
      return {
        readEntries(ok: (e: FileEntryLike[]) => void) {
          const out = children.slice(pos, pos + batch);
          pos += out.length;
          setTimeout(() => ok(out), 0);
        },
      };
    },
  };
}

test('walkEntry reads nested folders across readEntries batches, sorted, skipping hidden and OS files', async () => {
  const tree = dirEntry('photos', [
    fileEntry('b.jpg'),
    fileEntry('.DS_Store'),
    dirEntry('sub', [fileEntry('c.png'), fileEntry('Thumbs.db')]),
    fileEntry('a.jpg'),
    fileEntry('labels.jsonl', '{"x":1}'),
    dirEntry('.git', [fileEntry('HEAD')]),
  ]);
  const out = await walkEntry(tree);
  assert.deepEqual(
    out.map((f) => f.relativePath),
    ['photos/a.jpg', 'photos/b.jpg', 'photos/labels.jsonl', 'photos/sub/c.png'],
  );
  assert.equal(await out[2].file.text(), '{"x":1}');
});

test('walkEntry reports an unreadable file by name', async () => {
  const bad: FileEntryLike = {
    isFile: true,
    isDirectory: false,
    name: 'broken.jpg',
    file: (_ok, fail) => fail?.(new Error('NotReadableError')),
  };
  await assert.rejects(walkEntry(dirEntry('d', [bad])), /broken\.jpg: cannot be read \(NotReadableError\)/);
});

function transfer(entries: (FileEntryLike | null)[], files: File[]): DataTransferLike {
  return {
    types: ['Files'],
    files,
    items: entries.map((e, i) => ({ kind: 'file', webkitGetAsEntry: () => e, getAsFile: () => files[i] ?? null })),
  };
}

test('collectDrop in a browser walks folders and keeps loose files', async () => {
  const loose = new File(['x'], 'single.png');
  const dt = transfer([dirEntry('set', [fileEntry('1.jpg'), fileEntry('2.jpg')]), null], [new File([], 'set'), loose]);
  const r = await collectDrop(dt);
  assert.equal(r.kind, 'files');
  assert.deepEqual(
    (r as Extract<DropResult, { kind: 'files' }>).files.map((f) => f.relativePath),
    ['set/1.jpg', 'set/2.jpg', 'single.png'],
  );
});

test('collectDrop captures items synchronously (they are cleared after the event)', async () => {
  const files = [new File(['a'], 'a.jpg')];
  const dt = transfer([fileEntry('a.jpg')], files);
  const p = collectDrop(dt);
  // Simulate the browser invalidating the DataTransfer after the handler returns.
  (dt as { items: unknown }).items = [];
  (dt as { files: unknown }).files = [];
  const r = await p;
  assert.deepEqual(
    (r as Extract<DropResult, { kind: 'files' }>).files.map((f) => f.relativePath),
    ['a.jpg'],
  );
});

test('collectDrop with a path getter (Electron) returns absolute paths, or falls back when none resolve', async () => {
  const files = [new File([], 'photos'), new File([], 'x.jpg')];
  const paths = new Map([
    [files[0], '/home/u/photos'],
    [files[1], '/home/u/x.jpg'],
  ]);
  const r = await collectDrop(transfer([dirEntry('photos', []), fileEntry('x.jpg')], files), (f) => paths.get(f) ?? '');
  assert.deepEqual(r, { kind: 'paths', paths: ['/home/u/photos', '/home/u/x.jpg'] });
  const fallback = await collectDrop(transfer([fileEntry('x.jpg')], [files[1]]), () => '');
  assert.equal(fallback.kind, 'files');
});

test('collectPicked uses webkitRelativePath for folder pickers and skips hidden paths', () => {
  const f1 = new File(['1'], 'a.jpg');
  Object.defineProperty(f1, 'webkitRelativePath', { value: 'ds/img/a.jpg' });
  const f2 = new File(['2'], 'config');
  Object.defineProperty(f2, 'webkitRelativePath', { value: 'ds/.git/config' });
  const f3 = new File(['3'], 'b.jpg');
  const r = collectPicked([f1, f2, f3]);
  assert.deepEqual(
    (r as Extract<DropResult, { kind: 'files' }>).files.map((f) => f.relativePath),
    ['ds/img/a.jpg', 'b.jpg'],
  );
  assert.deepEqual(
    collectPicked([f3], () => '/abs/b.jpg'),
    { kind: 'paths', paths: ['/abs/b.jpg'] },
  );
  // Electron folder picker: every file has a path; the import gets the picked folder once.
  const g = new File(['g'], 'c.jpg');
  Object.defineProperty(g, 'webkitRelativePath', { value: 'ds/c.jpg' });
  const abs = new Map<File, string>([
    [f1, '/home/u/ds/img/a.jpg'],
    [g, '/home/u/ds/c.jpg'],
  ]);
  assert.deepEqual(
    collectPicked([f1, g], (f) => abs.get(f) ?? ''),
    { kind: 'paths', paths: ['/home/u/ds'] },
  );
  const win = new Map<File, string>([[f1, 'C:\\Users\\u\\ds\\img\\a.jpg']]);
  assert.deepEqual(
    collectPicked([f1], (f) => win.get(f) ?? ''),
    { kind: 'paths', paths: ['C:\\Users\\u\\ds'] },
  );
});

function dragEvent(dt: DataTransferLike | null) {
  return {
    dataTransfer: dt,
    prevented: false,
    preventDefault() {
      this.prevented = true;
    },
  };
}

test('useDropImport: nested enter/leave keeps the highlight; drop emits; an empty drop is an error in words', async () => {
  const results: DropResult[] = [];
  const d = useDropImport({ onResult: (r) => results.push(r) });
  const dt = transfer([fileEntry('a.jpg')], [new File(['a'], 'a.jpg')]);
  d.onDragEnter(dragEvent(dt));
  d.onDragEnter(dragEvent(dt)); // entering a child element
  d.onDragLeave(dragEvent(dt)); // leaving the child
  assert.equal(d.dragging.value, true);
  const over = dragEvent(dt);
  d.onDragOver(over);
  assert.ok(over.prevented, 'dragover must be prevented for drop to happen');
  await d.onDrop(dragEvent(dt));
  assert.equal(d.dragging.value, false);
  assert.equal(results.length, 1);
  assert.equal(d.busy.value, false);

  // A text drag is not ours.
  const text = dragEvent({ types: ['text/plain'] });
  d.onDragEnter(text);
  assert.equal(text.prevented, false);
  assert.equal(d.dragging.value, false);

  await d.onDrop(dragEvent(transfer([fileEntry('.DS_Store')], [new File([], '.DS_Store')])));
  assert.equal(results.length, 1);
  assert.match(d.error.value ?? '', /Nothing to import/);
});

test('collectDrop without entries (webkitGetAsEntry() null, as for a scripted drop) keeps webkitRelativePath folders', async () => {
  const withRel = (content: string, name: string, rel: string) => {
    const f = new File([content], name);
    Object.defineProperty(f, 'webkitRelativePath', { value: rel });
    return f;
  };
  const files = [
    withRel('img', 'a.png', 'icons/images/a.png'),
    withRel('{}', 'data.jsonl', 'icons/data.jsonl'),
    withRel('x', 'HEAD', 'icons/.git/HEAD'),
    withRel('y', 'w.png', 'drop\\w.png'), // backslashes from some sources become '/'
    new File(['z'], 'loose.png'), // no relative path: its name
    new File(['q'], '.DS_Store'),
  ];
  const dt: DataTransferLike = {
    types: ['Files'],
    files,
    items: files.map((f) => ({ kind: 'file', webkitGetAsEntry: () => null, getAsFile: () => f })),
  };
  const r = (await collectDrop(dt)) as Extract<DropResult, { kind: 'files' }>;
  assert.equal(r.kind, 'files');
  assert.deepEqual(
    r.files.map((f) => f.relativePath),
    ['icons/images/a.png', 'icons/data.jsonl', 'drop/w.png', 'loose.png'],
  );
  assert.equal(r.files[0].file, files[0]);
  assert.equal(await r.files[1].file.text(), '{}');

  // a source that gives items without entries and no `files` list: the items' files are used the same way
  const itemsOnly = (await collectDrop({ types: ['Files'], files: [], items: dt.items })) as Extract<
    DropResult,
    { kind: 'files' }
  >;
  assert.deepEqual(
    itemsOnly.files.map((f) => f.relativePath),
    r.files.map((f) => f.relativePath),
  );

  // next to a walked folder, an entry-less file keeps its relative path too
  const mixed = (await collectDrop({
    types: ['Files'],
    files: [new File([], 'set'), files[0]],
    items: [
      { kind: 'file', webkitGetAsEntry: () => dirEntry('set', [fileEntry('1.jpg')]), getAsFile: () => null },
      { kind: 'file', webkitGetAsEntry: () => null, getAsFile: () => files[0] },
    ],
  })) as Extract<DropResult, { kind: 'files' }>;
  assert.deepEqual(
    mixed.files.map((f) => f.relativePath),
    ['set/1.jpg', 'icons/images/a.png'],
  );
});
