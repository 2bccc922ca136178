// Generation never drops an image or a template silently: a template that writes no image placeholder is an
// error naming it, and a folder without a template says that the built-in one is used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatTemplate } from '../../src-main/models/chat-template';
import { renderPromptIds, renderSetupOf, placeImage } from '../../src-main/models/generate';
import { LensTokenizer } from '../../src-main/models/tokenizer';
import { demoTokenizerFiles } from '../../src-main/models/demo/tiny-llava';
import type { HfModel } from '../../src-main/models/hf-folder';

const files = demoTokenizerFiles();
const tok = new LensTokenizer({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig });
const llava = { kind: 'llava', imageTokenIndex: tok.imageTokenId(), numImageTokens: 4 };

test('generate refuses a template that drops the image, naming the template', () => {
  const textOnly = new ChatTemplate(
    "{% for m in messages %}{% for p in m['content'] | selectattr('type', 'equalto', 'text') %}{{ p['text'] }}{% endfor %}{% endfor %}",
    {},
    'm/chat_template.json: field "chat_template"',
  );
  const setup = renderSetupOf({
    dir: 'm',
    config: llava,
    tokenizer: tok,
    chatTemplate: textOnly,
  } as unknown as HfModel);
  assert.deepEqual(setup.warnings, []);
  const msgs = placeImage([{ role: 'user', content: 'What is it?' }], true);
  assert.throws(
    () => renderPromptIds(setup, msgs),
    /m\/chat_template\.json: field "chat_template": the prompt has 1 image\(s\) but the rendered text holds 0 image token\(s\).*writes no image placeholder, so the model would not see the image/,
  );
  // without an image the same template is fine
  assert.ok(renderPromptIds(setup, placeImage([{ role: 'user', content: 'What is it?' }], false)).length > 0);
});

test('a folder without a chat template gets the built-in one with a warning naming the folder', () => {
  const setup = renderSetupOf({
    dir: '/models/bare',
    config: llava,
    tokenizer: tok,
    chatTemplate: null,
  } as unknown as HfModel);
  assert.equal(setup.warnings?.length, 1);
  assert.match(
    setup.warnings![0],
    /^\/models\/bare: no chat template \(chat_template\.jinja, chat_template\.json or tokenizer_config\.json "chat_template"\): the built-in LLaVA-1\.5 template/,
  );
  const ids = renderPromptIds(setup, placeImage([{ role: 'user', content: 'What is it?' }], true));
  assert.equal(ids.filter((i) => i === tok.imageTokenId()).length, 4);
});
