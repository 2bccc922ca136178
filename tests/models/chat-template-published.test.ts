// Published chat templates rendered as transformers' apply_chat_template renders them (fixtures written by
// tests/fixtures/models/chat-templates/make_reference.py in transformers' Jinja environment), the
// {% generation %} spans, content given as a string or as parts, and the sandbox's limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxStats, sandboxTestHooks, stopTemplateSandbox } from '../../src-main/models/template-sandbox';
import {
  ChatTemplate,
  contentToParts,
  findChatTemplate,
  rewriteGenerationTags,
  type ChatMessage,
  type ContentPart,
} from '../../src-main/models/chat-template';

const DIR = join(import.meta.dirname, '../fixtures/models/chat-templates');
interface Case {
  template: string;
  title: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  text: string;
  generation_spans: Array<[number, number]>;
}
const ref = JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')) as {
  specials: Record<string, Record<string, string | null>>;
  cases: Case[];
  environment: Array<{ template: string; text: string }>;
  environment_messages: ChatMessage[];
  refusals: Record<string, string>;
};

const templates = new Map<string, ChatTemplate>();
function template(name: string): ChatTemplate {
  let t = templates.get(name);
  if (!t) {
    const found = findChatTemplate(DIR, {});
    assert.equal(found, null); // the folder holds several named files, none with the canonical names
    const src = (JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as { chat_template: string })
      .chat_template;
    t = new ChatTemplate(src, ref.specials[name] as never, `${name}.json: field "chat_template"`);
    templates.set(name, t);
  }
  return t;
}

/** Python's code-point offsets -> JS UTF-16 offsets. */
function utf16Offset(text: string, cp: number): number {
  let i = 0;
  for (let n = 0; n < cp; n++) i += text.codePointAt(i)! > 0xffff ? 2 : 1;
  return i;
}

test('published templates render exactly as transformers renders them, with the same generation spans', () => {
  const names = new Set<string>();
  for (const c of ref.cases) {
    const t = template(c.template);
    const r = t.renderWithSpans(c.messages, { addGenerationPrompt: c.add_generation_prompt });
    const what = `${c.template} / ${c.title} / gen=${c.add_generation_prompt}`;
    assert.equal(r.text, c.text, what);
    assert.deepEqual(
      r.generationSpans,
      c.generation_spans.map(([a, b]) => [utf16Offset(c.text, a), utf16Offset(c.text, b)]),
      what,
    );
    names.add(c.template);
  }
  assert.deepEqual([...names].sort(), [
    'llava-1.5',
    'llava-interleave-qwen',
    'llava-onevision-qwen',
    'multiline-generation',
    'qwen2-text',
    'smolvlm',
    'smolvlm2',
  ]);
});

test("filters, tests, methods, loops, macros and whitespace control render as in transformers' environment", () => {
  assert.ok(ref.environment.length >= 20);
  for (const c of ref.environment)
    assert.equal(new ChatTemplate(c.template).render(ref.environment_messages), c.text, c.template);
  // what the engine lacks fails naming the feature, never a wrong text
  assert.throws(
    () => new ChatTemplate("{{ 'abc' | reverse }}").render([]),
    /unsupported Jinja feature: the filter "reverse" on a string/,
  );
  assert.throws(
    () => new ChatTemplate("{{ '%s' | format('a') }}").render([]),
    /unsupported Jinja feature: the filter "format" on a string/,
  );
});

test('each template is read in the form it expects: parts for the VLM templates, strings for text models', () => {
  for (const n of ['llava-1.5', 'llava-interleave-qwen', 'llava-onevision-qwen', 'smolvlm', 'smolvlm2']) {
    assert.equal(template(n).contentStyle, 'parts', n);
    assert.equal(template(n).writesImages, true, n);
  }
  assert.equal(template('llava-1.5').hasGeneration, true);
  assert.equal(template('smolvlm').hasGeneration, false);
  assert.equal(template('qwen2-text').contentStyle, 'string');
  // a string template passes the "<image>" tag through with the text
  assert.equal(template('qwen2-text').writesImages, true);
});

test('string content with "<image>" tags renders as the same conversation given as parts', () => {
  const asString = (m: ChatMessage): ChatMessage => ({
    role: m.role,
    content: (m.content as ContentPart[]).map((p) => (p.type === 'image' ? '<image>\n' : p.text)).join(''),
  });
  let n = 0;
  for (const c of ref.cases.filter((x) => Array.isArray(x.messages[0].content))) {
    // only conversations where each image comes first in its turn survive the round trip unchanged
    if (c.messages.some((m) => (m.content as ContentPart[]).some((p, i) => p.type === 'image' && i > 0))) continue;
    const r = template(c.template).renderWithSpans(c.messages.map(asString), {
      addGenerationPrompt: c.add_generation_prompt,
    });
    assert.equal(r.text, c.text, `${c.template} / ${c.title}`);
    n++;
  }
  assert.ok(n >= 12, `${n} cases`);
  assert.deepEqual(contentToParts('<image>\nWhat is it?'), [{ type: 'image' }, { type: 'text', text: 'What is it?' }]);
  assert.deepEqual(contentToParts('Compare <image> and <image>\nnow'), [
    { type: 'text', text: 'Compare ' },
    { type: 'image' },
    { type: 'text', text: ' and ' },
    { type: 'image' },
    { type: 'text', text: 'now' },
  ]);
});

