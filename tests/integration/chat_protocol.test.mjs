// The chat protocol v1 (docs/PROTOCOL.md) end to end: the real server,
// driven by the `ws` npm client. Every client message type, every server
// message and every error code with its `ref`; ordering and ids across
// clients; resume with `since`; session reclaim; /ws/{room} plain text;
// WebSocket-level limits of chat endpoints.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Connects and reads welcome (and joined + replay when a room is given).
async function connect(srv, path = '/ws') {
  const c = await Chat.open(srv.url(path));
  c.welcome = await c.next('welcome');
  return c;
}

async function joinRoom(c, room, extra = {}) {
  c.send({ type: 'join', room, ...extra });
  const j = await c.next('joined');
  assert.equal(j.room, room);
  return j;
}

// Sends and waits for the ack (skipping other traffic); returns the id.
async function sendMsg(c, room, text, ref = `r-${Math.random()}`) {
  c.send({ type: 'send', room, text, ref });
  const ack = await c.until((m) => (m.type === 'ack' || m.type === 'error') && m.ref === ref);
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  return ack.id;
}

let srv;
before(async () => { srv = await startServer(); });
after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-3000));
});

let roomSeq = 0;
const freshRoom = (p = 'room') => `${p}-${process.pid}-${++roomSeq}`;
let nameSeq = 0;
const freshName = (p = 'user') => `${p}${++nameSeq}`;

