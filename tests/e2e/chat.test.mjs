// Browser tests: two people chat on the web page of a real wschat server.
// One server and one browser for the file; the tests run in order and share
// alice's and bob's pages.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  T, launch, newPage, join, eventually, say, roomMessages, waitMessage,
  memberVisible, memberGone, textOf, noProblems, waitOnline,
  testWithDiagnostics,
} from './helpers.mjs';

const ROOM = 'lobby';

describe('web page: two people chat', { timeout: 110000 }, () => {
  let srv, browser, alice, bob;
  const it = testWithDiagnostics(() => ({ srv }));

  before(async () => {
    srv = await startServer();
    browser = await launch();
    alice = await newPage(browser);
    bob = await newPage(browser);
  });

  after(async () => {
    await browser?.close();
    const code = await srv?.stop();
    if (code !== 0 && code !== null) process.stderr.write(srv.log);
  });

  it('serves the page and its assets from the binary', async () => {
    const r = await fetch(srv.http('/'));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/html/);
    const html = await r.text();
    assert.match(html, /data-testid="message-list"/);
    for (const [p, type] of [['/static/app.js', /javascript/], ['/static/style.css', /text\/css/]]) {
      const a = await fetch(srv.http(p));
      assert.equal(a.status, 200, p);
      assert.match(a.headers.get('content-type'), type, p);
    }
    // No external assets: nothing in the page points off the server.
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//i);
  });

  it('presence: the member list and count follow joins and leaves', async () => {
    await join(alice, srv, { name: 'alice', room: ROOM });
    assert.equal(await textOf(alice, 'member-count'), '1');
    await join(bob, srv, { name: 'bob', room: ROOM });
    await memberVisible(alice, 'bob');
    await eventually(async () => assert.equal(await textOf(alice, 'member-count'), '2'));
    // bob saw alice in joined.members
    await memberVisible(bob, 'alice');
    assert.equal(await textOf(bob, 'member-count'), '2');

    // A third person (whose name looks like HTML) comes and goes.
    const eve = await newPage(browser);
    const eveName = '<b>eve</b>';
    await join(eve, srv, { name: eveName, room: ROOM });
    await memberVisible(alice, eveName);
    await eventually(async () => assert.equal(await textOf(alice, 'member-count'), '3'));
    assert.equal(await alice.locator('[data-testid="member-list"] b').count(), 0, 'a name is text, not markup');
    await eve.context().close();
    await memberGone(alice, eveName);
    await memberGone(bob, eveName);
    await eventually(async () => assert.equal(await textOf(alice, 'member-count'), '2'));
    await eventually(async () => assert.equal(await textOf(bob, 'member-count'), '2'));
  });

  it('both see each other\'s messages, in the same order with the same ids', async () => {
    await say(alice, 'hello bob');
    await waitMessage(bob, 'hello bob');
    await say(bob, 'hi alice');
    await waitMessage(alice, 'hi alice');

    // Now both type at once: whatever the interleaving, both show one order.
    const a = Array.from({ length: 5 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 5 }, (_, i) => `b${i}`);
    await Promise.all([
      (async () => { for (const t of a) await say(alice, t); })(),
      (async () => { for (const t of b) await say(bob, t); })(),
    ]);
    const all = ['hello bob', 'hi alice', ...a, ...b];
    const shown = async (page) => eventually(async () => {
      const ms = await roomMessages(page);
      assert.deepEqual(ms.filter((m) => m.pending), [], 'nothing left pending');
      assert.deepEqual(ms.map((m) => m.text).sort(), [...all].sort());
      return ms;
    });
    const [ma, mb] = await Promise.all([shown(alice), shown(bob)]);
    assert.deepEqual(ma.map((m) => [m.id, m.from, m.text]), mb.map((m) => [m.id, m.from, m.text]));
    const ids = ma.map((m) => m.id);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'shown in id order');
    assert.equal(new Set(ids).size, ids.length, 'each id once');
    // Sender and local time are shown; own messages are marked.
    const first = alice.locator('[data-testid="message"][data-kind="room"]').first();
    assert.equal(await first.locator('[data-testid="message-from"]').textContent(), 'alice');
    assert.match(await first.locator('time').textContent(), /\d{1,2}.\d{2}/);
    assert.equal(await first.evaluate((e) => e.classList.contains('mine')), true);
    const firstOnBob = bob.locator('[data-testid="message"][data-kind="room"]').first();
    assert.equal(await firstOnBob.evaluate((e) => e.classList.contains('mine')), false);
  });

  it('the send button sends too', async () => {
    await bob.getByTestId('message-input').fill('by button');
    await bob.getByTestId('send-button').click();
    await waitMessage(alice, 'by button');
    assert.equal(await bob.getByTestId('message-input').inputValue(), '');
  });

  it('typing indicator appears on the other page and goes away', async () => {
    const indicator = alice.getByTestId('typing-indicator');
    assert.equal((await indicator.textContent()).trim(), '');
    // bob keeps typing (a key every few hundred ms) until alice sees it.
    const input = bob.getByTestId('message-input');
    await eventually(async () => {
      await input.press('x');
      assert.match(await indicator.textContent(), /bob is typing/);
    }, { interval: 250 });
    // bob's own page does not show himself typing
    assert.doesNotMatch(await bob.getByTestId('typing-indicator').textContent(), /bob/);
    // It expires about 3 s after the last typing event.
    await eventually(async () => assert.equal((await indicator.textContent()).trim(), ''), { timeout: T });
    await bob.getByTestId('message-input').fill('');
  });

  it('direct message: click a member, send, shown distinctly to the two of them only', async () => {
    const carol = await newPage(browser);
    await join(carol, srv, { name: 'carol', room: ROOM });
    await memberVisible(alice, 'carol');

    await alice.locator('[data-testid="member-list"] [data-testid="member"][data-name="bob"] button').click();
    await alice.getByTestId('dm-target').waitFor({ timeout: T });
    assert.match(await alice.getByTestId('dm-target').textContent(), /bob/);
    await say(alice, 'psst, just for you');

    const dmOnBob = bob.locator('[data-testid="message"][data-kind="dm"]', { hasText: 'psst, just for you' });
    await dmOnBob.waitFor({ timeout: T });
    assert.equal(await dmOnBob.getAttribute('data-from'), 'alice');
    const dmOnAlice = alice.locator('[data-testid="message"][data-kind="dm"]', { hasText: 'psst, just for you' });
    await eventually(async () => assert.match(await dmOnAlice.textContent(), /delivered/));
    assert.equal(await dmOnAlice.count(), 1);
    // Not a room message, and carol never sees it.
    assert.equal((await roomMessages(bob)).some((m) => m.text === 'psst, just for you'), false);
    // Back in the room, a room message goes to everyone (carol got it, so
    // she would have got the DM before it, had it leaked).
    await alice.getByTestId('dm-cancel').click();
    await say(alice, 'back to the room');
    await waitMessage(carol, 'back to the room');
    assert.equal(await carol.getByText('psst, just for you').count(), 0);
    await carol.context().close();
  });

  it('HTML in a message is shown as text, never run', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    await say(alice, evil);
    const [m] = await waitMessage(bob, evil);
    assert.equal(m.text, evil);
    assert.equal(await bob.locator('[data-testid="message-list"] img').count(), 0);
    assert.equal(await alice.locator('[data-testid="message-list"] img').count(), 0);
    await say(bob, '<script>window.pwned=1</script>**bold**');
    await waitMessage(alice, '<script>window.pwned=1</script>**bold**');
    assert.equal(await alice.evaluate(() => window.pwned), undefined);
    noProblems(assert, alice, bob);
  });

  it('a taken name gets a visible notice', async () => {
    const imposter = await newPage(browser);
    await imposter.goto(srv.http(`/#${ROOM}`));
    // The link's room is filled in.
    assert.equal(await imposter.getByTestId('room-input').inputValue(), ROOM);
    await imposter.getByTestId('name-input').fill('alice');
    await imposter.getByTestId('join-button').click();
    await imposter.getByTestId('notice').waitFor({ timeout: T });
    assert.match(await imposter.getByTestId('notice').textContent(), /taken/i);
    await imposter.context().close();
    // alice still has her name
    assert.equal(await textOf(alice, 'me'), 'alice');
  });

  it('a rename shows in the other page\'s member list', async () => {
    await bob.getByTestId('me').click();
    await bob.getByTestId('name-input').fill('robert');
    await bob.getByTestId('join-button').click();
    await eventually(async () => assert.equal(await textOf(bob, 'me'), 'robert'));
    await memberVisible(alice, 'robert');
    await memberGone(alice, 'bob');
    await eventually(async () => assert.equal(await textOf(alice, 'member-count'), '2'));
    await say(bob, 'call me robert');
    const [m] = await waitMessage(alice, 'call me robert');
    assert.equal(m.from, 'robert');
    assert.equal(new URL(alice.url()).hash, `#${ROOM}`);
  });

  it('switching rooms leaves the old one (the others see it) and shows the new one', async () => {
    await alice.getByTestId('me').click();
    await alice.getByTestId('room-input').fill('elsewhere');
    await alice.getByTestId('join-button').click();
    await eventually(async () => assert.equal(await textOf(alice, 'room-name'), 'elsewhere'));
    await waitOnline(alice);
    await memberVisible(alice, 'alice');
    await memberGone(alice, 'robert');
    await eventually(async () => assert.equal(await textOf(alice, 'member-count'), '1'));
    assert.deepEqual(await roomMessages(alice), [], 'the old room\'s messages are gone');
    assert.equal(new URL(alice.url()).hash, '#elsewhere');
    await memberGone(bob, 'alice');
    await eventually(async () => assert.equal(await textOf(bob, 'member-count'), '1'));
    // And back through the link's hash.
    await alice.evaluate((room) => { location.hash = room; }, ROOM);
    await waitMessage(alice, 'call me robert');
    await memberVisible(bob, 'alice');
    noProblems(assert, alice, bob);
  });
});
