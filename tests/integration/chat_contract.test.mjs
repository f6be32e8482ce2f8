// The protocol contract (docs/PROTOCOL.md) rule by
// rule, as a strict black-box checker would read it: exact field sets,
// exact order of replies, exact error codes and the presence or absence of
// `ref`, the raw JSON text where it matters (a number `ref` echoed as
// given). chat_protocol.test.mjs covers the broad flows; this file pins the
// details. Every wait has a deadline; nothing sleeps where an event can be
// awaited (a ping round trip proves that nothing else was sent).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { request } from '../lib/rawhttp.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let srv;
before(async () => { srv = await startServer(); });
after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-3000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-3000));
});

let seq = 0;
const fresh = (p = 'c') => `${p}${process.pid % 10000}x${++seq}`;

async function connect(s, path = '/ws') {
  const c = await Chat.open(s.url(path));
  c.welcome = await c.next('welcome');
  c.name = c.welcome.name;
  return c;
}

// Joins; presence of others that was already queued is skipped.
async function joinRoom(c, room, extra = {}) {
  c.send({ type: 'join', room, ...extra });
  const j = await c.until((m) => m.type !== 'presence');
  assert.equal(j.type, 'joined', j.raw);
  assert.equal(j.room, room);
  return j;
}

// Sends n messages at once; returns their acks in order.
async function sendMany(c, room, n, prefix = 'm') {
  for (let i = 0; i < n; i++) c.send({ type: 'send', room, text: `${prefix}${i}`, ref: `${prefix}${i}` });
  const acks = [];
  while (acks.length < n) {
    const m = await c.next(undefined, 60000);
    if (m.type === 'ack') acks.push(m);
    else assert.equal(m.type, 'message', m.raw);
  }
  await c.sync();
  return acks;
}

const MESSAGE_KEYS = ['from', 'id', 'room', 'text', 'ts', 'type'];
const JOINED_KEYS = ['epoch', 'last_id', 'members', 'room', 'type'];

