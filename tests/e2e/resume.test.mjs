// Browser tests: the page keeps its name across a reload (session token) and
// survives a server restart by itself, resuming with since/epoch so that no
// message is lost or shown twice.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  T, launch, newPage, join, eventually, say, roomMessages, waitMessage, waitOnline,
  memberVisible, textOf, noProblems,
  testWithDiagnostics, settled,
} from './helpers.mjs';

const ROOM = 'resume-room';

describe('web page: reload and server restart', { timeout: 115000 }, () => {
  let srv, browser, alice, bob;
  const it = testWithDiagnostics(() => ({ srv }));

  before(async () => {
    srv = await startServer();
    browser = await launch();
    alice = await newPage(browser);
    bob = await newPage(browser);
    await join(alice, srv, { name: 'alice', room: ROOM });
    await join(bob, srv, { name: 'bob', room: ROOM });
    await memberVisible(alice, 'bob');
  });

  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  it('a reload keeps the name (session token) and the room', async () => {
    await say(alice, 'before reload');
    await waitMessage(bob, 'before reload');
    await alice.reload();
    await waitOnline(alice);
    assert.equal(await textOf(alice, 'me'), 'alice');
    await memberVisible(alice, 'alice');
    await memberVisible(alice, 'bob');
    assert.equal(await textOf(alice, 'room-name'), ROOM);
    // The recent history is shown again after the reload.
    await waitMessage(alice, 'before reload');
    // bob sees alice (not a guest) and can talk to her.
    await memberVisible(bob, 'alice');
    await eventually(async () => assert.equal(await textOf(bob, 'member-count'), '2'));
    await say(bob, 'welcome back');
    await waitMessage(alice, 'welcome back');
    assert.equal(await alice.getByTestId('notice').isVisible(), false, 'no notice (e.g. name_taken)');
  });

  it('a dropped connection resumes with since: 80 messages posted while away, all shown once, no gap', async () => {
    const room = 'gap-room';
    // carol's WebSocket goes through the test, which can cut it and hold
    // off her reconnects like a network outage would.
    const carol = await newPage(browser);
    let link = null;
    let blocked = false;
    await carol.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      if (blocked) { ws.close({ code: 1001, reason: 'test outage' }); return; }
      link = { ws, server: ws.connectToServer() };
    });
    await join(carol, srv, { name: 'carol', room });
    const poster = await newPage(browser);
    await join(poster, srv, { name: 'dave', room });
    for (let i = 1; i <= 5; i++) await say(poster, `early ${i}`);
    await waitMessage(carol, 'early 5');

    blocked = true;
    link.server.close();
    link.ws.close({ code: 1001, reason: 'test outage' });
    await carol.locator('[data-testid="status"]:not([data-state="online"])').waitFor({ timeout: T });
    const late = Array.from({ length: 80 }, (_, i) => `late ${i + 1}`);
    for (const t of late) await say(poster, t);
    await waitMessage(poster, 'late 80');
    blocked = false;
    await waitOnline(carol, 30000);

    const want = [...Array.from({ length: 5 }, (_, i) => `early ${i + 1}`), ...late];
    const ms = await eventually(async () => {
      const got = await roomMessages(carol);
      assert.deepEqual(got.map((m) => m.text), want);
      return got;
    });
    const ids = ms.map((m) => m.id);
    for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, 'no gap in ids');
    noProblems(assert, carol, poster);
    await carol.context().close();
    await poster.context().close();
  });

  it('a server restart is survived: reconnect, nothing lost, nothing twice', async () => {
    const sent = ['before reload', 'welcome back'];
    await say(bob, 'just before');
    await waitMessage(alice, 'just before');
    sent.push('just before');

    // bob sends one as the server goes down (it may or may not get stored
    // before the stop; either way it must end up shown exactly once).
    await say(bob, 'racing the restart');
    sent.push('racing the restart');
    await srv.stop();
    for (const p of [alice, bob]) {
      await p.locator('[data-testid="status"]:not([data-state="online"])').waitFor({ timeout: T });
    }
    // While the server is away, bob writes; the page keeps it for later.
    await say(bob, 'while it was down');
    sent.push('while it was down');
    srv = await srv.restart();

    await waitOnline(alice, 30000);
    await waitOnline(bob, 30000);
    assert.equal(await textOf(alice, 'me'), 'alice');
    assert.equal(await textOf(bob, 'me'), 'bob');
    await memberVisible(alice, 'bob');
    await memberVisible(bob, 'alice');

    await say(alice, 'after restart');
    sent.push('after restart');
    const [ma, mb] = await Promise.all([settled(alice, sent), settled(bob, sent)]);
    assert.deepEqual(ma.map((m) => [m.id, m.text]), mb.map((m) => [m.id, m.text]));

    // A second time, with kill -9 (a crash).
    await srv.kill9();
    await alice.locator('[data-testid="status"]:not([data-state="online"])').waitFor({ timeout: T });
    await say(alice, 'after the crash');
    sent.push('after the crash');
    srv = await srv.restart();
    await waitOnline(alice, 30000);
    await waitOnline(bob, 30000);
    const [ma2, mb2] = await Promise.all([settled(alice, sent), settled(bob, sent)]);
    assert.deepEqual(ma2.map((m) => [m.id, m.text]), mb2.map((m) => [m.id, m.text]));
    noProblems(assert, alice, bob);
  });

  it('history lost (a new database, new epoch): the page starts over from the server\'s history', async () => {
    const port = srv.port;
    await srv.stop();
    await alice.locator('[data-testid="status"]:not([data-state="online"])').waitFor({ timeout: T });
    // Same port, fresh database: ids start again, so old ids must not hide
    // new messages and old messages must not linger as if current.
    srv = await startServer({ port });
    await waitOnline(alice, 30000);
    await waitOnline(bob, 30000);
    await say(bob, 'a new world');
    const [ma, mb] = await Promise.all([settled(alice, ['a new world']), settled(bob, ['a new world'])]);
    assert.deepEqual(ma.map((m) => [m.id, m.text]), mb.map((m) => [m.id, m.text]));
    noProblems(assert, alice, bob);
  });
});
