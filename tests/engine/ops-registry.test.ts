// Every gradient rule in the op registry has a float64 finite-difference check. This file runs the op families'
// tests (tests/engine/ops-*.test.ts) in its own process, then compares the op types their passing float64 gradchecks
// differentiated through (gradcheck.ts float64Checked) with the registry: a rule registered without such a check, or
// whose only checks are float32, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { registeredOps } from '../../src-main/engine/ops/registry';
import { float64Checked } from './gradcheck';

const here = new URL('.', import.meta.url);
const families = readdirSync(here)
  .filter((f) => /^ops-.+\.test\.ts$/.test(f) && f !== 'ops-registry.test.ts')
  .sort();
for (const f of families) await import(new URL(f, here).href);

test('every registered gradient rule has a passing float64 gradcheck', () => {
  assert.ok(families.length >= 10, `op family tests found: ${families.join(', ')}`);
  const missing = registeredOps().filter((op) => !float64Checked.has(op));
  assert.deepEqual(missing, [], `gradient rules without a float64 check: ${missing.join(', ')}`);
});
