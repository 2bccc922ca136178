import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filtersFromQuery, filtersToQuery, itemCaption, LINT_LABELS } from '../../src-renderer/composables/datasetView';
import { sameAnnotations } from '../../src-renderer/composables/itemEditor';
import { LINT_RULES } from '../../src-main/contract/datasets-io';

test('item filters survive the URL round trip; unknown values are dropped', () => {
  const f = { split: 'none', tag: 'night', lintRule: 'empty_answer', unlabeled: true, search: 'red star' } as const;
  assert.deepEqual(filtersFromQuery(filtersToQuery(f)), f);
  assert.deepEqual(filtersFromQuery(filtersToQuery({ unlabeled: false })), { unlabeled: false });
  assert.deepEqual(filtersToQuery({ search: '   ' }), {});
  assert.deepEqual(filtersFromQuery({ split: 'everything', problem: 'made_up', labels: 'maybe', tag: ['a', 'b'] }), {
    tag: 'a',
  });
});

test('every lint rule of the contract has a label', () => {
  assert.deepEqual(Object.keys(LINT_LABELS).sort(), [...LINT_RULES].sort());
});

test('the caption under a thumbnail: first label, question → answer, +N more', () => {
  assert.equal(itemCaption({ annotations: [] }), 'unlabeled');
  assert.equal(itemCaption({ annotations: [{ kind: 'caption', data: { text: ' A red star. ' } }] }), 'A red star.');
  assert.equal(
    itemCaption({
      annotations: [
        { kind: 'qa', data: { question: '<image>\nHow many?', answer: 'two' } },
        { kind: 'caption', data: { text: 'x' } },
      ],
    }),
    'How many? → two (+1)',
  );
  assert.equal(
    itemCaption({
      annotations: [
        {
          kind: 'chat',
          data: {
            messages: [
              { role: 'user', content: '<image>\nColor?' },
              { role: 'assistant', content: 'blue' },
            ],
          },
        },
      ],
    }),
    'Color? → blue',
  );
});

test('a draft equals its saved version even when the save gave the labels new ids', () => {
  const draft = [{ kind: 'qa' as const, data: { question: 'q', answer: 'a' } }];
  assert.equal(sameAnnotations(draft, [{ id: 41, kind: 'qa', data: { question: 'q', answer: 'a' } }]), true);
  assert.equal(sameAnnotations(draft, [{ id: 41, kind: 'qa', data: { question: 'q', answer: 'b' } }]), false);
});
