// Real-browser test of the chat page served by the local runtime (`make dev`): two users in two
// browser contexts of Debian's Chromium, driven by playwright-core.
//
//   cd tests/browser && npm install && node chat.mjs
//
// RELAYCHAT_WEB_URL  the page (default http://127.0.0.1:3000/)
// CHROMIUM           the browser binary (default /usr/bin/chromium)
// RELAYCHAT_SCREENSHOTS=1  also save screenshots when every check passes
//
// Prints one line per check, then `N passed, 0 failed` and exits 0; on the first failure prints
// it, saves screenshots of both pages to artifacts/ and exits 1.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const WEB_URL = process.env.RELAYCHAT_WEB_URL || 'http://127.0.0.1:3000/';
const STEP_MS = 20_000;
const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');

// Unique ids per run: the runtime's database may outlive the run.
const run = randomBytes(4).toString('hex');
const ALICE = { user: `alice-${run}`, name: 'Alice' };
const BOB = { user: `bob-${run}`, name: 'Bob' };
const TITLE = `Browser test ${run}`;

let passed = 0;
let browser;
const pages = {}; // name → page, for screenshots
const pageErrors = [];

async function check(name, fn) {
  try {
    await fn();
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    await screenshots('failure');
    console.log(`${passed} passed, 1 failed`);
    await browser?.close().catch(() => {});
    process.exit(1);
  }
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

async function screenshots(tag) {
  await mkdir(ARTIFACTS, { recursive: true });
  for (const [who, page] of Object.entries(pages)) {
    const file = path.join(ARTIFACTS, `${tag}-${who}.png`);
    await page.screenshot({ path: file, fullPage: true }).then(() => console.log(`  screenshot: ${file}`), () => {});
  }
}

/** Waits until `fn(arg)` run in the page is truthy; its value is returned. */
async function until(page, fn, arg) {
  const handle = await page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 100 });
  return handle.jsonValue();
}

const statusOf = (page, messageId) =>
  page.locator(`#messages [data-message-id="${messageId}"] .status`).textContent({ timeout: STEP_MS });

async function openAs(who) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => pageErrors.push(`${who.name}: ${e.message}`));
  pages[who.name.toLowerCase()] = page;
  await page.goto(WEB_URL);
  await page.fill('#user', who.user);
  await page.fill('#name', who.name);
  await page.click('#login-button');
  await until(page, () => document.querySelector('#connection-state')?.textContent === 'connected');
  return page;
}

await check('browser starts', async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: STEP_MS,
  });
});

let alice;
let bob;
await check(`${ALICE.user} signs in and connects`, async () => { alice = await openAs(ALICE); });
await check(`${BOB.user} signs in and connects`, async () => { bob = await openAs(BOB); });

let conversationId;
await check('alice creates a conversation with bob', async () => {
  await alice.fill('#members', BOB.user);
  await alice.fill('#title', TITLE);
  await alice.click('#create-button');
  const item = alice.locator('#conversations [data-conversation-id]', { hasText: TITLE });
  await item.waitFor();
  conversationId = await item.getAttribute('data-conversation-id');
  assert.ok(conversationId, 'the new conversation has an id');
  // Creating it opens it, ready to write in.
  await until(alice, () => !document.querySelector('#message-input').disabled);
});

await check("the conversation appears in bob's list at once, without reloading it", async () => {
  const item = bob.locator(`#conversations [data-conversation-id="${conversationId}"]`);
  await item.waitFor();
  assert.match(await item.textContent(), new RegExp(TITLE));
  assert.equal(await bob.evaluate(() => document.querySelector('#chat-title').textContent), 'Select a conversation',
    'announced, not opened');
});

await check('alice sees bob online, and bob sees alice', async () => {
  const sel = `#conversations [data-conversation-id="${conversationId}"] .presence`;
  await until(alice, (s) => document.querySelector(s)?.textContent === 'online', sel);
  await until(bob, (s) => document.querySelector(s)?.textContent === 'online', sel);
});

let messageId;
await check('alice sends "hello bob" and it is acknowledged', async () => {
  await alice.fill('#message-input', 'hello bob');
  await alice.click('#send-button');
  const item = alice.locator('#messages [data-message-id]', { hasText: 'hello bob' });
  await item.waitFor();
  messageId = await item.getAttribute('data-message-id');
  assert.match(await statusOf(alice, messageId), /^(SENT|DELIVERED)$/);
});

await check("bob's list shows the message, unread", async () => {
  const sel = `#conversations [data-conversation-id="${conversationId}"]`;
  await until(bob, (s) => {
    const li = document.querySelector(s);
    return li?.querySelector('.preview')?.textContent.includes('hello bob') && li.querySelector('.unread')?.textContent === '1';
  }, sel);
});