describe('chat: connecting and names', () => {
  test('welcome carries the name and a 128-bit hex session token', T, async () => {
    const name = freshName('alice');
    const c = await connect(srv, `/ws?name=${name}`);
    assert.deepEqual(Object.keys(c.welcome).sort(), ['name', 'session', 'type']);
    assert.equal(c.welcome.name, name);
    assert.match(c.welcome.session, /^[0-9a-f]{32}$/);
    await c.close();
  });

  test('no name: guest-XXXX; held name: name_taken then a guest welcome; invalid: bad_name', T, async () => {
    const g = await connect(srv, '/ws');
    assert.match(g.welcome.name, /^guest-[0-9a-f]{4,}$/);
    const name = freshName('Bob');
    const a = await connect(srv, `/ws?name=${encodeURIComponent('  ' + name + ' ')}`);
    assert.equal(a.welcome.name, name, 'surrounding spaces are trimmed');
    const b = await Chat.open(srv.url(`/ws?name=${name.toUpperCase()}`));
    await b.expectError('name_taken');
    assert.match((await b.next('welcome')).name, /^guest-[0-9a-f]{4,}$/);
    for (const bad of ['guest-1234', 'GUEST-me', 'a%09b', 'x'.repeat(33), '%20%20', '%C2%85x']) {
      const c = await Chat.open(srv.url(`/ws?name=${bad}`));
      await c.expectError('bad_name');
      assert.match((await c.next('welcome')).name, /^guest-/, bad);
      await c.close();
    }
    const ok = await connect(srv, `/ws?name=${encodeURIComponent('日本語の名前 ' + nameSeq)}`);
    assert.equal(ok.welcome.name, '日本語の名前 ' + nameSeq);
    // a name is free again as soon as its connection closes
    await a.close();
    await sleep(100);
    const again = await connect(srv, `/ws?name=${name.toLowerCase()}`);
    assert.equal(again.welcome.name, name.toLowerCase());
    for (const c of [g, b, ok, again]) await c.close();
  });

  test('hello renames: welcome with the same token, presence rename to every room', T, async () => {
    const room1 = freshRoom(), room2 = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('al')}`);
    const b = await connect(srv, `/ws?name=${freshName('bo')}`);
    await joinRoom(a, room1);
    await joinRoom(a, room2);
    await joinRoom(b, room1);
    await a.next('presence');
    const old = a.welcome.name, neu = freshName('Alpha');
    a.send({ type: 'hello', name: neu });
    const w = await a.next('welcome');
    assert.deepEqual(w, { type: 'welcome', name: neu, session: a.welcome.session });
    const rooms = new Set();
    for (let i = 0; i < 2; i++) {
      const p = await a.next('presence');
      assert.equal(p.event, 'rename');
      assert.equal(p.name, neu);
      assert.equal(p.old, old);
      rooms.add(p.room);
    }
    assert.deepEqual([...rooms].sort(), [room1, room2].sort());
    assert.deepEqual(await b.next('presence'), { type: 'presence', room: room1, event: 'rename', name: neu, old, count: 2 });
    b.send({ type: 'hello', name: neu.toLowerCase(), ref: 'h1' });
    await b.expectError('name_taken', 'h1');
    b.send({ type: 'hello', name: 'guest-abcd', ref: 2 });
    await b.expectError('bad_name', 2);
    b.send({ type: 'hello' });
    await b.expectError('bad_request');
    // the old name is free
    b.send({ type: 'hello', name: old });
    assert.equal((await b.next('welcome')).name, old);
    await a.close();
    await b.close();
  });

  test('?session= reclaims the name: the old connection is closed with 4001, the new one joins nothing', T, async () => {
    const room = freshRoom();
    const name = freshName('sess');
    const a = await connect(srv, `/ws?name=${name}&room=${room}`);
    await a.next('joined');
    const w = await connect(srv, `/ws?room=${room}`);
    await w.next('joined');
    await a.next('presence');
    const a2 = await connect(srv, `/ws?session=${a.welcome.session}`);
    assert.deepEqual(a2.welcome, { type: 'welcome', name, session: a.welcome.session });
    const closed = await a.closed;
    assert.equal(closed.code, 4001);
    assert.equal(closed.reason, 'replaced');
    const p = await w.next('presence');
    assert.deepEqual(p, { type: 'presence', room, event: 'leave', name, count: 1 });
    a2.send({ type: 'send', room, text: 'x', ref: 'n' });
    await a2.expectError('not_member', 'n');
    // still held by the new connection
    const other = await Chat.open(srv.url(`/ws?name=${name}`));
    await other.expectError('name_taken');
    await other.close();
    await a2.close();
    await w.close();
  });
});

describe('chat: rooms, presence, messages', () => {
  test('join, presence with count, members, re-join, leave/left, not_member', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('a')}`);
    const b = await connect(srv, `/ws?name=${freshName('b')}`);
    const ja = await joinRoom(a, room);
    assert.deepEqual(ja.members, [a.welcome.name]);
    assert.equal(ja.last_id, 0);
    assert.match(ja.epoch, /^[0-9a-f]+$/);
    assert.equal('recovered' in ja, false);
    const jb = await joinRoom(b, room);
    assert.deepEqual(jb.members.sort(), [a.welcome.name, b.welcome.name].sort());
    assert.equal(jb.epoch, ja.epoch);
    assert.deepEqual(await a.next('presence'), { type: 'presence', room, event: 'join', name: b.welcome.name, count: 2 });
    // re-join: joined again, no presence
    const again = await joinRoom(b, room);
    assert.equal(again.members.length, 2);
    await a.silence(200);
    b.send({ type: 'leave', room });
    assert.deepEqual(await b.next('left'), { type: 'left', room });
    assert.deepEqual(await a.next('presence'), { type: 'presence', room, event: 'leave', name: b.welcome.name, count: 1 });
    for (const msg of [
      { type: 'leave', room, ref: 'l' },
      { type: 'send', room, text: 'x', ref: 's' },
      { type: 'typing', room, ref: 't' },
      { type: 'history', room, ref: 'h' },
    ]) {
      b.send(msg);
      await b.expectError('not_member', msg.ref);
    }
    // a connection may be in many rooms
    const other = freshRoom();
    await joinRoom(a, other);
    await sendMsg(a, other, 'in other');
    await sendMsg(a, room, 'in room');
    await a.close();
    await b.close();
  });

  test('the sender gets its ack before its own copy; two clients see the same messages in the same order with the same ids', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('a')}&room=${room}`);
    await a.next('joined');
    const b = await connect(srv, `/ws?name=${freshName('b')}&room=${room}`);
    await b.next('joined');
    await a.next('presence');
    const N = 60;
    for (let i = 0; i < N; i++) {
      a.send({ type: 'send', room, text: `a${i}`, ref: `a${i}` });
      b.send({ type: 'send', room, text: `b${i}`, ref: i });
    }
    const collect = async (c) => {
      const msgs = [], seenAck = new Map();
      while (msgs.length < 2 * N) {
        const m = await c.next();
        if (m.type === 'ack') { assert.equal(m.room, room); seenAck.set(m.id, m.ref); continue; }
        assert.equal(m.type, 'message', JSON.stringify(m));
        if (m.from === c.welcome.name) assert.ok(seenAck.has(m.id), `ack before own copy of ${m.id}`);
        msgs.push(m);
      }
      assert.equal(seenAck.size, N);
      return msgs;
    };
    const [ma, mb] = await Promise.all([collect(a), collect(b)]);
    assert.deepEqual(ma, mb);
    for (let i = 1; i < ma.length; i++) assert.ok(ma[i].id > ma[i - 1].id, 'ids strictly increase');
    for (const m of ma) {
      assert.deepEqual(Object.keys(m).sort(), ['from', 'id', 'room', 'text', 'ts', 'type']);
      assert.ok(Math.abs(m.ts - Date.now()) < 60000);
    }
    // each sender's own messages keep their order
    const fromA = ma.filter((m) => m.from === a.welcome.name).map((m) => m.text);
    assert.deepEqual(fromA, Array.from({ length: N }, (_, i) => `a${i}`));
    await a.close();
    await b.close();
  });

  test('typing goes to the others only, at most once per 2 s', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('a')}&room=${room}`);
    await a.next('joined');
    const b = await connect(srv, `/ws?name=${freshName('b')}&room=${room}`);
    await b.next('joined');
    await a.next('presence');
    a.send({ type: 'typing', room });
    a.send({ type: 'typing', room });
    assert.deepEqual(await b.next('typing'), { type: 'typing', room, name: a.welcome.name });
    assert.deepEqual(await a.sync(), [], 'nothing to the typist');
    assert.deepEqual(await b.sync(), [], 'the second typing is dropped');
    await sleep(2100);
    a.send({ type: 'typing', room });
    await b.next('typing');
    await a.close();
    await b.close();
  });

  test('dm: delivered to the named user (case-insensitive), acked with ref and no id', T, async () => {
    const a = await connect(srv, `/ws?name=${freshName('dmA')}`);
    const b = await connect(srv, `/ws?name=${freshName('dmB')}`);
    a.send({ type: 'dm', to: b.welcome.name.toUpperCase(), text: 'psst', ref: 'c2' });
    const dm = await b.next('dm');
    assert.equal(dm.from, a.welcome.name);
    assert.equal(dm.to, b.welcome.name);
    assert.equal(dm.text, 'psst');
    assert.equal(typeof dm.ts, 'number');
    assert.deepEqual(await a.next('ack'), { type: 'ack', ref: 'c2' });
    a.send({ type: 'dm', to: a.welcome.name, text: 'me', ref: 3 });
    await a.expectError('bad_request', 3);
    a.send({ type: 'dm', to: 'nobody-here', text: 'x', ref: 'u' });
    await a.expectError('no_such_user', 'u');
    a.send({ type: 'dm', to: b.welcome.name, text: 'x'.repeat(4097), ref: 'big' });
    await a.expectError('too_large', 'big');
    await b.close();
    await sleep(100);
    a.send({ type: 'dm', to: b.welcome.name, text: 'gone', ref: 'g' });
    await a.expectError('no_such_user', 'g');
    await a.close();
  });

  test('history pages backwards with before/limit/more; limit is clamped to 200', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('h')}&room=${room}`);
    await a.next('joined');
    const ids = [];
    for (let i = 0; i < 230; i++) a.send({ type: 'send', room, text: `m${i}`, ref: i });
    while (ids.length < 230) {
      const m = await a.next();
      if (m.type === 'ack') ids.push(m.id);
    }
    await a.sync();
    a.send({ type: 'history', room, limit: 5 });
    let h = await a.next('history');
    assert.equal(h.room, room);
    assert.equal(h.more, true);
    assert.deepEqual(h.messages.map((m) => m.id), ids.slice(-5));
    assert.deepEqual(h.messages.map((m) => m.text), ['m225', 'm226', 'm227', 'm228', 'm229']);
    for (const m of h.messages) assert.deepEqual(Object.keys(m).sort(), ['from', 'id', 'room', 'text', 'ts', 'type']);
    a.send({ type: 'history', room, before: ids[3], limit: 10 });
    h = await a.next('history');
    assert.deepEqual(h.messages.map((m) => m.id), ids.slice(0, 3));
    assert.equal(h.more, false);
    a.send({ type: 'history', room, limit: 1000 });
    h = await a.next('history');
    assert.equal(h.messages.length, 200);
    assert.equal(h.more, true);
    a.send({ type: 'history', room });
    h = await a.next('history');
    assert.equal(h.messages.length, 50);
    // page through everything: every id once, ascending
    const seen = [];
    let before;
    for (;;) {
      a.send({ type: 'history', room, limit: 64, ...(before ? { before } : {}) });
      h = await a.next('history');
      seen.unshift(...h.messages.map((m) => m.id));
      if (!h.more) break;
      before = h.messages[0].id;
    }
    assert.deepEqual(seen, ids);
    a.send({ type: 'history', room, limit: 0, ref: 'z' });
    await a.expectError('bad_request', 'z');
    a.send({ type: 'history', room, before: -1, ref: 'n' });
    await a.expectError('bad_request', 'n');
    await a.close();
  });

  test('joined is followed by the latest 50 messages', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('l')}&room=${room}`);
    await a.next('joined');
    let last;
    for (let i = 0; i < 60; i++) last = await sendMsg(a, room, `t${i}`);
    const b = await connect(srv, `/ws?room=${room}`);
    const j = await b.next('joined');
    assert.equal(j.last_id, last);
    const replay = [];
    for (let i = 0; i < 50; i++) replay.push(await b.next('message'));
    assert.deepEqual(replay.map((m) => m.text), Array.from({ length: 50 }, (_, i) => `t${i + 10}`));
    assert.deepEqual(await b.sync(), []);
    await a.close();
    await b.close();
  });

  test('ping -> pong with ref (absent ref: none) and ts', T, async () => {
    const a = await connect(srv);
    a.send({ type: 'ping', ref: 'p1' });
    let p = await a.next('pong');
    assert.equal(p.ref, 'p1');
    assert.ok(Math.abs(p.ts - Date.now()) < 60000);
    a.send({ type: 'ping' });
    p = await a.next('pong');
    assert.deepEqual(Object.keys(p).sort(), ['ts', 'type']);
    a.send({ type: 'ping', ref: 12.5 });
    assert.equal((await a.next('pong')).ref, 12.5);
    a.send({ type: 'ping', ref: 0 });
    assert.equal((await a.next('pong')).ref, 0);
    await a.close();
  });
});