describe('contract: connections and names', () => {
  test('/ws sends welcome {type,name,session} first; a guest is guest- + 4 lowercase hex', T, async () => {
    const cs = [];
    for (let i = 0; i < 5; i++) {
      const c = await connect(srv);
      assert.deepEqual(Object.keys(c.welcome).sort(), ['name', 'session', 'type']);
      assert.match(c.name, /^guest-[0-9a-f]{4}$/);
      assert.match(c.welcome.session, /^[0-9a-f]{32}$/);
      cs.push(c);
    }
    assert.equal(new Set(cs.map((c) => c.name)).size, 5, 'guest names are unique');
    assert.equal(new Set(cs.map((c) => c.welcome.session)).size, 5, 'tokens are unique');
    for (const c of cs) await c.quiet();
    for (const c of cs) await c.close();
  });

  test('with a room: welcome, then joined, then the replay, nothing else', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    const acks = await sendMany(a, room, 3);
    for (const path of [`/ws?room=${room}`, `/ws/${room}`]) {
      const c = await Chat.open(srv.url(path));
      assert.equal((await c.next()).type, 'welcome');
      const j = await c.next('joined');
      assert.deepEqual(Object.keys(j).sort(), JOINED_KEYS);
      assert.equal(j.last_id, acks[2].id);
      for (let i = 0; i < 3; i++) {
        const m = await c.next('message');
        assert.equal(m.id, acks[i].id);
        assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS);
      }
      await c.quiet();
      await c.close();
    }
    await a.close();
  });

  test('?name= held or invalid: error (no ref) then welcome with a guest name, then joined', T, async () => {
    const name = fresh('Held');
    const a = await connect(srv, `/ws?name=${name}`);
    const room = fresh('r');
    for (const [q, code] of [[name.toLowerCase(), 'name_taken'], ['guest-abcd', 'bad_name'], ['a%7Fb', 'bad_name'], ['', 'bad_name']]) {
      const c = await Chat.open(srv.url(`/ws?name=${q}&room=${room}`));
      await c.expectExactError(code);
      const w = await c.next('welcome');
      assert.match(w.name, /^guest-[0-9a-f]{4}$/, q);
      await c.next('joined');
      await c.quiet();
      await c.close();
    }
    await a.close();
  });

  test('names: 1-32 code points after trimming spaces, no C0/DEL/C1, guest- reserved', T, async () => {
    const c = await connect(srv);
    const tag = String(seq++).padStart(4, '0');
    const ok = [
      '日'.repeat(28) + tag,                 // 32 code points, 96+ bytes
      '😀'.repeat(28) + tag,                 // 32 code points of 4 bytes (64 UTF-16 units)
      'x'.repeat(28) + tag,
      `  sp${tag}  `,                        // trimmed
      `a b${tag}`,                           // inner space kept
      `nb\u00a0sp${tag}`,                    // U+00A0 is not a control character
      `guest${tag}`,                         // only "guest-" is reserved
    ];
    let ref = 0;
    for (const name of ok) {
      c.send({ type: 'hello', name, ref: ++ref });
      const w = await c.next('welcome');
      assert.equal(w.name, name.trim(), JSON.stringify(name));
      assert.deepEqual(Object.keys(w).sort(), ['name', 'session', 'type'], 'welcome has no ref');
    }
    const bad = [
      '', '   ', 'x'.repeat(33), '日'.repeat(33), '😀'.repeat(33),
      'a\tb', 'a\nb', 'a\u0000b', 'a\u001fb', 'a\u007fb', 'a\u0080b', 'a\u009fb', '\u00851',
      'guest-1', 'GUEST-abc', 'Guest-', ' guest-x',
    ];
    for (const name of bad) {
      c.send({ type: 'hello', name, ref: ++ref });
      await c.expectExactError('bad_name', ref);
    }
    for (const v of [null, 5, ['x'], { n: 1 }]) {
      c.send({ type: 'hello', name: v, ref: 'nv' });
      await c.expectExactError('bad_request', 'nv');
    }
    await c.quiet();
    await c.close();
  });

  test('names collide ASCII case-insensitively only', T, async () => {
    const base = fresh('Zed');
    const a = await connect(srv, `/ws?name=${base}`);
    const b = await connect(srv);
    b.send({ type: 'hello', name: base.toUpperCase(), ref: 'u' });
    await b.expectExactError('name_taken', 'u');
    b.send({ type: 'hello', name: ` ${base.toLowerCase()} `, ref: 'l' });
    await b.expectExactError('name_taken', 'l');
    const e1 = await connect(srv, `/ws?name=${encodeURIComponent('É' + base)}`);
    const e2 = await connect(srv, `/ws?name=${encodeURIComponent('é' + base)}`);
    assert.equal(e1.name, 'É' + base);
    assert.equal(e2.name, 'é' + base, 'non-ASCII letters are not folded');
    for (const c of [a, b, e1, e2]) await c.close();
  });

  test('a name is free again as soon as its connection closes', T, async () => {
    const name = fresh('free');
    const room = fresh('r');
    const w = await connect(srv, `/ws?room=${room}`);
    await w.next('joined');
    const a = await connect(srv, `/ws?name=${name}&room=${room}`);
    await a.next('joined');
    await w.next('presence');
    a.ws.close(1000);
    // the leave presence proves the server saw the close
    assert.deepEqual(await w.next('presence'), { type: 'presence', room, event: 'leave', name, count: 1 });
    const b = await connect(srv, `/ws?name=${name}`);
    assert.equal(b.name, name);
    await b.close();
    await w.close();
  });

  test('hello: welcome with the same token; rename presence {name,old,count} to every room after welcome', T, async () => {
    const r1 = fresh('r'), r2 = fresh('r');
    const a = await connect(srv, `/ws?name=${fresh('ren')}`);
    const b = await connect(srv, `/ws?name=${fresh('obs')}`);
    await joinRoom(a, r1);
    await joinRoom(a, r2);
    await joinRoom(b, r1);
    await a.next('presence');
    // the same name byte for byte: only welcome
    a.send({ type: 'hello', name: a.name });
    assert.deepEqual(await a.next('welcome'), { type: 'welcome', name: a.name, session: a.welcome.session });
    await a.quiet('no presence for the same name');
    await b.quiet('no presence for the same name');
    // a case change of one's own name is a rename
    const upper = a.name.toUpperCase();
    a.send({ type: 'hello', name: upper, ref: 'h' });
    assert.deepEqual(await a.next(), { type: 'welcome', name: upper, session: a.welcome.session });
    const got = [await a.next('presence'), await a.next('presence')].sort((x, y) => x.room.localeCompare(y.room));
    const want = [r1, r2].sort().map((room) => ({ type: 'presence', room, event: 'rename', name: upper, old: a.name, count: room === r1 ? 2 : 1 }));
    assert.deepEqual(got, want);
    assert.deepEqual(await b.next(), { type: 'presence', room: r1, event: 'rename', name: upper, old: a.name, count: 2 });
    // messages now carry the new name
    a.send({ type: 'send', room: r1, text: 'x', ref: 1 });
    await a.next('ack');
    assert.equal((await b.next('message')).from, upper);
    await a.close();
    await b.close();
  });

  test('?session= with the old connection open: 4001 "replaced", same token, no rooms joined; unknown token: a new session', T, async () => {
    const room = fresh('r');
    const name = fresh('sess');
    const a = await connect(srv, `/ws?name=${name}&room=${room}`);
    await a.next('joined');
    const w = await connect(srv, `/ws?room=${room}`);
    await w.next('joined');
    await a.next('presence');
    const a2 = await connect(srv, `/ws?session=${a.welcome.session}&name=ignored${seq}`);
    assert.deepEqual(a2.welcome, { type: 'welcome', name, session: a.welcome.session });
    assert.deepEqual(await a.closed, { code: 4001, reason: 'replaced' });
    assert.deepEqual(await w.next(), { type: 'presence', room, event: 'leave', name, count: 1 });
    await a2.quiet('the new connection joins no rooms');
    a2.send({ type: 'history', room, ref: 'h' });
    await a2.expectExactError('not_member', 'h');
    // closed, then reclaimed: the same name and token
    await a2.close();
    const a3 = await connect(srv, `/ws?session=${a.welcome.session}`);
    assert.deepEqual(a3.welcome, { type: 'welcome', name, session: a.welcome.session });
    await a3.close();
    const u = await connect(srv, `/ws?session=${'0'.repeat(32)}&name=${fresh('unk')}`);
    assert.notEqual(u.welcome.session, '0'.repeat(32));
    assert.match(u.welcome.session, /^[0-9a-f]{32}$/);
    await u.close();
    await w.close();
  });
  test('?session= of a closed connection whose name was taken meanwhile: name_taken, then welcome with a guest name and the same token', T, async () => {
    const name = fresh('took');
    const a = await connect(srv, `/ws?name=${name}`);
    await a.close();
    const b = await connect(srv, `/ws?name=${name.toUpperCase()}`);
    assert.equal(b.name, name.toUpperCase());
    const a2 = await Chat.open(srv.url(`/ws?session=${a.welcome.session}`));
    await a2.expectExactError('name_taken');
    const w = await a2.next('welcome');
    assert.match(w.name, /^guest-[0-9a-f]{4}$/);
    assert.equal(w.session, a.welcome.session);
    await a2.quiet();
    await a2.close();
    await b.close();
  });
});

