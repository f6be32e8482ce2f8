// Room events held by the room (chat/server.c "held room events"): a
// presence or typing event is kept once by its room and queued to a member
// only when the member is written (the lazy round, or its next reply or
// message). What must hold: every member gets every event of its rooms
// exactly once, in the order they happened — across two rooms, past the
// ring of 128 events a room keeps, around the excluded sender of a typing
// event, before a message, and up to (not after) a leave. The ping/pong
// round trip (Chat.sync) writes the member, so it shows what it was owed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 60000 };

async function connect(path) {
  const c = await Chat.open(srv.url(path));
  c.welcome = await c.next('welcome');
  return c;
}

async function join(c, room) {
  c.send({ type: 'join', room });
  const j = await c.until((m) => m.type === 'joined' && m.room === room);
  return j;
}

// What c got of kind presence/typing/message since the last call, as text.
function events(list) {
  return list.filter((m) => m.type === 'presence' || m.type === 'typing' || m.type === 'message')
    .map((m) => (m.type === 'presence' ? `${m.room}:${m.event}:${m.name}:${m.count}`
      : m.type === 'typing' ? `${m.room}:typing:${m.name}` : `${m.room}:message:${m.from}:${m.text}`));
}

let srv;
before(async () => { srv = await startServer(); });
after(async () => { assert.equal(await srv.stop(), 0, srv.log.slice(-3000)); });

test('a member of two rooms gets their presence once each, in the order it happened', T, async () => {
  const x = await connect('/ws?name=x2&room=ha');
  await x.next('joined');
  await join(x, 'hb');
  const y = await connect('/ws?name=y2');
  await join(y, 'ha');
  await join(y, 'hb');
  y.send({ type: 'leave', room: 'ha' });
  await y.until((m) => m.type === 'left');
  await join(y, 'ha');
  await y.sync();
  const got = events(await x.sync());
  assert.deepEqual(got, ['ha:join:y2:2', 'hb:join:y2:2', 'ha:leave:y2:1', 'ha:join:y2:2']);
  await y.close();
  await x.close();
});

test('more events than the room keeps (128): all of them, in order, none twice', T, async () => {
  const x = await connect('/ws?name=x3&room=hc');
  await x.next('joined');
  const others = [];
  for (let i = 0; i < 150; i++) {
    const o = await connect(`/ws?name=o3-${i}&room=hc`);
    others.push(o);
  }
  for (const o of others) await o.next('joined');
  const want = others.map((_, i) => `hc:join:o3-${i}:${i + 2}`);
  let got = [];
  for (let t = 0; t < 50 && got.length < want.length; t++) got = got.concat(events(await x.sync()));
  assert.deepEqual(got, want);
  // The first joiner saw everyone after it, too.
  const first = events(await others[0].sync());
  assert.deepEqual(first, want.slice(1));
  for (const o of others) o.ws.terminate();
  await x.close();
});

test('the typing member does not get its own typing, and gets what came before and after it', T, async () => {
  const x = await connect('/ws?name=x4&room=hd');
  await x.next('joined');
  const y = await connect('/ws?name=y4&room=hd');
  await y.next('joined');
  await x.until((m) => m.type === 'presence' && m.name === 'y4');
  const z = await connect('/ws?name=z4&room=hd');   // x and y are owed z4's join
  await z.next('joined');
  x.send({ type: 'typing', room: 'hd' });
  // x's pong: the server has the typing before w connects (two connections
  // have no order between them; the server may take w's join first).
  const xGot = events(await x.sync());
  const w = await connect('/ws?name=w4&room=hd');
  await w.next('joined');
  await z.sync();
  xGot.push(...events(await x.sync()));
  assert.deepEqual(xGot, ['hd:join:z4:3', 'hd:join:w4:4']);
  assert.deepEqual(events(await y.sync()), ['hd:join:z4:3', 'hd:typing:x4', 'hd:join:w4:4']);
  for (const c of [w, z, y, x]) await c.close();
});