test('generation tags keep trim_blocks / lstrip_blocks / whitespace-control behaviour', () => {
  assert.equal(
    rewriteGenerationTags('a\n  {% generation %}\nb{%- endgeneration -%}  c\n {%+ if x +%}\n'),
    "a\n{{ '\uFDD0' }}b{{- '\uFDD1' -}}  c\n {%+ if x +%}\n",
  );
  const t = new ChatTemplate(
    '{% for m in messages %}{{ m.role }}:  {%- generation -%}  {{ m.content }} {%- endgeneration %}|{% endfor %}',
  );
  const r = t.renderWithSpans([{ role: 'assistant', content: 'hi' }]);
  assert.equal(r.text, 'assistant:hi|');
  assert.deepEqual(r.generationSpans, [[10, 12]]);
});

test("the sandbox refuses what Jinja's sandbox refuses, and runaway templates end quickly naming the file", () => {
  assert.match(ref.refusals['range too big'], /Range too big/);
  const origin = 'evil/chat_template.json: field "chat_template"';
  const t0 = Date.now();
  assert.throws(
    () => new ChatTemplate('{% for i in range(1000000000) %}x{% endfor %}', {}, origin).render([]),
    (e: Error) => {
      assert.match(e.message, /^evil\/chat_template\.json: field "chat_template": rendering failed \(range too big/);
      return true;
    },
  );
  const nested = new ChatTemplate(
    '{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}',
    {},
    origin,
    { timeMs: 500 },
  );
  assert.throws(
    () => nested.render([]),
    /evil\/chat_template\.json: field "chat_template": rendering stopped (after 500 ms \(time limit\)|: the output exceeds)/,
  );
  const big = new ChatTemplate('{% for i in range(1000) %}{{ messages[0].content }}{% endfor %}', {}, origin);
  assert.throws(
    () => big.render([{ role: 'user', content: 'x'.repeat(10000) }]),
    /evil\/chat_template\.json: field "chat_template": rendering stopped: the output exceeds 4000000 characters/,
  );
  assert.ok(Date.now() - t0 < 25000, `${Date.now() - t0} ms`);
  // a template that exhausts the worker's memory ends the worker, not this process; the next render gets a new one
  const hog = new ChatTemplate(
    '{% set ns = namespace(a=[1]) %}{% for i in range(40) %}{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a | length }}',
    {},
    origin,
    { timeMs: 1000 },
  );
  const kills = sandboxStats.kills;
  assert.throws(
    () => hog.render([]),
    /evil\/chat_template\.json: field "chat_template": rendering stopped: (no answer within 4000 ms, or the 256 MiB memory limit was reached|after 1000 ms)/,
  );
  // an overrun is confirmed by a second try, so the hog may end two workers
  assert.ok(sandboxStats.kills <= kills + 2);
  // and the next render works
  assert.equal(
    new ChatTemplate('{{ messages[0].content }}').render([{ role: 'user', content: 'still here' }]),
    'still here',
  );
});

test("a slow sandbox start-up (a loaded machine) does not count against a render's time limit", () => {
  stopTemplateSandbox();
  sandboxTestHooks.startDelayMs = 4500; // longer than the old wait of timeMs + 3000 ms for the first answer
  try {
    const t = new ChatTemplate('{{ messages[0].content }}', {}, 'slow/chat_template.jinja', { timeMs: 200 });
    assert.equal(t.render([{ role: 'user', content: 'after a slow start' }]), 'after a slow start');
  } finally {
    sandboxTestHooks.startDelayMs = 0;
    stopTemplateSandbox();
  }
  // a runaway template is still stopped by the time limit once the worker is up
  const loop = new ChatTemplate(
    '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}',
    {},
    'slow/chat_template.jinja',
    { timeMs: 300 },
  );
  assert.throws(() => loop.render([]), /rendering stopped after 300 ms \(time limit\)/);
});

test('one render starved past its limits is tried again; later renders are not refused', () => {
  const t = new ChatTemplate('{{ messages[0].content }}', {}, 'slow/chat_template.jinja', { timeMs: 200 });
  assert.equal(t.render([{ role: 'user', content: 'before' }]), 'before');
  sandboxTestHooks.stallNextMs = 3500; // past timeMs + 3000 ms: the call gets no answer
  assert.equal(t.render([{ role: 'user', content: 'stalled once' }]), 'stalled once');
  assert.equal(t.render([{ role: 'user', content: 'after' }]), 'after');
});

test('unsupported Jinja features fail naming the file and the feature', () => {
  const o = 'm/tokenizer_config.json: field "chat_template"';
  assert.throws(
    () => new ChatTemplate("{% include 'other.jinja' %}", {}, o),
    /^Error: m\/tokenizer_config\.json: field "chat_template": unsupported Jinja feature: the \{% include %\} tag$|m\/tokenizer_config\.json: field "chat_template": unsupported Jinja feature: the \{% include %\} tag/,
  );
  assert.throws(
    () => new ChatTemplate("{% extends 'base' %}{% block x %}{% endblock %}", {}, o),
    /unsupported Jinja feature: the \{% extends %\} tag, the \{% block %\} tag, the \{% endblock %\} tag/,
  );
  assert.throws(
    () => new ChatTemplate('{{ messages | frobnicate }}', {}, o).render([{ role: 'user', content: 'x' }]),
    /m\/tokenizer_config\.json: field "chat_template": rendering failed \(unsupported Jinja feature: the filter "frobnicate"/,
  );
  assert.throws(
    () => new ChatTemplate('{% if messages is frobnicated %}x{% endif %}', {}, o).render([]),
    /field "chat_template": rendering failed \(unsupported Jinja feature: the test "is frobnicated"\)/,
  );
  assert.throws(
    () => new ChatTemplate("{{ 'x'.zfill(3) }}", {}, o).render([]),
    /field "chat_template": rendering failed \(unsupported Jinja feature: the method or function "zfill"\)/,
  );
  assert.throws(
    () => new ChatTemplate('{% with a = 1 %}{{ a }}{% endwith %}', {}, o),
    /unsupported Jinja feature: the \{% with %\} tag/,
  );
});