await check("alice's message becomes DELIVERED", async () => {
  await until(alice, (id) =>
    document.querySelector(`#messages [data-message-id="${id}"] .status`)?.textContent === 'DELIVERED', messageId);
});

await check('bob opens the conversation and sees the message from Alice', async () => {
  await bob.click(`#conversations [data-conversation-id="${conversationId}"]`);
  const item = bob.locator(`#messages [data-message-id="${messageId}"]`);
  await item.waitFor();
  assert.equal(await item.locator('.content').textContent(), 'hello bob');
  assert.equal(await item.locator('.sender').textContent(), 'Alice');
  assert.equal(await bob.locator('#messages [data-message-id]').count(), 1, 'shown exactly once');
  await until(bob, (s) => !document.querySelector(`${s} .unread`), `#conversations [data-conversation-id="${conversationId}"]`);
});

await check("alice's message becomes READ", async () => {
  await until(alice, (id) =>
    document.querySelector(`#messages [data-message-id="${id}"] .status`)?.textContent === 'READ', messageId);
});

await check('alice sees that bob is typing', async () => {
  await bob.locator('#message-input').pressSequentially('hi ali', { delay: 40 });
  // A typing frame names only the user id; the page shows the display name once it knows it.
  await until(alice, (who) => who.some((w) => document.querySelector('#typing')?.textContent === `${w} is typing…`),
    [BOB.name, BOB.user]);
});

await check('the typing indicator goes away once bob stops', async () => {
  await until(alice, () => document.querySelector('#typing')?.textContent === '');
});

let replyId;
await check('bob replies and alice sees it', async () => {
  await bob.locator('#message-input').pressSequentially('ce!', { delay: 40 });
  await bob.press('#message-input', 'Enter');
  const item = alice.locator('#messages [data-message-id]', { hasText: 'hi alice!' });
  await item.waitFor();
  replyId = await item.getAttribute('data-message-id');
  assert.equal(await item.locator('.sender').textContent(), 'Bob');
});

await check("bob's reply becomes READ (alice has the conversation open)", async () => {
  await until(bob, (id) =>
    document.querySelector(`#messages [data-message-id="${id}"] .status`)?.textContent === 'READ', replyId);
  assert.equal(await statusOf(alice, messageId), 'READ', 'statuses never move back');
});

await check('alice edits her message and bob sees the new text, marked edited', async () => {
  await alice.click(`#messages [data-message-id="${messageId}"] .edit`);
  await until(alice, () => document.querySelector('#message-input').value === 'hello bob');
  await alice.fill('#message-input', 'hello again, bob');
  await alice.press('#message-input', 'Enter');
  const item = `#messages [data-message-id="${messageId}"]`;
  await until(bob, (s) => document.querySelector(`${s} .content`)?.textContent === 'hello again, bob'
    && document.querySelector(`${s} .edited`), item);
  await until(alice, (s) => document.querySelector(`${s} .content`)?.textContent === 'hello again, bob', item);
  assert.equal(await bob.locator('#messages [data-message-id]').count(), 2, 'edited in place, not added');
});

await check('an edit survives a reload: history has it', async () => {
  await bob.reload(); // the saved session signs in again by itself
  await until(bob, () => document.querySelector('#connection-state')?.textContent === 'connected');
  await bob.click(`#conversations [data-conversation-id="${conversationId}"]`);
  await until(bob, (s) => document.querySelector(`${s} .content`)?.textContent === 'hello again, bob'
    && document.querySelector(`${s} .edited`), `#messages [data-message-id="${messageId}"]`);
});

await check('alice deletes it and both pages show a tombstone', async () => {
  await alice.click(`#messages [data-message-id="${messageId}"] .delete`);
  const item = `#messages [data-message-id="${messageId}"]`;
  for (const page of [alice, bob]) {
    await until(page, (s) => document.querySelector(`${s}.deleted .content`)?.textContent === 'This message was deleted', item);
  }
  assert.equal(await bob.locator(`${item} .edit`).count(), 0, 'only the sender may change it');
});

await check('bob closes his page and alice sees him offline', async () => {
  await bob.context().close();
  delete pages.bob;
  const sel = `#conversations [data-conversation-id="${conversationId}"] .presence`;
  await until(alice, (s) => document.querySelector(s)?.textContent === 'offline', sel);
});

await check('no script errors on either page', async () => {
  assert.deepEqual(pageErrors, []);
});

if (process.env.RELAYCHAT_SCREENSHOTS) await screenshots('final');
await browser.close();
console.log(`${passed} passed, 0 failed`);
