// Browser tests: the page's transport switch. Pages on different transports
// (WebSocket, long polling, polling) chat with each other; the stats bar
// counts what each transport costs; a page on long polling survives a
// server restart without losing a message.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  T, launch, newPage, eventually, say, roomMessages, waitMessage, waitOnline,
  memberVisible, textOf, noProblems, testWithDiagnostics, settled,
} from './helpers.mjs';

const ROOM = 'transports-room';

async function joinOn(page, srv, { name, room, transport, interval }) {
  const q = new URLSearchParams({ transport });
  if (interval) q.set('interval', String(interval));
  await page.goto(srv.http(`/?${q}#${room}`));
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('join-button').click();
  await waitOnline(page);
  await memberVisible(page, name);
}

async function stat(page, key) {
  return Number(await page.getByTestId('transport-stats').getAttribute(`data-${key}`));
}


describe('web page: transports', { timeout: 180000 }, () => {
  let srv, browser, lp, ws, poll;
  const it = testWithDiagnostics(() => ({ srv }));

  before(async () => {
    srv = await startServer();
    browser = await launch();
    lp = await newPage(browser);
    ws = await newPage(browser);
    poll = await newPage(browser);
    await joinOn(lp, srv, { name: 'lena', room: ROOM, transport: 'longpoll' });
    await joinOn(ws, srv, { name: 'walt', room: ROOM, transport: 'websocket' });
    await joinOn(poll, srv, { name: 'pia', room: ROOM, transport: 'polling', interval: 0.5 });
    await memberVisible(lp, 'walt');
    await memberVisible(lp, 'pia');
  });

  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  it('the control shows the transport asked for in the URL', async () => {
    assert.equal(await lp.getByTestId('transport').inputValue(), 'longpoll');
    assert.equal(await ws.getByTestId('transport').inputValue(), 'websocket');
    assert.equal(await poll.getByTestId('transport').inputValue(), 'polling');
    assert.equal(await poll.getByTestId('poll-interval').inputValue(), '0.5');
    assert.equal(await lp.getByTestId('poll-interval').isDisabled(), true);
  });

  it('pages on long polling, WebSocket and polling chat with each other, same ids in the same order', async () => {
    const sent = [];
    for (const [p, t] of [[lp, 'from long polling'], [ws, 'from websocket'], [poll, 'from polling']]) {
      await say(p, t);
      sent.push(t);
      for (const other of [lp, ws, poll]) await waitMessage(other, t);
    }
    const [a, b, c] = await Promise.all([settled(lp, sent, 30000), settled(ws, sent, 30000), settled(poll, sent, 30000)]);
    assert.deepEqual(a.map((m) => [m.id, m.text, m.from]), b.map((m) => [m.id, m.text, m.from]));
    assert.deepEqual(a.map((m) => [m.id, m.text, m.from]), c.map((m) => [m.id, m.text, m.from]));
    noProblems(assert, lp, ws, poll);
  });

  it('the stats bar counts requests, empty responses, bytes and latency per transport', async () => {
    await eventually(async () => {
      assert.ok(await stat(lp, 'requests') >= 4, 'long polling: session, polls, sends');
      assert.ok(await stat(lp, 'bytes-in') > 500);
      assert.ok(await stat(lp, 'bytes-out') > 300);
      assert.ok(await stat(lp, 'messages') >= 2, 'latency of live messages');
      assert.equal(await stat(ws, 'requests'), 1, 'one upgrade');
      assert.ok(await stat(ws, 'messages') >= 2);
      // polling every 0.5 s: most polls come back empty
      assert.ok(await stat(poll, 'empty') >= 2);
    });
    const pollBefore = await stat(poll, 'requests');
    const lpBefore = await stat(lp, 'requests');
    await new Promise((r) => setTimeout(r, 2000));
    const pollDelta = (await stat(poll, 'requests')) - pollBefore;
    const lpDelta = (await stat(lp, 'requests')) - lpBefore;
    assert.ok(pollDelta >= 2, `polling keeps asking (${pollDelta} in 2 s)`);
    assert.ok(lpDelta <= 1, `an idle long poll is held (${lpDelta} in 2 s)`);
    assert.match(await textOf(lp, 'transport-stats'), /requests · \d+ empty · sent .* · received .* · latency \d+ ms/);
  });

  it('switching the transport on the page keeps the name and the room', async () => {
    await ws.getByTestId('transport').selectOption('longpoll');
    await waitOnline(ws);
    assert.equal(await textOf(ws, 'me'), 'walt');
    assert.match(ws.url(), /transport=longpoll/);
    await say(ws, 'walt now polls long');
    await waitMessage(lp, 'walt now polls long');
    await waitMessage(poll, 'walt now polls long');
    await ws.getByTestId('transport').selectOption('websocket');
    await waitOnline(ws);
    await say(lp, 'back to websocket');
    await waitMessage(ws, 'back to websocket');
    assert.equal(await textOf(ws, 'me'), 'walt');
    noProblems(assert, ws);
  });

  it('a page on long polling survives a server restart without losing a message', async () => {
    const before = (await roomMessages(lp)).map((m) => m.text);
    await say(ws, 'just before the restart');
    await waitMessage(lp, 'just before the restart');
    await srv.stop();
    await lp.locator('[data-testid="status"]:not([data-state="online"])').waitFor({ timeout: T });
    // typed while the server is away: kept, sent after the rejoin
    await say(lp, 'typed while down');
    srv = await srv.restart();
    await waitOnline(lp, 40000);
    await waitOnline(ws, 40000);
    assert.equal(await textOf(lp, 'me'), 'lena');
    await say(ws, 'after the restart');
    const want = [...before, 'just before the restart', 'typed while down', 'after the restart'];
    const [a, b] = await Promise.all([settled(lp, want, 30000), settled(ws, want, 30000)]);
    assert.deepEqual(a.map((m) => [m.id, m.text]), b.map((m) => [m.id, m.text]));
    noProblems(assert, lp);
  });
});
