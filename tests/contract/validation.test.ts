// Contract-wide guards: every method's params are a strict schema (unknown fields refused before any handler runs),
// every path-like string in params is bounded, and validation errors stay short whatever the request holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { z } from 'zod';
import { methods } from '../../src-main/contract/index';
import { errorFromIssues } from '../../src-main/contract/errors';

type Def = { type: string; [k: string]: unknown };
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Visit every string schema under `s`, with the object key it sits under. */
function walkStrings(
  s: z.ZodType,
  key: string,
  at: string,
  visit: (s: z.ZodType, key: string, at: string) => void,
  seen = new Set<unknown>(),
): void {
  if (seen.has(s)) return;
  seen.add(s);
  const d = defOf(s);
  switch (d.type) {
    case 'string':
      visit(s, key, at);
      break;
    case 'object':
      for (const [k, v] of Object.entries(d.shape as Record<string, z.ZodType>))
        walkStrings(v, k, `${at}.${k}`, visit, seen);
      break;
    case 'union':
      (d.options as z.ZodType[]).forEach((o, i) => walkStrings(o, key, `${at}|${i}`, visit, seen));
      break;
    case 'array':
      walkStrings(d.element as z.ZodType, key, `${at}[]`, visit, seen);
      break;
    case 'record':
      walkStrings(d.valueType as z.ZodType, key, `${at}{}`, visit, seen);
      break;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'nonoptional':
    case 'catch':
      walkStrings(d.innerType as z.ZodType, key, at, visit, seen);
      break;
    case 'pipe':
      walkStrings(d.in as z.ZodType, key, at, visit, seen);
      break;
    default:
      break;
  }
}

test('every method refuses unknown fields in its params', () => {
  const loose: string[] = [];
  for (const [name, def] of Object.entries(methods)) {
    const r = (def.input as z.ZodType).safeParse({ __injected__: 1 });
    if (r.success || !r.error.issues.some((i) => i.code === 'unrecognized_keys')) loose.push(name);
  }
  assert.deepEqual(loose, []);
  assert.ok(Object.keys(methods).length > 20);
});

test('every path-like string in params has a length limit', () => {
  const unbounded: string[] = [];
  let seen = 0;
  for (const [name, def] of Object.entries(methods)) {
    walkStrings(def.input as z.ZodType, '', name, (s, key, at) => {
      if (!/path|dir|folder|file|dest/i.test(key)) return;
      seen++;
      const max = (s as unknown as { maxLength: number | null }).maxLength;
      if (max === null || max > 4096) unbounded.push(`${at} (max ${max})`);
    });
  }
  assert.ok(seen >= 5, `found only ${seen} path fields: the walk is broken`);
  assert.deepEqual(unbounded, []);
});

test('validation errors do not echo huge inputs: unknown keys are listed up to 5 and clipped', () => {
  const input: Record<string, number> = {};
  for (let i = 0; i < 10_000; i++) input[`key${i}`] = 1;
  input['z'.repeat(1_000_000)] = 1;
  const r = (methods['datasets.create'].input as z.ZodType).safeParse({ name: 'n', ...input });
  assert.equal(r.success, false);
  const e = errorFromIssues(r.error!.issues, 'params of datasets.create');
  assert.ok(e.message.length < 2000, `message is ${e.message.length} characters`);
  assert.match(e.message, /key0, key1, key2, key3, key4 and 9996 more: unknown fields/);
  assert.equal(e.field, 'key0');
  const one = errorFromIssues(
    (methods['datasets.create'].input as z.ZodType).safeParse({ name: 'n', ['q'.repeat(100_000)]: 1 }).error!.issues,
    'x',
  );
  assert.ok(one.field!.length <= 201 && one.message.length < 500, 'a single huge key is clipped too');
  assert.match(one.message, /q…: unknown field$/);
});
