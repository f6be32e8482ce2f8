// Shared helpers for the browser tests: launch Debian's chromium through
// playwright-core, open a page on the real server, join a room, and wait for
// things the way a user would see them. No fixed sleeps decide a result:
// every wait polls a condition until it holds or a generous deadline passes
// (the tests run against an ASan build on slow CI machines).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { chromium } from 'playwright-core';

export const T = 20000; // default deadline for anything to appear (ms)
export const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

// Retries `fn` (which throws or rejects while the condition does not hold)
// until it passes or `timeout` ms have passed; then rethrows its last error.
export async function eventually(fn, { timeout = T, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, interval));
    }
  }
}

const livePages = new Set();

// A page in its own browser context (own storage, like another person).
// Collects page errors and dialogs so a test can assert there were none.
export async function newPage(browser, { viewport = { width: 1280, height: 800 }, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  const page = await context.newPage();
  livePages.add(page);
  page.on('close', () => livePages.delete(page));
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => { page.problems.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) page.problems.push(`console: ${m.text()}`); });
  return page;
}

// Opens the page, fills the join form and waits until the room is joined.
export async function join(page, srv, { name, room }) {
  await page.goto(srv.http(`/#${room}`));
  await appStarted(page);
  await joinStarted(page, { name, room });
}

// The same on a page whose script has started already.
export async function joinStarted(page, { name, room }) {
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('join-button').click();
  await waitOnline(page);
  await memberVisible(page, name);
}

// The page's script has run (app.js marks <html data-app="ready">): until
// then a click on Join would be a plain form submission.
export async function appStarted(page, timeout = T) {
  await page.locator('html[data-app="ready"]').waitFor({ state: 'attached', timeout });
}

export async function waitOnline(page, timeout = T) {
  await page.locator('[data-testid="status"][data-state="online"]').waitFor({ timeout });
}

export async function memberVisible(page, name, timeout = T) {
  await page.locator(`[data-testid="member-list"] [data-testid="member"][data-name="${cssEsc(name)}"]`)
    .waitFor({ state: 'attached', timeout });
}

export async function memberGone(page, name, timeout = T) {
  await page.locator(`[data-testid="member-list"] [data-testid="member"][data-name="${cssEsc(name)}"]`)
    .waitFor({ state: 'detached', timeout });
}

function cssEsc(s) { return String(s).replace(/["\\]/g, '\\$&'); }

// Types and sends a message the way a user does (Enter).
export async function say(page, text) {
  const input = page.getByTestId('message-input');
  await input.fill(text);
  await input.press('Enter');
}

// Room messages as shown: [{id, from, text, pending}] in display order.
export function roomMessages(page) {
  return page.$$eval('[data-testid="message-list"] [data-testid="message"][data-kind="room"]', (els) =>
    els.map((e) => ({
      id: e.dataset.id ? Number(e.dataset.id) : null,
      from: e.dataset.from,
      text: e.querySelector('[data-testid="message-text"]').textContent,
      pending: e.classList.contains('pending'),
    })));
}

// Waits until a room message with exactly this text is shown with its id.
export async function waitMessage(page, text, timeout = T) {
  return eventually(async () => {
    const ms = (await roomMessages(page)).filter((m) => m.text === text && m.id != null && !m.pending);
    if (ms.length === 0) throw new Error(`message ${JSON.stringify(text)} not shown`);
    return ms;
  }, { timeout });
}

// Waits until every room message is shown exactly once, none pending, in id
// order, and the texts are exactly expectTexts (any order); returns them.
export async function settled(page, expectTexts, timeout = T) {
  return eventually(async () => {
    const ms = await roomMessages(page);
    assert.deepEqual(ms.filter((m) => m.pending || m.id == null), [], 'nothing pending');
    assert.deepEqual(ms.map((m) => m.text).sort(), [...expectTexts].sort());
    const ids = ms.map((m) => m.id);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'id order');
    assert.equal(new Set(ids).size, ids.length, 'each id once');
    return ms;
  }, { timeout });
}

export async function textOf(page, testid) {
  return (await page.getByTestId(testid).textContent())?.trim();
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

// Fails with the problems a page collected (script errors, dialogs).
export function noProblems(assert, ...pages) {
  for (const p of pages) assert.deepEqual(p.problems, [], 'page problems');
}

// `it`, but a failing test leaves evidence for CI: a screenshot of each
// page (artifacts/FAILED-<test>-<n>.png), what the pages reported, and the
// tail of the server's log on stderr. getCtx() -> { srv }.
export function testWithDiagnostics(getCtx) {
  return (name, fn) => it(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const { srv } = getCtx();
      const pages = [...livePages];
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      for (const [i, p] of pages.entries()) {
        if (!p || p.isClosed()) continue;
        try {
          await p.screenshot({ path: artifact(`FAILED-${slug}-${i}.png`), timeout: 5000 });
          const status = await p.getByTestId('status').getAttribute('data-state', { timeout: 2000 });
          process.stderr.write(`page ${i}: status=${status} problems=${JSON.stringify(p.problems)}\n`);
        } catch { /* the page may be gone */ }
      }
      if (srv) process.stderr.write(`--- server log (tail) ---\n${srv.log.slice(-6000)}\n---\n`);
      throw e;
    }
  });
}