describe('chat: errors', () => {
  test('every error code, in the documented order, with its ref; the connection stays open', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?name=${freshName('err')}&room=${room}`);
    await a.next('joined');
    const b = await connect(srv, `/ws?name=${freshName('other')}`);
    const cases = [
      ['not json', 'bad_request'],
      ['[1,2]', 'bad_request'],
      [{ no: 'type' }, 'bad_request'],
      [{ type: 7 }, 'bad_request'],
      [{ type: 'shout', ref: 'u1' }, 'unknown_type', 'u1'],
      [{ type: 'shout', room: 'bad room', ref: 5 }, 'unknown_type', 5],
      [{ type: 'send', room, ref: 'm' }, 'bad_request', 'm'],
      [{ type: 'send', text: 'x', ref: 'm2' }, 'bad_request', 'm2'],
      [{ type: 'send', room, text: '', ref: 'e' }, 'bad_request', 'e'],
      [{ type: 'join', room, since: -1, ref: 's' }, 'bad_request', 's'],
      [{ type: 'join', room, since: 1.5, ref: 's2' }, 'bad_request', 's2'],
      [{ type: 'join', room, since: '3', ref: 's3' }, 'bad_request', 's3'],
      [{ type: 'ping', ref: true }, 'bad_request'],
      [{ type: 'send', room: 'bad room', text: 'x', ref: 'br' }, 'bad_room', 'br'],
      [{ type: 'join', room: 'x'.repeat(65), ref: 'br2' }, 'bad_room', 'br2'],
      [{ type: 'send', room: 'bad/room', text: 'x'.repeat(5000), ref: 'br3' }, 'bad_room', 'br3'],
      [{ type: 'hello', name: 'guest-0001', ref: 'bn' }, 'bad_name', 'bn'],
      [{ type: 'hello', name: b.welcome.name, ref: 'nt' }, 'name_taken', 'nt'],
      [{ type: 'send', room, text: 'x'.repeat(4097), ref: 'big' }, 'too_large', 'big'],
      [{ type: 'send', room: 'elsewhere', text: 'x', ref: 'nm' }, 'not_member', 'nm'],
      [{ type: 'dm', to: 'no-such-person', text: 'x', ref: 'ns' }, 'no_such_user', 'ns'],
      [{ type: 'dm', to: a.welcome.name, text: 'x', ref: 'self' }, 'bad_request', 'self'],
    ];
    for (const [msg, code, ref] of cases) {
      a.send(msg);
      const e = await a.next('error');
      assert.equal(e.code, code, `${JSON.stringify(msg).slice(0, 80)} -> ${JSON.stringify(e)}`);
      if (ref === undefined) assert.equal('ref' in e, false);
      else assert.deepEqual(e.ref, ref);
    }
    // exactly max-text bytes (multi-byte counts in bytes) is fine
    const id = await sendMsg(a, room, 'é'.repeat(2048));
    assert.ok(id > 0);
    await a.close();
    await b.close();
  });

  test('--rate-limit: over the rate (burst twice it) gets rate_limited and is not stored', T, async () => {
    const s = await startServer({ args: ['--rate-limit', '2'] });
    try {
      const room = 'limited';
      const a = await connect(s, `/ws?room=${room}`);
      await a.next('joined');
      for (let i = 0; i < 7; i++) a.send({ type: 'send', room, text: `x${i}`, ref: i });
      const acks = [], limited = [];
      while (acks.length + limited.length < 7) {
        const m = await a.next();
        if (m.type === 'ack') acks.push(m.ref);
        else if (m.type === 'error') { assert.equal(m.code, 'rate_limited'); limited.push(m.ref); }
      }
      assert.deepEqual(acks, [0, 1, 2, 3]);
      assert.deepEqual(limited, [4, 5, 6]);
      await a.sync();
      a.send({ type: 'history', room });
      const h = await a.next('history');
      assert.deepEqual(h.messages.map((m) => m.text), ['x0', 'x1', 'x2', 'x3']);
      assert.deepEqual(h.messages.map((m) => m.id), [1, 2, 3, 4]);
      await sleep(1100);   // the bucket refills
      assert.ok((await sendMsg(a, room, 'later')) > 4);
      await a.close();
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
    }
  });
});

describe('chat: resume', () => {
  test('after a dropped connection, session + since resumes with no loss and no duplicates', T, async () => {
    const room = freshRoom();
    const name = freshName('resumer');
    const a = await connect(srv, `/ws?name=${name}&room=${room}`);
    const j0 = await a.next('joined');
    const b = await connect(srv, `/ws?name=${freshName('talker')}&room=${room}`);
    await b.next('joined');
    const N = 150;
    const sending = (async () => {
      for (let i = 0; i < N; i++) {
        b.send({ type: 'send', room, text: `n${i}`, ref: i });
        if (i % 10 === 9) await sleep(5);
      }
    })();
    const got = [];
    while (got.length < 40) {
      const m = await a.next();
      if (m.type === 'message') got.push(m);
    }
    a.ws.terminate();   // the network drops: no close handshake
    await sleep(100);
    const lastSeen = got[got.length - 1].id;
    const a2 = await Chat.open(srv.url(`/ws?session=${a.welcome.session}&room=${room}&since=${lastSeen}&epoch=${j0.epoch}`));
    assert.equal((await a2.next('welcome')).name, name);
    const j = await a2.next('joined');
    assert.equal(j.recovered, true);
    await sending;
    while (got.length < N) {
      const m = await a2.next();
      if (m.type === 'message') got.push(m);
    }
    await sleep(200);
    assert.deepEqual(a2.queue.filter((m) => m.type === 'message'), [], 'no extra messages');
    assert.deepEqual(got.map((m) => m.text), Array.from({ length: N }, (_, i) => `n${i}`));
    for (let i = 1; i < got.length; i++) assert.ok(got[i].id > got[i - 1].id);
    await a2.close();
    await b.close();
  });

  test('since with a different epoch, beyond last_id, or too far back: recovered false and the latest 50', T, async () => {
    const room = freshRoom();
    const a = await connect(srv, `/ws?room=${room}`);
    const j0 = await a.next('joined');
    for (let i = 0; i < 60; i++) a.send({ type: 'send', room, text: `q${i}`, ref: i });
    let last;
    for (let n = 0; n < 60;) { const m = await a.next(); if (m.type === 'ack') { n++; last = m.id; } }
    await a.sync();
    for (const q of [`since=${last - 5}&epoch=0000`, `since=${last + 1}`, `since=${last - 5}&epoch=${j0.epoch}`, `since=${last}`, 'since=abc']) {
      const c = await Chat.open(srv.url(`/ws?room=${room}&${q}`));
      await c.next('welcome');
      if (q === 'since=abc') {
        await c.expectError('bad_request');
        await c.quiet('a bad ?since= joins nothing');
        await c.close();
        continue;
      }
      const j = await c.next('joined');
      const replay = (await c.sync()).filter((m) => m.type === 'message');
      if (q.startsWith(`since=${last - 5}&epoch=${j0.epoch}`)) {
        assert.equal(j.recovered, true, q);
        assert.deepEqual(replay.map((m) => m.text), ['q55', 'q56', 'q57', 'q58', 'q59']);
      } else if (q === `since=${last}`) {
        assert.equal(j.recovered, true, q);
        assert.equal(replay.length, 0);
      } else {
        assert.equal(j.recovered, false, q);
        assert.equal(replay.length, 50, q);
        assert.equal(replay[49].text, 'q59');
      }
      await c.close();
    }
    await a.sync();   // presence of the clients above
    a.send({ type: 'join', room, since: 0 });
    const j = await a.until((m) => m.type === 'joined');
    assert.equal(j.recovered, true, '60 messages after 0 are replayed');
    await a.close();
  });
});

describe('chat: /ws/{room} and WebSocket limits', () => {
  test('/ws/{room}: joined at once; plain text is sent to the room; JSON objects with a type are protocol', T, async () => {
    const room = freshRoom('plain');
    const p = await Chat.open(srv.url(`/ws/${room}`));
    await p.next('welcome');
    assert.deepEqual((await p.next('joined')).room, room);
    const w = await connect(srv, `/ws?room=${room}`);
    await w.next('joined');
    await p.next('presence');
    p.send('hello from a plain client');
    p.send('{"not":"typed"}');
    p.send('42');
    let ack = await p.next('ack');
    assert.equal('ref' in ack, false);
    assert.equal((await p.next('message')).text, 'hello from a plain client');
    for (const text of ['hello from a plain client', '{"not":"typed"}', '42']) {
      const m = await w.next('message');
      assert.equal(m.text, text);
      assert.equal(m.from, p.all[0].name);
    }
    p.send(JSON.stringify({ type: 'ping', ref: 'x' }));
    await p.until((m) => m.type === 'pong' && m.ref === 'x');
    p.send('');
    await p.expectError('bad_request');
    // on /ws, plain text is a bad request
    w.send('hello');
    await w.expectError('bad_request');
    await p.close();
    await w.close();
  });

  test('an invalid /ws/{room} is refused with HTTP 400 before the upgrade', T, async () => {
    for (const bad of ['bad%20room', 'x'.repeat(65), 'caf%C3%A9']) {
      await assert.rejects(Chat.open(srv.url(`/ws/${bad}`)), (e) => e.status === 400, bad);
    }
    const r = await fetch(srv.http('/ws/bad%20room'), { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } }).catch(() => null);
    if (r) {
      assert.equal(r.status, 400);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    }
  });

  test('a binary frame on a chat endpoint closes with 1003; a message over 64 KiB with 1009', T, async () => {
    const a = await connect(srv);
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await a.closed).code, 1003);
    const room = freshRoom();
    const b = await connect(srv, `/ws/${room}`);
    b.send('x'.repeat(64 * 1024 + 1));
    assert.equal((await b.closed).code, 1009);
    // exactly 64 KiB is a WebSocket message chat accepts (and rejects as too_large text)
    const c = await connect(srv);
    c.send(JSON.stringify({ type: 'ping', ref: 'x'.repeat(64 * 1024 - 30) }));
    assert.equal((await c.next('pong')).ref.length, 64 * 1024 - 30);
    await c.close();
  });
});
