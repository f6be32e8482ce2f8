// Browser tests: how the page looks and fits — older history loads on
// scrolling up, the page works at phone width, and screenshots (desktop,
// dark, phone) go to tests/e2e/artifacts/ for a person to look at.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startServer } from '../lib/server.mjs';
import {
  T, launch, newPage, join, eventually, say, roomMessages, waitMessage,
  memberVisible, artifact, noProblems,
  testWithDiagnostics,
} from './helpers.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

// Stores `n` messages in `room` through the protocol (Node `ws` client) and
// resolves when every one is acknowledged.
function seed(srv, room, n, name = 'seeder') {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(srv.url(`/ws?name=${name}&room=${room}`), 'wschat.v1');
    let acked = 0;
    const timer = setTimeout(() => reject(new Error(`seed: ${acked}/${n} acked`)), T * 2);
    ws.on('error', reject);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'joined') {
        for (let i = 1; i <= n; i++) ws.send(JSON.stringify({ type: 'send', room, text: `old message ${i}`, ref: i }));
      } else if (m.type === 'ack' && ++acked === n) {
        clearTimeout(timer);
        ws.close();
        resolve();
      } else if (m.type === 'error') {
        reject(new Error(`seed: ${data}`));
      }
    });
  });
}

describe('web page: history, phone width, looks', { timeout: 115000 }, () => {
  let srv, browser;
  const it = testWithDiagnostics(() => ({ srv }));

  before(async () => {
    srv = await startServer();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  it('older history loads when scrolling to the top, each message once, in order', async () => {
    const N = 130;
    await seed(srv, 'archive', N);
    const page = await newPage(browser, { viewport: { width: 1000, height: 700 } });
    await join(page, srv, { name: 'reader', room: 'archive' });
    // The latest messages come with joined.
    await waitMessage(page, `old message ${N}`);
    const first = await roomMessages(page);
    assert.ok(first.length < N, `only a recent window at first (${first.length})`);
    // Scroll to the top until everything is there.
    await eventually(async () => {
      await page.getByTestId('message-list').evaluate((l) => { l.scrollTop = 0; l.dispatchEvent(new Event('scroll')); });
      const ms = await roomMessages(page);
      assert.equal(ms.length, N);
    }, { interval: 300, timeout: 30000 });
    const ms = await roomMessages(page);
    assert.deepEqual(ms.map((m) => m.text), Array.from({ length: N }, (_, i) => `old message ${i + 1}`));
    const ids = ms.map((m) => m.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    noProblems(assert, page);
    await page.context().close();
  });

  it('desktop screenshots (light and dark)', async () => {
    const room = 'design';
    const alice = await newPage(browser);
    const bob = await newPage(browser, { colorScheme: 'dark' });
    await join(alice, srv, { name: 'alice', room });
    await join(bob, srv, { name: 'bob', room });
    await memberVisible(alice, 'bob');
    await say(alice, 'Hi Bob! Did you see the new release notes?');
    await waitMessage(bob, 'Hi Bob! Did you see the new release notes?');
    await say(bob, 'Yes — the resume after a restart is great. Nothing got lost.');
    await say(bob, 'Also: <b>this</b> stays plain text.');
    await waitMessage(alice, 'Also: <b>this</b> stays plain text.');
    await bob.locator('[data-testid="member"][data-name="alice"] button').click();
    await say(bob, 'psst — this one is private');
    await alice.locator('[data-testid="message"][data-kind="dm"]').waitFor({ timeout: T });
    await eventually(async () => {
      await alice.getByTestId('message-input').press('x');
      assert.match(await bob.getByTestId('typing-indicator').textContent(), /alice is typing/);
    }, { interval: 250 });
    await alice.getByTestId('message-input').fill('');
    await alice.screenshot({ path: artifact('desktop-light.png') });
    await bob.screenshot({ path: artifact('desktop-dark.png') });
    noProblems(assert, alice, bob);
    await alice.context().close();
    await bob.context().close();
  });

  it('phone width (390x844): input and send button usable, sidebar collapses', async () => {
    const phone = { width: 390, height: 844 };
    const page = await newPage(browser, { viewport: phone });
    await page.goto(srv.http('/#pocket'));
    await page.screenshot({ path: artifact('phone-join.png') });
    await page.getByTestId('name-input').fill('mobile');
    await page.getByTestId('join-button').click();
    await page.locator('[data-testid="status"][data-state="online"]').waitFor({ timeout: T });
    await say(page, 'typed on a phone');
    await waitMessage(page, 'typed on a phone');

    for (const id of ['message-input', 'send-button', 'status']) {
      const loc = page.getByTestId(id);
      assert.ok(await loc.isVisible(), `${id} visible`);
      const box = await loc.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= phone.width + 0.5, `${id} within width: ${JSON.stringify(box)}`);
      assert.ok(box.y >= 0 && box.y + box.height <= phone.height + 0.5, `${id} within height: ${JSON.stringify(box)}`);
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px)`);
    // The members sidebar is collapsed and opens from the top bar.
    assert.equal(await page.getByTestId('member-list').isVisible(), false, 'sidebar collapsed');
    // The send button works at this width too.
    await page.getByTestId('message-input').fill('sent with the button');
    await page.getByTestId('send-button').click();
    await waitMessage(page, 'sent with the button');
    await page.screenshot({ path: artifact('phone-chat.png') });
    await page.locator('#members-toggle').click();
    await page.getByTestId('member-list').waitFor({ state: 'visible', timeout: T });
    await memberVisible(page, 'mobile');
    await eventually(async () => {
      const b = await page.getByTestId('member-list').boundingBox();
      assert.ok(b.x + b.width <= phone.width + 0.5, 'sidebar slid in');
    });
    await page.screenshot({ path: artifact('phone-members.png') });
    noProblems(assert, page);
    await page.context().close();
  });
});
