// Nothing that comes with a model runs as code: chat templates are interpreted by @huggingface/jinja without
// reaching JavaScript objects, and hostile safetensors headers fail cleanly before any large allocation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplate, ChatTemplateError } from '../../src-main/models/chat-template';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('sec-model-');
after(() => tmp.cleanup());

test('a chat template cannot reach constructors, prototypes, process or require', () => {
  const g = globalThis as Record<string, unknown>;
  const escapes = [
    "{{ messages.constructor.constructor('globalThis.pwned = 1; return process')() }}",
    "{{ ''.constructor.constructor('globalThis.pwned = 1')() }}",
    "{{ messages['constructor']['constructor']('globalThis.pwned = 1')() }}",
    "{{ messages[0].content.replace.constructor('globalThis.pwned = 1')() }}",
    "{{ raise_exception.constructor('globalThis.pwned = 1')() }}",
    "{{ range.constructor('globalThis.pwned = 1')() }}",
    "{{ bos_token.constructor.constructor('globalThis.pwned = 1')() }}",
    "{{ namespace.__init__.__globals__['os'].system('id') }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    '{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}',
    "{{ require('child_process').execSync('id') }}",
    "{{ process.mainModule.require('child_process') }}",
  ];
  for (const src of escapes) {
    let out: string | undefined;
    try {
      out = new ChatTemplate(src, { bos_token: '<s>' }).render([{ role: 'user', content: 'hi' }]);
    } catch (e) {
      assert.ok(e instanceof ChatTemplateError, `${src}: ${(e as Error).message}`);
    }
    assert.equal(g.pwned, undefined, src);
    if (out !== undefined) assert.doesNotMatch(out, /function|\[native code\]|uid=|pid/i, src);
  }
  // JavaScript members of the values are not visible at all
  for (const member of ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'map', 'prototype']) {
    const out = new ChatTemplate(
      `{{ messages.${member} }}|{{ messages[0].${member} }}|{{ messages[0].content.${member} }}`,
    ).render([{ role: 'user', content: 'hi' }]);
    assert.equal(out, '||', member);
  }
  assert.equal(g.process !== undefined, true);
});

function headerFile(name: string, lenField: bigint, rest: Buffer): string {
  const p = join(tmp.dir, name);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenField);
  writeFileSync(p, Buffer.concat([len, rest]));
  return p;
}

test('safetensors: absurd header lengths and offsets are clean errors, not giant allocations', () => {
  const before = process.memoryUsage().arrayBuffers;
  for (const n of [2n ** 64n - 1n, 2n ** 53n, 2n ** 40n, 101n * 1024n * 1024n]) {
    const p = headerFile(`len-${n}.safetensors`, n, Buffer.from('{}'));
    assert.throws(() => SafetensorsFile.open(p), /exceeds \d+ bytes/, String(n));
  }
  const hostile: Array<[string, unknown, RegExp]> = [
    [
      'huge-shape',
      { t: { dtype: 'F32', shape: [2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 4] } },
      /data_offsets span 4 bytes/,
    ],
    ['unsafe-offset', { t: { dtype: 'U8', shape: [1], data_offsets: [2 ** 60, 2 ** 60 + 1] } }, /data_offsets/],
    [
      'past-end',
      { t: { dtype: 'U8', shape: [1_000_000_000], data_offsets: [0, 1_000_000_000] } },
      /past the data buffer/,
    ],
    ['float-dims', { t: { dtype: 'U8', shape: [0.5], data_offsets: [0, 0] } }, /shape/],
    ['proto', null, /tensor "__proto__": data_offsets end 1 is past the data buffer/], // a plain name, no prototype
  ];
  for (const [name, header, re] of hostile) {
    const text = Buffer.from(
      name === 'proto' ? '{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' : JSON.stringify(header),
    );
    const p = headerFile(`${name}.safetensors`, BigInt(text.length), text);
    assert.throws(
      () => SafetensorsFile.open(p),
      (e: Error) => re.test(e.message) && e.message.includes(`${name}.safetensors`),
      name,
    );
  }
  assert.equal(({} as Record<string, unknown>).dtype, undefined, 'no prototype pollution');
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'no large buffers were allocated');
});
