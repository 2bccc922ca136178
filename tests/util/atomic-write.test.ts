import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeAll, writeBytesAtomic, writeFileAtomic, writeTextAtomic } from '../../src-main/util/atomic-write';

const tmp = tempDir('atomic-write-');
after(tmp.cleanup);

test('writes land whole and leave no temp file beside the target', () => {
  const dir = join(tmp.dir, 'ok');
  mkdirSync(dir);
  const p = join(dir, 'a.txt');
  writeTextAtomic(p, 'héllo\n');
  assert.equal(readFileSync(p, 'utf8'), 'héllo\n');
  writeBytesAtomic(p, new Uint8Array([1, 2, 3]), { fsync: false });
  assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
  writeFileAtomic(p, (fd) => {
    writeAll(fd, new Uint8Array([9, 9]), 4);
    writeAll(fd, new Uint8Array([7, 7, 7, 7]), 0);
  });
  assert.deepEqual([...readFileSync(p)], [7, 7, 7, 7, 9, 9]);
  assert.deepEqual(readdirSync(dir), ['a.txt']);
});

test('a failing write keeps the old target and removes its temp file', () => {
  const dir = join(tmp.dir, 'fail');
  mkdirSync(dir);
  const p = join(dir, 'b.json');
  writeFileSync(p, 'old');
  assert.throws(
    () =>
      writeFileAtomic(p, (fd) => {
        writeAll(fd, Buffer.from('new, half'));
        throw new Error('disk full');
      }),
    /disk full/,
  );
  assert.equal(readFileSync(p, 'utf8'), 'old');
  assert.deepEqual(readdirSync(dir), ['b.json']);
});
