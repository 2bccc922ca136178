// Chat as in LM Studio: the sampling settings (max tokens → "Max tokens reached", a system prompt saved with the
// chat, a seeded sampled answer that regenerates identically), regenerate / edit / copy, a wrong value named, and
// a saved chat reopened with the settings it was answered with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { screenshotPath } from './harness';
import { call, uiFixture, until, type UiFixture } from './ui-helpers';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

test('sampling settings, stop reason, regenerate, edit and copy in the chat', async () => {
  const dir = ui.dataDir();
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 4, count: 1, families: ['colors'] });
  const server = await ui.serve(dir);
  await call(server, 'models.installDemo', {});
  const page = await ui.newPage();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
  await page.goto(`${server.url}#/chat`);
  await page.getByLabel('Your question').waitFor();

  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  const panel = page.getByRole('region', { name: 'Chat settings' });
  // a wrong value is named and nothing is sent
  await panel.getByLabel('Top-p').fill('2');
  await page.getByLabel('Your question').fill('What color is the circle?');
  await page.keyboard.press('Enter');
  await panel.getByRole('alert').filter({ hasText: 'Top-p must be a number above 0 up to 1' }).waitFor();
  assert.equal((await call(server, 'chats.list', {})).chats.length, 0);
  await panel.getByLabel('Top-p').fill('');
  await panel.getByLabel('System prompt').fill('Answer in one word.');
  await panel.getByLabel('Max tokens').fill('1');
  await page.getByTestId('chat-image-input').setInputFiles(join(src, 'images', '00000.png'));
  await page.getByRole('img', { name: /Attached: 00000\.png/ }).waitFor();
  await page.getByLabel('Your question').fill('What color is the circle?');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 60_000 });
  const log = page.getByRole('log');
  const meta = log.locator('.msg.role-assistant .meta');
  await until(
    async () => /Max tokens reached · 1 tokens?/.test(await meta.innerText().catch(() => '')),
    'the stop reason under the answer',
  ).catch(async (e) => {
    await page.screenshot({ path: screenshotPath('ui-chat-settings-fail') });
    throw new Error(`${e.message}: ${await log.innerText()} / ${JSON.stringify(await call(server, 'chats.list', {}))}`);
  });
  const [c] = (await call(server, 'chats.list', {})).chats;
  let saved = await call(server, 'chats.get', { id: c.id });
  assert.deepEqual(
    saved.messages.map((m) => m.role),
    ['system', 'user', 'assistant'],
  );
  assert.equal(saved.messages[0].content, 'Answer in one word.');
  assert.deepEqual(c.settings.options, { temperature: 0, maxNewTokens: 1 });
  assert.equal((saved.messages[2].stats as { finishReason: string }).finishReason, 'length');

  // sampled with a seed: regenerate gives the same answer, and the chat keeps one answer
  await panel.getByLabel('Max tokens').fill('');
  await panel.getByLabel('Temperature').fill('1.5');
  await panel.getByLabel('Top-k').fill('20');
  await panel.getByLabel('Seed').fill('11');
  // Regenerating first truncates the chat (a round trip) and only then streams, so right after the click the old
  // answer still counts as three messages and Send still shows: wait for a new answer row (ids are reused after a
  // truncate, creation times are not) and the transcript done streaming.
  const regenerated = async (before: { createdAt: string }) => {
    await page.getByRole('button', { name: 'Regenerate answer' }).click();
    await until(
      async () => {
        const m = (await call(server, 'chats.get', { id: c.id })).messages;
        return (
          m.length === 3 &&
          m[2].role === 'assistant' &&
          m[2].createdAt !== before.createdAt &&
          !(await log.locator('.msg.streaming').count())
        );
      },
      'the regenerated answer saved',
      60_000,
    );
    await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 60_000 });
    return call(server, 'chats.get', { id: c.id });
  };
  saved = await regenerated(saved.messages[2]);
  const first = saved.messages[2].content;
  assert.deepEqual((await call(server, 'chats.list', {})).chats[0].settings.options, {
    temperature: 1.5,
    topK: 20,
    seed: 11,
  });
  saved = await regenerated(saved.messages[2]);
  assert.equal(saved.messages[2].content, first, 'same seed, same sampled answer');
  assert.equal(await log.locator('.msg.role-assistant').count(), 1);

  // edit the question: the answer after it is replaced, the image stays
  await log.getByRole('button', { name: 'Edit question' }).click();
  await log.getByLabel('Edit your question').fill('What shape is it?');
  await log.getByRole('button', { name: 'Save and send' }).click();
  await until(
    async () => {
      const m = (await call(server, 'chats.get', { id: c.id })).messages;
      return m.length === 3 && m[1].content.includes('What shape is it?') && m[2].role === 'assistant' ? m : null;
    },
    'the edited question answered',
    60_000,
  );
  saved = await call(server, 'chats.get', { id: c.id });
  assert.ok(saved.messages[1].imageHash, 'the edited question kept its image');
  await log.locator('.msg.role-user').getByText('What shape is it?').waitFor();

  // copy an answer
  await page.getByRole('button', { name: 'Copy answer' }).click();
  await page.getByRole('button', { name: 'Copy answer' }).filter({ hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), saved.messages[2].content);
  await page.screenshot({ path: screenshotPath('ui-chat-settings') });

  // reopening the chat later brings back the settings it was answered with
  await panel.getByRole('button', { name: 'Reset to defaults' }).click();
  assert.equal(await panel.getByLabel('Seed').inputValue(), '');
  await page.getByRole('button', { name: '+ New chat' }).click();
  await page
    .getByRole('complementary', { name: 'Saved chats' })
    .getByRole('button', { name: /^What color is the circle/ })
    .click();
  await until(async () => (await panel.getByLabel('Seed').inputValue()) === '11', "the chat's seed back in the panel");
  assert.equal(await panel.getByLabel('Temperature').inputValue(), '1.5');
  await ui.closePage(page);
});