describe('contract: rooms, presence, typing', () => {
  test('joined {type,room,members,last_id,epoch}; no own presence; others get presence join with count; re-join: no presence', T, async () => {
    const room = fresh('r');
    const a = await connect(srv);
    const b = await connect(srv);
    const ja = await joinRoom(a, room);
    assert.deepEqual(ja, { type: 'joined', room, members: [a.name], last_id: 0, epoch: ja.epoch });
    assert.equal(typeof ja.epoch, 'string');
    assert.ok(ja.epoch.length > 0);
    const jb = await joinRoom(b, room);
    assert.deepEqual(jb.members.slice().sort(), [a.name, b.name].sort());
    assert.deepEqual(await a.next(), { type: 'presence', room, event: 'join', name: b.name, count: 2 });
    await b.quiet('no presence of one\'s own join');
    const again = await joinRoom(b, room);
    assert.deepEqual(again.members.slice().sort(), [a.name, b.name].sort());
    await a.quiet('no presence on a re-join');
    b.send({ type: 'leave', room, ref: 'l' });
    assert.deepEqual(await b.next(), { type: 'left', room });
    assert.deepEqual(await a.next(), { type: 'presence', room, event: 'leave', name: b.name, count: 1 });
    b.send({ type: 'leave', room, ref: 'l2' });
    await b.expectExactError('not_member', 'l2');
    await b.close();
    await a.close();
  });

  test('room names: 1-64 of letters, digits, - _ . ; ASCII case-sensitive; an invalid room field is bad_room', T, async () => {
    const a = await connect(srv);
    const b = await connect(srv);
    const base = fresh('Case');
    await joinRoom(a, base);
    await joinRoom(b, base.toLowerCase());
    await a.quiet('Case and case are different rooms');
    const long = ('L' + base).padEnd(64, '.');
    assert.deepEqual((await joinRoom(a, long)).members, [a.name]);
    await joinRoom(a, `a-b_c.${seq}`);
    for (const room of ['', long + 'x', 'a b', 'a/b', 'café', 'a\u0000b', 'a+b', 'a%20b']) {
      for (const type of ['join', 'leave', 'typing', 'history']) {
        a.send({ type, room, ref: type });
        await a.expectExactError('bad_room', type);
      }
      a.send({ type: 'send', room, text: 'x', ref: 's' });
      await a.expectExactError('bad_room', 's');
    }
    for (const room of [null, 1, ['r']]) {
      a.send({ type: 'join', room, ref: 'j' });
      await a.expectExactError('bad_request', 'j');
    }
    await a.close();
    await b.close();
  });

  test('?room= invalid on /ws: welcome then bad_room, the connection stays open in no room', T, async () => {
    const c = await Chat.open(srv.url('/ws?room=bad%20room'));
    await c.next('welcome');
    await c.expectExactError('bad_room');
    await c.quiet();
    await c.close();
  });

  test('presence leave with count when a member closes; count is distinct members', T, async () => {
    const room = fresh('r');
    const cs = [];
    for (let i = 0; i < 3; i++) {
      const c = await connect(srv, `/ws?room=${room}`);
      const j = await c.next('joined');
      assert.equal(j.members.length, i + 1);
      for (const o of cs) assert.deepEqual(await o.next(), { type: 'presence', room, event: 'join', name: c.name, count: i + 1 });
      cs.push(c);
    }
    await joinRoom(cs[2], room);   // a re-join does not count twice
    cs[2].ws.terminate();
    for (const o of cs.slice(0, 2)) assert.deepEqual(await o.next(), { type: 'presence', room, event: 'leave', name: cs[2].name, count: 2 });
    await cs[0].close();
    assert.deepEqual(await cs[1].next(), { type: 'presence', room, event: 'leave', name: cs[0].name, count: 1 });
    await cs[1].close();
  });

  test('typing: {type,room,name} to the others only, once per member and room per 2 s, per room', T, async () => {
    const r1 = fresh('r'), r2 = fresh('r');
    const a = await connect(srv);
    const b = await connect(srv);
    const c = await connect(srv);
    for (const x of [a, b, c]) await joinRoom(x, r1);
    await joinRoom(a, r2);
    await joinRoom(b, r2);
    await a.sync(); await b.sync(); await c.sync();
    a.send({ type: 'typing', room: r1, ref: 't' });
    a.send({ type: 'typing', room: r1 });
    a.send({ type: 'typing', room: r2 });   // another room: its own interval
    b.send({ type: 'typing', room: r1 });   // another member: its own interval
    const want = { type: 'typing', room: r1, name: a.name };
    assert.deepEqual(await c.next(), want);
    assert.deepEqual(await c.next(), { type: 'typing', room: r1, name: b.name });
    const bs = await b.sync();
    assert.deepEqual(bs.slice().sort((x, y) => x.room.localeCompare(y.room)), [want, { type: 'typing', room: r2, name: a.name }].sort((x, y) => x.room.localeCompare(y.room)));
    assert.deepEqual(await a.sync(), [{ type: 'typing', room: r1, name: b.name }], 'nothing of one\'s own');
    await c.quiet('the second typing within 2 s is dropped, with no error');
    c.send({ type: 'typing', room: fresh('nowhere'), ref: 'nm' });
    await c.expectExactError('not_member', 'nm');
    await sleep(2100);
    a.send({ type: 'typing', room: r1 });
    assert.deepEqual(await c.next(), want);
    for (const x of [a, b, c]) await x.close();
  });
});

