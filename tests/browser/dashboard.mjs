// Real-browser test of the local runtime's dashboard (web/dashboard.html): the mappings' counters
// and lag, the latest invocations, and a dead letter redriven with its button. Run by
// scripts/browser-test.sh after chat.mjs, once it has dead-lettered the malformed sample.
//
// RELAYCHAT_WEB_URL  the runtime's web server (default http://127.0.0.1:3000/)
// CHROMIUM           the browser binary (default /usr/bin/chromium)
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const WEB_URL = process.env.RELAYCHAT_WEB_URL || 'http://127.0.0.1:3000/';
const STEP_MS = 30_000;
const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');

let passed = 0;
let browser;
let page;
const pageErrors = [];

async function check(name, fn) {
  try {
    await fn();
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    await mkdir(ARTIFACTS, { recursive: true });
    await page?.screenshot({ path: path.join(ARTIFACTS, 'failure-dashboard.png'), fullPage: true }).catch(() => {});
    console.log(`${passed} passed, 1 failed`);
    await browser?.close().catch(() => {});
    process.exit(1);
  }
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

const until = (fn, arg) => page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 200 }).then((h) => h.jsonValue());

await check('the dashboard opens from the chat page', async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  page = await (await browser.newContext({ viewport: { width: 1300, height: 900 } })).newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(WEB_URL);
  await page.click('a[href="/dashboard.html"]');
  await until(() => document.querySelector('#updated')?.textContent.startsWith('updated'));
});

await check('every mapping is listed with its counters, the chat test\'s invocations among them', async () => {
  for (const fn of ['persist-message', 'deliver-message', 'update-status', 'analytics']) {
    await until((f) => document.querySelector(`#mappings tr[data-function="${f}"]`), fn);
  }
  const invocations = await until(() =>
    Number(document.querySelector('#mappings tr[data-function="persist-message"] .invocations')?.textContent) > 0
      && document.querySelector('#mappings tr[data-function="persist-message"] .invocations').textContent);
  assert.ok(Number(invocations) > 0);
});

await check('recent invocations show with their outcome', async () => {
  await until(() => [...document.querySelectorAll('#invocations tbody tr')].some((tr) => tr.textContent.includes('success')));
});

// The broker may hold other runs' dead letters: the sample's is the newest from its source.
let letter;
await check('the malformed sample\'s dead letters are listed with their reason', async () => {
  letter = await until(() => {
    const rows = [...document.querySelectorAll('#dead-letters tbody tr')]
      .filter((tr) => tr.dataset.at.startsWith('persist-message-dlq-')
        && tr.querySelector('.source').textContent === 'chat-messages-0@122'
        && tr.querySelector('.redrives').textContent === '0'
        && tr.querySelector('.reason').textContent.includes('invalid payload'));
    return rows.length > 0 && rows[rows.length - 1].dataset.at;
  });
  assert.match(letter, /^persist-message-dlq-0@\d+$/);
  await until(() => Number(document.querySelector('#mappings tr[data-function="persist-message"] .dead')?.textContent) >= 2);
});

await check('redriving it sends it back; failing again, it returns with one redrive', async () => {
  const before = Number(await page.textContent('#mappings tr[data-function="persist-message"] .dead'));
  await page.click(`#dead-letters tr[data-at="${letter}"] button.redrive`);
  const to = await until(() => {
    const m = document.querySelector('#redrive-result').textContent.match(/redriven to (chat-messages-\d+@\d+)/);
    return m && m[1];
  });
  // persist-message reads the redriven record and dead-letters it again: from there, one redrive on.
  await until((source) => [...document.querySelectorAll('#dead-letters tbody tr')]
    .some((tr) => tr.dataset.at.startsWith('persist-message-dlq-') && tr.querySelector('.source').textContent === source
      && tr.querySelector('.redrives').textContent === '1'), to);
  await until((n) => Number(document.querySelector('#mappings tr[data-function="persist-message"] .dead')?.textContent) > n, before);

});

await check('no script errors', async () => {
  assert.deepEqual(pageErrors, []);
});

await browser.close();
console.log(`${passed} passed, 0 failed`);
