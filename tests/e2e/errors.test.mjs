// Browser tests: what the page shows when something is refused — a too long
// message, going over the rate limit (then retrying), a bad room name.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  T, launch, newPage, join, eventually, say, roomMessages, waitMessage,
  noProblems, testWithDiagnostics,
} from './helpers.mjs';

describe('web page: refusals are shown', { timeout: 110000 }, () => {
  let srv, browser, page;
  const it = testWithDiagnostics(() => ({ srv }));

  before(async () => {
    srv = await startServer({ args: ['--rate-limit', '1', '--max-text', '64'] });
    browser = await launch();
    page = await newPage(browser);
  });

  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  it('a bad room name is refused in the form, with a message', async () => {
    await page.goto(srv.http('/'));
    await page.getByTestId('name-input').fill('zoe');
    await page.getByTestId('room-input').fill('no spaces here');
    await page.getByTestId('join-button').click();
    await eventually(async () => assert.match(await page.locator('#join-error').textContent(), /Room names/));
    assert.equal(await page.getByTestId('message-input').isVisible(), false, 'still on the form');
  });

  it('a message over --max-text is marked not sent and a notice says why', async () => {
    await join(page, srv, { name: 'zoe', room: 'limits' });
    const long = 'x'.repeat(100);
    await say(page, long);
    const failed = page.locator('[data-testid="message"].failed', { hasText: long });
    await failed.waitFor({ timeout: T });
    assert.match(await failed.textContent(), /too large/);
    await page.getByTestId('notice').waitFor({ timeout: T });
    assert.match(await page.getByTestId('notice').textContent(), /too large/i);
    assert.equal((await roomMessages(page)).filter((m) => m.id != null).length, 0, 'nothing stored');
  });

  it('over the rate limit: marked not sent, and a click sends it again', async () => {
    const texts = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
    for (const t of texts) await say(page, t);
    const failed = page.locator('[data-testid="message"].failed', { hasText: /slow down/ });
    await failed.first().waitFor({ timeout: T });
    // Each accepted message is shown once; each refused one can be retried
    // (clicked) until the server takes it.
    await eventually(async () => {
      const n = await failed.count();
      if (n) await failed.first().click();
      const ms = await roomMessages(page);
      const stored = ms.filter((m) => m.id != null && !m.pending).map((m) => m.text);
      assert.deepEqual([...stored].sort(), texts, `stored: ${stored}`);
    }, { interval: 600, timeout: 40000 });
    noProblems(assert, page);
  });
});