describe('contract: messages', () => {
  test('send: ack {type,ref,room,id} before the own copy; without ref the ack has none; ts in ms; ids per room', T, async () => {
    const r1 = fresh('r'), r2 = fresh('r');
    const a = await connect(srv);
    const b = await connect(srv);
    await joinRoom(a, r1); await joinRoom(b, r1); await a.next('presence');
    await joinRoom(a, r2);
    const t0 = Date.now();
    a.send({ type: 'send', room: r1, text: 'hi', ref: 'c1' });
    const ack = await a.next();
    assert.deepEqual(ack, { type: 'ack', ref: 'c1', room: r1, id: 1 });
    const own = await a.next();
    assert.deepEqual(Object.keys(own).sort(), MESSAGE_KEYS);
    assert.deepEqual({ ...own, ts: 0 }, { type: 'message', room: r1, id: 1, from: a.name, text: 'hi', ts: 0 });
    assert.ok(Number.isInteger(own.ts) && own.ts >= t0 - 5000 && own.ts <= Date.now() + 5000, `ts ${own.ts} is ms`);
    assert.deepEqual(await b.next(), own);
    a.send({ type: 'send', room: r1, text: 'two' });
    assert.deepEqual(await a.next(), { type: 'ack', room: r1, id: 2 });
    assert.equal((await a.next('message')).id, 2);
    a.send({ type: 'send', room: r2, text: 'other room', ref: 9 });
    assert.deepEqual(await a.next(), { type: 'ack', ref: 9, room: r2, id: 1 }, 'each room has its own ids');
    await a.next('message');
    await b.next('message');
    await b.quiet('not in r2');
    await a.close();
    await b.close();
  });

  test('text round-trips exactly (escapes, control characters, U+0000, non-BMP) live and in history', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    const texts = ['"quoted" \\ back/slash', 'tab\tnl\ncr\r', '\u0001\u001f\u007f\u0080\u009f', 'nul\u0000inside',
      '\u2028\u2029', '😀 日本 é', '</script><b>', ' '];
    const live = [];
    for (const text of texts) {
      a.send({ type: 'send', room, text, ref: 't' });
      const ack = await a.next();
      assert.equal(ack.type, 'ack', `${JSON.stringify(text)}: ${ack.raw}`);
      const m = await a.next('message');
      assert.equal(m.text, text);
      live.push(m);
    }
    a.send({ type: 'history', room });
    const h = await a.next('history');
    assert.deepEqual(h.messages, live, 'history messages are exactly the message objects');
    await a.close();
  });

  test('text is 1..max-text bytes: empty bad_request, longer too_large (not stored), the connection stays open', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    a.send({ type: 'send', room, text: '', ref: 'e' });
    await a.expectExactError('bad_request', 'e');
    a.send({ type: 'send', room, text: '€'.repeat(1365) + 'x', ref: 'ok' });   // 4,096 bytes
    assert.equal((await a.next('ack')).ref, 'ok');
    await a.next('message');
    a.send({ type: 'send', room, text: '€'.repeat(1365) + 'xy', ref: 'big' });   // 4,097 bytes
    await a.expectExactError('too_large', 'big');
    a.send({ type: 'dm', to: 'whoever', text: 'x'.repeat(4097), ref: 'dbig' });
    await a.expectExactError('too_large', 'dbig');
    a.send({ type: 'dm', to: 'whoever', text: '', ref: 'dempty' });
    await a.expectExactError('bad_request', 'dempty');
    await a.quiet();
    a.send({ type: 'history', room });
    assert.equal((await a.next('history')).messages.length, 1, 'the too_large message is not stored');
    await a.close();
  });

  test('ref: a string or a number, echoed as given (raw JSON number text kept); other types: bad_request without ref', T, async () => {
    const a = await connect(srv);
    const room = fresh('r');
    await joinRoom(a, room);
    const nums = ['0', '-1', '7', '9007199254740993', '9223372036854775807', '18446744073709551616', '-99999999999999999999',
      '0.1', '12.50', '1.0', '1e2', '1E+2', '-0', '1.5e300', '123456789012345678901234567890.5'];
    for (const n of nums) {
      a.ws.send(`{"type":"ping","ref":${n}}`);
      const p = await a.next('pong');
      assert.ok(p.raw.includes(`"ref":${n},`) || p.raw.includes(`"ref":${n}}`), `ref ${n} echoed as given: ${p.raw}`);
    }
    for (const s of ['', 'c1', 'ünï 😀', 'q"uote\\', 'nl\n\u0000', '\u2028']) {
      a.send({ type: 'ping', ref: s });
      const p = await a.next('pong');
      assert.deepEqual(Object.keys(p).sort(), ['ref', 'ts', 'type']);
      assert.equal(p.ref, s);
    }
    // the same echo in ack and error
    a.ws.send(`{"type":"send","room":"${room}","text":"x","ref":18446744073709551616}`);
    assert.match((await a.next('ack')).raw, /"ref":18446744073709551616[,}]/);
    await a.next('message');
    a.ws.send('{"type":"send","room":"nowhere-x","text":"x","ref":1.50}');
    assert.match((await a.next('error')).raw, /"ref":1\.50[,}]/);
    // null is the same as no ref
    a.send({ type: 'ping', ref: null });
    assert.deepEqual(Object.keys(await a.next('pong')).sort(), ['ts', 'type']);
    a.send({ type: 'send', room, text: 'x', ref: null });
    assert.deepEqual(await a.next('ack'), { type: 'ack', room, id: 2 });
    await a.next('message');
    for (const bad of [true, false, {}, { a: 1 }, [], ['x']]) {
      a.send({ type: 'ping', ref: bad });
      await a.expectExactError('bad_request');
      a.send({ type: 'send', room, text: 'x', ref: bad });
      await a.expectExactError('bad_request');
      a.send({ type: 'nope', ref: bad });
      await a.expectExactError('unknown_type');
    }
    await a.quiet();
    a.send({ type: 'history', room });
    assert.equal((await a.next('history')).messages.length, 2, 'a send with a bad ref is not stored');
    await a.close();
  });

  test('errors in order: bad_request (not a typed object) -> unknown_type -> shape -> bad_room/bad_name/too_large -> not_member', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    const big = 'x'.repeat(5000);
    const cases = [
      ['not json', 'bad_request'],
      ['', 'bad_request'],
      ['[{"type":"ping"}]', 'bad_request'],
      ['"ping"', 'bad_request'],
      ['null', 'bad_request'],
      ['42', 'bad_request'],
      ['{"type":null,"ref":"n"}', 'bad_request'],
      ['{"type":["ping"],"ref":"n"}', 'bad_request'],
      ['{"TYPE":"ping"}', 'bad_request'],
      ['{"type":"ping"', 'bad_request'],
      ['{"type":"ping"} x', 'bad_request'],
      [{ type: 'PING', ref: 'u' }, 'unknown_type', 'u'],
      [{ type: 'ping ', ref: 'u' }, 'unknown_type', 'u'],
      [{ type: '', ref: 'u' }, 'unknown_type', 'u'],
      [{ type: 'welcome', ref: 'u' }, 'unknown_type', 'u'],
      [{ type: 'nope', room: 'bad room', since: -1, ref: 'u' }, 'unknown_type', 'u'],
      [{ type: 'send', room: 'bad room', ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'send', text: big, ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'send', room: 'bad room', text: '', ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'join', room: 'bad room', since: -1, ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'join', room: 'bad room', epoch: 5, ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'history', room: 'bad room', limit: 0, ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'dm', text: 'x', ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'dm', to: 'x', ref: 'sh' }, 'bad_request', 'sh'],
      [{ type: 'send', room: 'bad room', text: big, ref: 'f' }, 'bad_room', 'f'],
      [{ type: 'send', room: 'not-joined-room', text: big, ref: 'f' }, 'too_large', 'f'],
      [{ type: 'leave', room: 'bad room', ref: 'f' }, 'bad_room', 'f'],
      [{ type: 'hello', name: 'guest-0000', ref: 'f' }, 'bad_name', 'f'],
      [{ type: 'send', room: 'not-joined-room', text: 'x', ref: 'm' }, 'not_member', 'm'],
      [{ type: 'history', room: 'not-joined-room', before: 5, limit: 5000, ref: 'm' }, 'not_member', 'm'],
    ];
    for (const [msg, code, ref] of cases) {
      a.send(msg);
      const e = await a.next();
      assert.equal(e.type, 'error', `${JSON.stringify(msg).slice(0, 80)} -> ${e.raw}`);
      assert.equal(e.code, code, `${JSON.stringify(msg).slice(0, 80)} -> ${e.raw}`);
      if (ref === undefined) assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'type'], e.raw);
      else assert.deepEqual(e.ref, ref, e.raw);
    }
    await a.quiet('one error per request, the connection stays open');
    await a.close();
  });

  test('JSON details: extra fields ignored; duplicate keys bad_request; very deep JSON bad_request; the connection stays open', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    a.send({ type: 'ping', ref: 'x', extra: { deep: [1, 2] }, room: 'ignored' });
    assert.equal((await a.next('pong')).ref, 'x');
    a.ws.send(`{"type":"send","room":"${room}","text":"a","text":"b","ref":"d"}`);
    await a.expectExactError('bad_request');
    a.ws.send('{"type":"ping","type":"ping"}');
    await a.expectExactError('bad_request');
    a.ws.send(`{"type":"ping","x":{"k":1,"k":2}}`);
    await a.expectExactError('bad_request');
    a.ws.send(`{"type":"ping","ref":"${'['.repeat(10)}","x":${'['.repeat(5000)}${']'.repeat(5000)}}`);
    await a.expectExactError('bad_request');
    a.ws.send('['.repeat(20000) + ']'.repeat(20000));
    await a.expectExactError('bad_request');
    a.ws.send('{"type":"pi\\u006eg","r\\u0065f":"esc"}');
    assert.equal((await a.next('pong')).ref, 'esc', 'escaped keys and values are the same keys and values');
    a.ws.send(' \n{"type":"ping","ref":"ws"}\t ');
    assert.equal((await a.next('pong')).ref, 'ws', 'whitespace around the object is JSON');
    await a.quiet();
    a.send({ type: 'history', room });
    assert.deepEqual((await a.next('history')).messages, [], 'nothing was stored');
    await a.close();
  });

  test('dm: {type,from,to,text,ts} to the recipient only, ack {type,ref} (no id); self bad_request; unknown no_such_user', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?name=${fresh('dA')}&room=${room}`);
    await a.next('joined');
    const b = await connect(srv, `/ws?name=${fresh('dB')}&room=${room}`);
    await b.next('joined');
    await a.next('presence');
    const c = await connect(srv, `/ws?room=${room}`);
    await c.next('joined');
    await a.next('presence'); await b.next('presence');
    a.send({ type: 'dm', to: ` ${b.name.toUpperCase()} `, text: 'psst "x"', ref: 'c2' });
    assert.deepEqual(await a.next(), { type: 'ack', ref: 'c2' });
    const dm = await b.next();
    assert.deepEqual(Object.keys(dm).sort(), ['from', 'text', 'to', 'ts', 'type']);
    assert.deepEqual({ ...dm, ts: 0 }, { type: 'dm', from: a.name, to: b.name, text: 'psst "x"', ts: 0 });
    assert.ok(Number.isInteger(dm.ts) && Math.abs(dm.ts - Date.now()) < 60000);
    a.send({ type: 'dm', to: b.name, text: 'no ref' });
    assert.deepEqual(await a.next(), { type: 'ack' });
    await b.next('dm');
    await c.quiet('a dm goes to the recipient only');
    await a.quiet('no copy to the sender');
    a.send({ type: 'dm', to: a.name.toLowerCase(), text: 'me', ref: 's' });
    await a.expectExactError('bad_request', 's');
    a.send({ type: 'dm', to: 'nobody-at-all', text: 'x', ref: 12 });
    await a.expectExactError('no_such_user', 12);
    a.send({ type: 'dm', to: '', text: 'x', ref: 'e' });
    await a.expectExactError('no_such_user', 'e');
    a.send({ type: 'dm', to: c.name, text: 'to a guest' });
    await a.next('ack');
    assert.equal((await c.next('dm')).to, c.name);
    for (const x of [a, b, c]) await x.close();
  });

  test('--rate-limit N: burst of 2N, then rate_limited with ref and not stored; plain text on /ws/{room} too; dm and ping are not limited', T, async () => {
    const s = await startServer({ args: ['--rate-limit', '3'] });
    try {
      const room = 'rl';
      const a = await connect(s, `/ws/${room}`);
      await a.next('joined');
      for (let i = 0; i < 8; i++) a.send({ type: 'send', room, text: `x${i}`, ref: i });
      const acks = [], limited = [];
      while (acks.length + limited.length < 8) {
        const m = await a.next();
        if (m.type === 'ack') acks.push(m);
        else if (m.type === 'error') { assert.deepEqual(Object.keys(m).sort(), ['code', 'message', 'ref', 'type']); assert.equal(m.code, 'rate_limited'); limited.push(m.ref); }
      }
      assert.deepEqual(acks.map((m) => m.ref), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(acks.map((m) => m.id), [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(limited, [6, 7]);
      await a.sync();
      a.send('plain text');
      await a.expectExactError('rate_limited');
      const b = await connect(s, '/ws');
      for (let i = 0; i < 10; i++) a.send({ type: 'dm', to: b.name, text: 'd', ref: `d${i}` });
      for (let i = 0; i < 10; i++) assert.equal((await a.until((m) => m.type === 'ack' || m.type === 'error')).type, 'ack');
      await a.sync();
      a.send({ type: 'history', room });
      assert.deepEqual((await a.next('history')).messages.map((m) => m.id), [1, 2, 3, 4, 5, 6]);
      await sleep(1100);
      a.send({ type: 'send', room, text: 'later', ref: 'l' });
      assert.deepEqual(await a.until((m) => m.ref === 'l'), { type: 'ack', ref: 'l', room, id: 7 }, 'a limited message takes no id');
      await a.close();
      await b.close();
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
    }
  });

  test('a WebSocket message over 64 KiB closes with 1009, a binary frame with 1003, on /ws and /ws/{room}', T, async () => {
    for (const path of ['/ws', `/ws/${fresh('r')}`]) {
      const a = await connect(srv, path);
      a.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
      assert.equal((await a.closed).code, 1003, path);
      const b = await connect(srv, path);
      b.send(JSON.stringify({ type: 'ping', ref: 'x'.repeat(64 * 1024) }));
      assert.equal((await b.closed).code, 1009, path);
    }
  });
});

describe('contract: history and resume', () => {
  test('history: empty room; before exclusive; limit default 50, clamp 200; ascending; more exact', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    const j = await a.next('joined');
    assert.equal(j.last_id, 0);
    a.send({ type: 'history', room, ref: 'no-echo' });
    assert.deepEqual(await a.next(), { type: 'history', room, messages: [], more: false });
    const acks = await sendMany(a, room, 210);
    const ids = acks.map((m) => m.id);
    assert.deepEqual(ids, Array.from({ length: 210 }, (_, i) => i + 1));
    const page = async (q) => { a.send({ type: 'history', room, ...q }); const h = await a.next('history'); assert.deepEqual(Object.keys(h).sort(), ['messages', 'more', 'room', 'type']); return h; };
    let h = await page({});
    assert.deepEqual(h.messages.map((m) => m.id), ids.slice(-50));
    assert.equal(h.more, true);
    h = await page({ limit: 500 });
    assert.deepEqual(h.messages.map((m) => m.id), ids.slice(-200));
    assert.equal(h.more, true);
    h = await page({ before: 11, limit: 10 });
    assert.deepEqual(h.messages.map((m) => m.id), ids.slice(0, 10), 'before is exclusive');
    assert.equal(h.more, false, 'exactly limit messages and nothing older: more is false');
    h = await page({ before: 12, limit: 10 });
    assert.equal(h.more, true);
    h = await page({ before: 1 });
    assert.deepEqual(h, { type: 'history', room, messages: [], more: false });
    h = await page({ before: 0 });
    assert.deepEqual(h.messages, []);
    assert.equal(h.more, false);
    h = await page({ before: 100000, limit: 3 });
    assert.deepEqual(h.messages.map((m) => m.id), [208, 209, 210], 'before beyond last_id: from the newest');
    h = await page({ before: null, limit: null });
    assert.equal(h.messages.length, 50, 'null is absent');
    h = await page({ limit: 1 });
    assert.deepEqual(h.messages.map((m) => m.text), ['m209']);
    for (const q of [{ limit: 0 }, { limit: -1 }, { limit: 1.5 }, { limit: '5' }, { before: -1 }, { before: 2.5 }, { before: '5' }, { limit: 10.0 + 0.5 }]) {
      a.send({ type: 'history', room, ref: 'bad', ...q });
      await a.expectExactError('bad_request', 'bad');
    }
    a.ws.send(`{"type":"history","room":"${room}","limit":5.0,"ref":"f"}`);
    await a.expectExactError('bad_request', 'f');
    await a.close();
  });

  test('epoch is the same for every room and connection; last_id of an empty room is 0', T, async () => {
    const a = await connect(srv);
    const b = await connect(srv);
    const j1 = await joinRoom(a, fresh('r'));
    const j2 = await joinRoom(b, fresh('r'));
    assert.equal(j1.last_id, 0);
    assert.equal(j2.last_id, 0);
    assert.equal(j1.epoch, j2.epoch);
    await a.close();
    await b.close();
  });

  test('since (join and URL): recovered only with since; since = last_id, > last_id, epoch mismatch, bad since', T, async () => {
    const room = fresh('r');
    const a = await connect(srv, `/ws?room=${room}`);
    const j0 = await a.next('joined');
    const acks = await sendMany(a, room, 60, 'q');
    const last = acks[59].id;
    const replayOf = async (c) => (await c.sync()).map((m) => { assert.equal(m.type, 'message', m.raw); return m.text; });
    const latest50 = Array.from({ length: 50 }, (_, i) => `q${i + 10}`);
    const b = await connect(srv);
    const cases = [
      [{ since: last }, true, []],
      [{ since: last - 3, epoch: j0.epoch }, true, ['q57', 'q58', 'q59']],
      [{ since: last - 3 }, true, ['q57', 'q58', 'q59']],
      [{ since: 0 }, true, acks.map((m, i) => `q${i}`)],
      [{ since: last + 1 }, false, latest50],
      [{ since: last - 3, epoch: 'not-the-epoch' }, false, latest50],
      [{ since: last - 3, epoch: '' }, false, latest50],
      [{ since: null }, undefined, latest50],
      [{ epoch: j0.epoch }, undefined, latest50],
      [{ since: '18446744073709551616' }, 'raw', latest50],
    ];
    for (const [q, rec, texts] of cases) {
      if (rec === 'raw') b.ws.send(`{"type":"join","room":"${room}","since":18446744073709551616}`);
      else b.send({ type: 'join', room, ...q });
      const j = await b.next('joined');
      if (rec === undefined) assert.deepEqual(Object.keys(j).sort(), JOINED_KEYS, JSON.stringify(q));
      else {
        assert.deepEqual(Object.keys(j).sort(), [...JOINED_KEYS, 'recovered'].sort(), JSON.stringify(q));
        assert.equal(j.recovered, rec === 'raw' ? false : rec, JSON.stringify(q));
      }
      assert.equal(j.last_id, last);
      assert.deepEqual(await replayOf(b), texts, JSON.stringify(q));
    }
    for (const since of [-1, 1.5, '3', true, [1], {}]) {
      b.send({ type: 'join', room: fresh('r'), since, ref: 'bs' });
      await b.expectExactError('bad_request', 'bs');
    }
    b.ws.send(`{"type":"join","room":"${room}","since":1.0,"ref":"f"}`);
    await b.expectExactError('bad_request', 'f');
    await b.quiet('a join with a bad since is not performed');
    // the same in the URL
    const urlCases = [
      [`since=${last}&epoch=${j0.epoch}`, true, []],
      [`since=${last - 2}`, true, ['q58', 'q59']],
      [`since=${last + 5}`, false, latest50],
      [`since=${last - 2}&epoch=other`, false, latest50],
      ['since=18446744073709551616', false, latest50],
      [`epoch=${j0.epoch}`, undefined, latest50],
    ];
    for (const [q, rec, texts] of urlCases) {
      const c = await Chat.open(srv.url(`/ws?room=${room}&${q}`));
      await c.next('welcome');
      const j = await c.next('joined');
      assert.equal(j.recovered, rec, q);
      if (rec === undefined) assert.equal('recovered' in j, false, q);
      assert.deepEqual(await replayOf(c), texts, q);
      await c.close();
    }
    // an invalid ?since= is a join with an invalid since: bad_request and
    // the room is NOT joined (a client that asked to resume gets no plain join)
    await sleep(100);   // presence goes out lazily (up to 15 ms)
    await a.sync();
    for (const bad of ['-1', '1.5', 'abc', '1e3', '+1', '%201', '', '1.0', 'true']) {
      const c = await Chat.open(srv.url(`/ws?room=${room}&since=${bad}`));
      await c.next('welcome');
      await c.expectExactError('bad_request');
      await c.quiet(`?since=${bad}: not joined, no replay`);
      c.send({ type: 'send', room, text: 'x', ref: 'nm' });
      await c.expectExactError('not_member', 'nm');
      await c.close();
    }
    await sleep(100);
    await a.quiet('no presence for the refused joins');
    await a.close();
    await b.close();
  });

  test('URL parameters follow the join/hello field rules: bad since before bad room, since/epoch without room, repeats', T, async () => {
    const room = fresh('u');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    // bad since and bad room: bad_request first (as a join with both), nothing joined
    const c1 = await Chat.open(srv.url('/ws?room=bad%20room&since=x'));
    await c1.next('welcome');
    await c1.expectExactError('bad_request');
    await c1.quiet('only bad_request');
    await c1.close();
    // good since, bad room: bad_room, not joined
    const c2 = await Chat.open(srv.url('/ws?room=bad%20room&since=3'));
    await c2.next('welcome');
    await c2.expectExactError('bad_room');
    await c2.quiet('only bad_room');
    await c2.close();
    // since or epoch without a room: bad_request (nothing to resume), the connection works
    for (const q of ['since=3', 'epoch=abc', 'since=3&epoch=abc', 'since=']) {
      const c = await Chat.open(srv.url(`/ws?${q}`));
      await c.next('welcome');
      await c.expectExactError('bad_request');
      await c.quiet(q);
      c.send({ type: 'join', room });
      assert.equal((await c.next('joined')).room, room, q);
      await c.close();
    }
    // /ws/{room} with a bad ?since=: not joined either; plain text then has no room
    const p = await Chat.open(srv.url(`/ws/${room}?since=-5`));
    await p.next('welcome');
    await p.expectExactError('bad_request');
    await p.quiet('/ws/{room}?since=-5: not joined');
    p.send('plain');
    await p.expectExactError('not_member');
    await p.close();
    // an empty ?epoch= is the empty epoch string of a join: mismatch, recovered false
    const e = await Chat.open(srv.url(`/ws?room=${room}&since=0&epoch=`));
    await e.next('welcome');
    assert.equal((await e.next('joined')).recovered, false);
    await e.close();
    // a parameter given twice is ambiguous (like a duplicate JSON key): HTTP 400 before the upgrade
    const up = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
    for (const q of ['since=1&since=2', 'name=a&name=b', `room=${room}&room=x`, 'session=a&session=b', 'epoch=a&epoch=a', 'name=%zz']) {
      const res = await request(srv.port, `GET /ws?${q} HTTP/1.1\r\nHost: x\r\n${up}\r\n`);
      assert.equal(res.status, 400, q);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      assert.match(res.text, /^[^\r\n]+\n?$/);
    }
    // an unknown ?session= is a new session: welcome with a new token, ?name= applies
    const nm = fresh('n');
    const s = await Chat.open(srv.url(`/ws?session=${'0'.repeat(32)}&name=${nm}`));
    const w = await s.next('welcome');
    assert.equal(w.name, nm);
    assert.notEqual(w.session, '0'.repeat(32));
    await s.quiet('no error for an unknown session');
    await s.close();
    await a.close();
  });

  test('since: at most 1,000 messages replayed (recovered true); a larger gap is recovered false + latest 50', T, async () => {
    const room = fresh('big');
    const a = await connect(srv, `/ws?room=${room}`);
    await a.next('joined');
    const acks = await sendMany(a, room, 1001, 'g');
    assert.equal(acks[1000].id, 1001);
    const b = await connect(srv);
    b.send({ type: 'join', room, since: 1 });
    let j = await b.next('joined');
    assert.equal(j.recovered, true);
    let replay = await b.sync();
    assert.equal(replay.length, 1000);
    assert.deepEqual(replay.map((m) => m.id), Array.from({ length: 1000 }, (_, i) => i + 2));
    b.send({ type: 'join', room, since: 0 });
    j = await b.next('joined');
    assert.equal(j.recovered, false);
    replay = await b.sync();
    assert.deepEqual(replay.map((m) => m.id), Array.from({ length: 50 }, (_, i) => i + 952));
    await a.close();
    await b.close();
  });
});

describe('contract: /ws/{room}', () => {
  test('a JSON object with a string type is protocol; any other text is a message text', T, async () => {
    const room = fresh('plain');
    const p = await Chat.open(srv.url(`/ws/${room}?name=${fresh('pl')}`));
    const w0 = await p.next('welcome');
    await p.next('joined');
    const texts = ['hello', '[1,2]', '[{"type":"ping"}]', '42', '"ping"', 'null', 'true', '{}', '{"not":"typed"}',
      '{"type":5}', '{"type":null}', '{"type":{"a":1}}', '{"type":"ping"', '{broken', ' ', '\u0000'];
    for (const text of texts) {
      p.send(text);
      const ack = await p.next();
      assert.equal(ack.type, 'ack', `${JSON.stringify(text)} -> ${ack.raw}`);
      assert.deepEqual(Object.keys(ack).sort(), ['id', 'room', 'type'], 'plain text is acked without ref');
      const m = await p.next('message');
      assert.deepEqual({ ...m, ts: 0 }, { type: 'message', room, id: ack.id, from: w0.name, text, ts: 0 });
    }
    p.send('{"type":"shout","ref":"u"}');
    await p.expectExactError('unknown_type', 'u');
    p.send(' {"type":"ping","ref":"sp"} ');
    assert.equal((await p.next('pong')).ref, 'sp');
    p.send('{"type":"send","text":"x","ref":"nr"}');
    await p.expectExactError('bad_request', 'nr');
    p.send('{"type":"ping","type":"ping"}');
    await p.expectExactError('bad_request');
    p.send('');
    await p.expectExactError('bad_request');
    p.send('x'.repeat(4097));
    await p.expectExactError('too_large');
    await p.quiet();
    // after leaving {room}, plain text has no room: not_member
    p.send({ type: 'leave', room });
    assert.deepEqual(await p.next(), { type: 'left', room });
    p.send('anyone?');
    await p.expectExactError('not_member');
    await p.close();
  });

  test('an invalid /ws/{room} is HTTP 400 text/plain (one line) before the upgrade', T, async () => {
    const up = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
    for (const bad of ['bad%20room', 'x'.repeat(65), 'caf%C3%A9', 'a/b', '', 'a%2Fb', '%', 'a+b']) {
      const res = await request(srv.port, `GET /ws/${bad} HTTP/1.1\r\nHost: x\r\n${up}\r\n`);
      assert.equal(res.status, 400, `/ws/${bad}`);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      assert.match(res.text, /^[^\r\n]+\n?$/);
    }
    const ok = await Chat.open(srv.url(`/ws/${'a'.repeat(62)}.-_`.slice(0, 68)));
    await ok.next('welcome');
    await ok.next('joined');
    await ok.close();
    const dec = await Chat.open(srv.url('/ws/a%2Db'));
    await dec.next('welcome');
    assert.equal((await dec.next('joined')).room, 'a-b', 'the path is percent-decoded');
    await dec.close();
  });
});

describe('contract: bounds on one connection', () => {
  test('a connection may be in at most 100 rooms: the 101st join is too_many_rooms with its ref', T, async () => {
    const c = await connect(srv);
    const base = fresh('many');
    for (let i = 0; i < 100; i++) await joinRoom(c, `${base}-${i}`);
    c.send({ type: 'join', room: `${base}-100`, ref: 'j101' });
    await c.expectExactError('too_many_rooms', 'j101');
    await joinRoom(c, `${base}-7`);                  // a room it is in: joined again
    c.send({ type: 'leave', room: `${base}-0` });
    assert.equal((await c.until((m) => m.type === 'left')).room, `${base}-0`);
    await joinRoom(c, `${base}-100`);                // room for one more
    c.close();
  });
});