test('held presence comes before a message sent after it, and nothing of a room after its left', T, async () => {
  const x = await connect('/ws?name=x5&room=he');
  await x.next('joined');
  const y = await connect('/ws?name=y5&room=he');
  await y.next('joined');
  y.send({ type: 'send', room: 'he', text: 'after my join', ref: 1 });
  await y.until((m) => m.type === 'ack');
  const v = await connect('/ws?name=v5&room=he');   // x is owed v5's join
  await v.next('joined');
  x.send({ type: 'leave', room: 'he' });
  const before = [];
  for (;;) {
    const m = await x.next();
    if (m.type === 'left') break;
    before.push(m);
  }
  assert.deepEqual(events(before), ['he:join:y5:2', 'he:message:y5:after my join', 'he:join:v5:3']);
  const u = await connect('/ws?name=u5&room=he');
  await u.next('joined');
  await v.sync();
  assert.deepEqual(events(await x.sync()), [], 'nothing of a room it left');
  for (const c of [u, v, y, x]) await c.close();
});

test('joined lists exactly the members, during a storm, after a leave and after a rename', T, async () => {
  const x = await connect('/ws?name=x6&room=hf');
  await x.next('joined');
  const names = ['x6'];
  const cs = [x];
  // A storm (events held): every joiner's list is everyone so far, in join order.
  for (let i = 0; i < 40; i++) {
    const o = await connect(`/ws?name=o6-${i}&room=hf`);
    names.push(`o6-${i}`);
    const j = await o.next('joined');
    assert.deepEqual(j.members, names, `o6-${i}'s joined`);
    cs.push(o);
  }
  // A leave moves the last member into the leaver's place; the next list has neither gap nor leaver.
  // (Right after it, while its presence is still held: the lazy round waits at least 15 ms.)
  cs[5].send({ type: 'leave', room: 'hf' });
  await cs[5].until((m) => m.type === 'left');
  const after = await connect('/ws?name=p6&room=hf');
  const j1 = await after.next('joined');
  const want = names.filter((n) => n !== 'o6-4').concat('p6');
  assert.deepEqual([...j1.members].sort(), [...want].sort());
  assert.equal(j1.members.length, want.length);
  // A rename: the next list has the new name, not the old one.
  cs[7].send({ type: 'hello', name: 'renamed6' });
  await cs[7].until((m) => m.type === 'welcome');
  const last = await connect('/ws?name=q6&room=hf');
  const j2 = await last.next('joined');
  const want2 = want.map((n) => (n === 'o6-6' ? 'renamed6' : n)).concat('q6');
  assert.deepEqual([...j2.members].sort(), [...want2].sort());
  assert.equal(j2.members.length, want2.length);
  for (const c of [last, after, ...cs]) c.ws.terminate();
});

test('a server stopped while its rooms hold events exits cleanly (nothing leaks)', T, async () => {
  const own = await startServer();
  const open = async (name) => {
    const c = await Chat.open(own.url(`/ws?name=${name}&room=hg`));
    await c.until((m) => m.type === 'joined');
    return c;
  };
  const a = await open('a7');
  const b = await open('b7');
  const c = await open('c7');   // a and b are owed c7's join for up to the lazy wait
  assert.equal(await own.stop(), 0, own.log.slice(-3000));
  for (const x of [a, b, c]) x.ws.terminate();
});

test('members that drop their connections while owed events are not taken for slow consumers', T, async () => {
  // p is owed q's arrival (held by the room until its next write); both
  // connections then vanish without a closing handshake. Detaching p must
  // forget what it was owed, not try to queue it on a closed connection
  // (which is what a slow consumer's refusal looks like).
  const p = await connect('/ws/gone?name=gp');
  await p.next('joined');
  const q = await connect('/ws/gone?name=gq');
  await q.next('joined');
  q.ws.terminate();
  p.ws.terminate();
  const probe = await connect('/ws/gone?name=gr');
  await probe.next('joined');
  await new Promise((r) => setTimeout(r, 300));
  probe.ws.close();
  assert.ok(!/slow consumer/.test(srv.log), srv.log.split('\n').filter((l) => /slow consumer/.test(l)).join('\n'));
});
