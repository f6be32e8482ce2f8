// HTTP sessions on a cluster: a real redis-server and three wschat nodes
// with --redis. A session made on one node is served by any node — polls,
// long polls and sends land anywhere (no sticky sessions) and behave as on
// one node: dense seq, the same events again for the same ack, every
// message once and in order, a held long poll woken by an event made on
// any node, takeover, TTL expiry with one presence leave, the home node
// killed, Redis stopped for a few seconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { startRedis } from '../lib/redis.mjs';
import { Chat } from '../lib/chat.mjs';
import { healthy, joinRoom as join } from '../lib/cluster.mjs';
import { HttpChat } from '../lib/httpchat.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let rd;
const nodes = [];
const extra = [];

async function startNode(args = []) {
  const n = await startServer({ args: ['--redis', rd.url, '--redis-timeout', '1000', ...args] });
  return n;
}

// An HTTP chat client whose every request goes to the next node in turn.
function roundRobin(h, list) {
  let i = 0;
  h.served = [];
  h.url = (p, params = {}) => {
    const n = list[i++ % list.length];
    h.served.push(n.port);
    const q = new URLSearchParams({ session: h.token, ...params });
    return `${n.http(p)}?${q}`;
  };
  return h;
}

const get = async (node, p) => {
  const r = await fetch(node.http(p));
  const text = await r.text();
  return { status: r.status, text, body: (r.headers.get('content-type') || '').startsWith('application/json') ? JSON.parse(text) : text };
};
const post = async (node, p, body) => {
  const r = await fetch(node.http(p), { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, text, body: (r.headers.get('content-type') || '').startsWith('application/json') ? JSON.parse(text) : text };
};

// Long-polls the session on `node` until a presence event came; the last seq.
async function pollUntilPresence(node, token) {
  let ack = 0;
  for (let seen = false; !seen;) {
    const r = await get(node, `/http/longpoll?session=${token}&ack=${ack}&timeout=5`);
    for (const e of r.body) { ack = e.seq; if (e.type === 'presence') seen = true; }
  }
  return ack;
}

before(async () => {
  rd = await startRedis();
  for (let i = 0; i < 3; i++) nodes.push(await startNode());
});

after(async () => {
  for (const n of [...nodes, ...extra]) await n.kill9();
  await rd.stop();
});

test('a session made on node 1, polled and long-polled on every node in turn: each message once, in order, dense seq', async () => {
  const room = 'hrr';
  const h = roundRobin(await HttpChat.open(nodes[0], { name: 'rover' }), nodes);
  assert.equal(h.welcome.name, 'rover');
  const j = await h.send({ type: 'join', room });   // lands on node 1 (home) or another: both work
  assert.equal(j.status, 200, j.text);
  assert.equal(j.body.type, 'joined');
  const a = await join(nodes[0], room);
  const b = await join(nodes[1], room);
  h.startLongPoll(10);
  const N = 30;
  for (let i = 0; i < N; i++) {
    a.send({ type: 'send', room, text: `a${i}`, ref: i });
    b.send({ type: 'send', room, text: `b${i}`, ref: i });
    if (i % 5 === 4) await sleep(20);
  }
  for (const c of [a, b]) for (let i = 0; i < N; i++) await c.until((m) => m.type === 'ack' && m.ref === i);
  // sends through other nodes (forwarded to the home), answered with their ack
  const acks = [];
  for (let i = 0; i < 6; i++) {
    const r = await h.send({ type: 'send', room, text: `h${i}`, ref: `h${i}` });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.type, 'ack', r.text);
    assert.equal(r.body.ref, `h${i}`);
    acks.push(r.body.id);
  }
  const total = 2 * N + 6;
  const msgs = () => h.all.filter((e) => e.type === 'message' && e.room === room);
  const deadline = Date.now() + 30000;
  while (msgs().length < total && Date.now() < deadline) await h.next(undefined, 30000).catch(() => {});
  await h.stopLongPoll();
  const ids = msgs().map((m) => m.id);
  assert.deepEqual(ids, Array.from({ length: total }, (_, k) => k + 1), 'every message once, in id order');
  const seqs = h.all.map((e) => e.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, k) => k + 1), 'seq dense from 1');
  for (const [k, id] of acks.entries()) assert.equal(msgs().find((m) => m.id === id).text, `h${k}`, 'ack id names the message');
  assert.ok(new Set(h.served).size === 3, 'requests landed on all three nodes');
  // The WebSocket members see the HTTP session's messages with the same ids.
  await a.until((m) => m.type === 'message' && m.id === total);
  assert.deepEqual(a.all.filter((m) => m.type === 'message').map((m) => m.id), ids);
  await a.close();
  await b.close();
});

test('the same ack again on another node gets the same events; an ack beyond the last is 400; a wrong token 404', async () => {
  const room = 'hrepeat';
  const h = await HttpChat.open(nodes[1], {});
  await post(nodes[1], `/http/send?session=${h.token}`, { type: 'join', room });
  const w = await join(nodes[2], room);
  for (let i = 0; i < 5; i++) {
    w.send({ type: 'send', room, text: `r${i}`, ref: i });
    await w.until((m) => m.type === 'ack' && m.ref === i);
  }
  let first;
  for (const deadline = Date.now() + 10000; ;) {
    first = await get(nodes[0], `/http/poll?session=${h.token}&ack=1`);
    assert.equal(first.status, 200, first.text);
    if (first.body.filter((e) => e.type === 'message').length === 5 || Date.now() > deadline) break;
    await sleep(50);
  }
  assert.equal(first.body[0].seq, 2);
  const again = await get(nodes[2], `/http/poll?session=${h.token}&ack=1`);
  assert.deepEqual(again.body, first.body, 'the same events for the same ack, on another node');
  const last = first.body[first.body.length - 1].seq;
  const beyond = await get(nodes[1], `/http/poll?session=${h.token}&ack=${last + 5}`);
  assert.equal(beyond.status, 400);
  assert.match(beyond.text, new RegExp(`beyond the last event \\(seq ${last}\\)`));
  const acked = await get(nodes[2], `/http/poll?session=${h.token}&ack=${last}`);
  assert.deepEqual(acked.body, [], 'acknowledged events are gone everywhere');
  const bogus = await get(nodes[0], '/http/poll?session=0123456789abcdef0123456789abcdef&ack=0');
  assert.equal(bogus.status, 404);
  assert.match(bogus.text, /unknown session/);
  const bogusSend = await post(nodes[2], '/http/send?session=0123456789abcdef0123456789abcdef', { type: 'ping' });
  assert.equal(bogusSend.status, 404);
  assert.match(bogusSend.text, /unknown session/);
  const bad = await post(nodes[0], `/http/send?session=${h.token}`, '{"type":"send","room":"nope","text":"x"}');
  assert.equal(bad.status, 403, 'a forwarded error keeps its status');
  assert.equal(bad.body.code, 'not_member');
  await w.close();
});

test('a long poll held on node 3 is answered promptly by an event made on node 1; one reader per session', async () => {
  const room = 'hwake';
  const h = await HttpChat.open(nodes[0], {});
  await post(nodes[0], `/http/send?session=${h.token}`, { type: 'join', room });
  const w = await join(nodes[0], room);
  const ack = await pollUntilPresence(nodes[1], h.token);
  const t0 = Date.now();
  const held = get(nodes[2], `/http/longpoll?session=${h.token}&ack=${ack}&timeout=20`);
  await sleep(300);
  w.send({ type: 'send', room, text: 'wake up', ref: 1 });
  const r = await held;
  assert.equal(r.status, 200, r.text);
  assert.ok(Date.now() - t0 < 3000, `answered promptly (${Date.now() - t0} ms)`);
  const msg = r.body.find((e) => e.type === 'message');
  assert.equal(msg?.text, 'wake up', r.text);
  // A second reader on another node takes over: the held one gets [] at once.
  const last = r.body[r.body.length - 1].seq;
  const older = get(nodes[1], `/http/longpoll?session=${h.token}&ack=${last}&timeout=20`);
  await sleep(300);
  const t1 = Date.now();
  const newer = get(nodes[2], `/http/longpoll?session=${h.token}&ack=${last}&timeout=20`);
  const o = await older;
  assert.equal(o.status, 200);
  assert.deepEqual(o.body, [], 'the older poll is answered [] when a newer one starts');
  assert.ok(Date.now() - t1 < 3000);
  w.send({ type: 'send', room, text: 'to the newer', ref: 2 });
  const n = await newer;
  assert.equal(n.body.find((e) => e.type === 'message')?.text, 'to the newer');
  await w.close();
});

test('takeover: POST /http/session with the token on another node; /ws?session= on a third', async () => {
  const room = 'htake';
  const h = await HttpChat.open(nodes[0], { name: 'taker' });
  await post(nodes[0], `/http/send?session=${h.token}`, { type: 'join', room });
  const p0 = await get(nodes[1], `/http/poll?session=${h.token}`);
  const last = p0.body.length ? p0.body[p0.body.length - 1].seq : 0;
  const held = get(nodes[2], `/http/longpoll?session=${h.token}&ack=${last}&timeout=20`);
  await sleep(300);
  const t0 = Date.now();
  const again = await post(nodes[1], '/http/session', { session: h.token });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.name, 'taker', 'the name moves with the session');
  const hr = await held;
  assert.deepEqual(hr.body, [], 'the old session\'s held poll is answered [] at once');
  assert.ok(Date.now() - t0 < 3000);
  const S = again.body.session;
  // The token names the new session (home: node 2), served anywhere, seq from 1.
  const j = await post(nodes[2], `/http/send?session=${S}`, { type: 'join', room });
  assert.equal(j.status, 200, j.text);
  assert.equal(j.body.type, 'joined');
  const sent = await post(nodes[2], `/http/send?session=${S}`, { type: 'send', room, text: 'after takeover' });
  assert.equal(sent.body.type, 'ack', sent.text);
  let p1;
  for (const deadline = Date.now() + 5000; ;) {
    p1 = await get(nodes[0], `/http/poll?session=${S}`);
    if (p1.body.length || Date.now() > deadline) break;
    await sleep(50);
  }
  assert.equal(p1.status, 200, p1.text);
  assert.deepEqual(p1.body.map((e) => [e.seq, e.text]), [[1, 'after takeover']], 'the new session numbers from 1');
  // /ws?session= on node 3 takes it over: the token then answers 404 everywhere.
  const ws = await Chat.open(nodes[2].url(`/ws?session=${S}`));
  assert.equal((await ws.next('welcome')).name, 'taker');
  for (const n of nodes) {
    let r;
    for (const deadline = Date.now() + 5000; ;) {
      r = await get(n, `/http/poll?session=${S}`);
      if (r.status === 404 || Date.now() > deadline) break;
      await sleep(50);
    }
    assert.equal(r.status, 404, r.text);
  }
  await ws.close();
});

test('TTL: kept alive by requests on other nodes and by a long poll held elsewhere; then expires with one presence leave', async () => {
  const room = 'httl';
  const home = await startNode(['--http-session-ttl', '2']);
  extra.push(home);
  const w = await join(nodes[0], room, '&name=ttlwatch');
  const h = await HttpChat.open(home, { name: 'ephemeral' });
  await post(home, `/http/send?session=${h.token}`, { type: 'join', room });
  await w.until((m) => m.type === 'presence' && m.event === 'join' && m.name === 'ephemeral');
  // 4 s of short polls on the other nodes only (the TTL is 2 s)
  for (let i = 0; i < 8; i++) {
    const r = await get(nodes[i % 3], `/http/poll?session=${h.token}`);
    assert.equal(r.status, 200, `still alive after ${i * 0.5} s: ${r.text}`);
    await sleep(500);
  }
  // a long poll held on another node for 4 s counts throughout
  const lp = await get(nodes[1], `/http/longpoll?session=${h.token}&timeout=4`);
  assert.equal(lp.status, 200, lp.text);
  const stillAlive = await get(nodes[2], `/http/poll?session=${h.token}`);
  assert.equal(stillAlive.status, 200, stillAlive.text);
  assert.equal(w.all.filter((m) => m.type === 'presence' && m.event === 'leave').length, 0, 'no leave while used');
  // then nothing: it ends within the TTL (+ a tick and a check), one leave
  const t0 = Date.now();
  const leave = await w.until((m) => m.type === 'presence' && m.event === 'leave' && m.name === 'ephemeral', 10000);
  assert.ok(Date.now() - t0 < 4500, `expired in ${Date.now() - t0} ms`);
  assert.equal(leave.count, 1);
  await sleep(1500);
  assert.equal(w.all.filter((m) => m.type === 'presence' && m.event === 'leave').length, 1, 'exactly one leave');
  for (const n of nodes) assert.equal((await get(n, `/http/poll?session=${h.token}`)).status, 404);
  await w.close();
});

test('the home node killed (kill -9): the member leaves once, the session moves to the next node asked (same token, name, queue)', async () => {
  const room = 'hdead';
  const home = await startNode(['--presence-ttl', '2']);
  extra.push(home);
  const w = await join(nodes[0], room, '&name=deadwatch');
  const h = await HttpChat.open(home, { name: 'orphan' });
  await post(home, `/http/send?session=${h.token}`, { type: 'join', room });
  await w.until((m) => m.type === 'presence' && m.event === 'join' && m.name === 'orphan');
  w.send({ type: 'send', room, text: 'before the death', ref: 1 });
  await w.until((m) => m.type === 'ack' && m.ref === 1);
  // what the session was owed before the death (not acknowledged yet)
  let owed;
  for (const deadline = Date.now() + 5000; ;) {
    owed = await get(nodes[1], `/http/poll?session=${h.token}`);
    if (owed.body.some((e) => e.text === 'before the death') || Date.now() > deadline) break;
    await sleep(50);
  }
  assert.ok(owed.body.some((e) => e.text === 'before the death'), owed.text);
  const lastSeq = owed.body[owed.body.length - 1].seq;
  await sleep(300);
  await home.kill9();
  const t0 = Date.now();
  const s = await post(nodes[1], `/http/send?session=${h.token}`, { type: 'send', room, text: 'lost?' });
  assert.equal(s.status, 503, s.text);
  assert.match(s.text, /not answering|moves to this node/);
  await w.until((m) => m.type === 'presence' && m.event === 'leave' && m.name === 'orphan', 10000);
  assert.ok(Date.now() - t0 < 4000, `left within the presence TTL (${Date.now() - t0} ms)`);
  // the next requests move it to the node they land on (node 3), then it is served anywhere again
  let p;
  const statuses = [];
  for (const deadline = Date.now() + 10000; ;) {
    p = await get(nodes[2], `/http/poll?session=${h.token}`);
    statuses.push(p.status);
    if (p.status === 200 || Date.now() > deadline) break;
    assert.equal(p.status, 503, p.text);
    await sleep(100);
  }
  assert.equal(p.status, 200, `${statuses}: ${p.text}`);
  const seqs = p.body.map((e) => e.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, k) => k + 1), 'the queue was kept: seq dense from 1');
  assert.ok(p.body.some((e) => e.text === 'before the death'), 'what was owed is still there');
  const moved = p.body.find((e) => e.code === 'moved');
  assert.ok(moved, p.text);
  assert.equal(moved.seq, lastSeq + 1, 'the moved error right after what was queued');
  // join again through another node: the name is kept, the room sees one join
  const j = await post(nodes[0], `/http/send?session=${h.token}`, { type: 'join', room, since: 1 });
  assert.equal(j.status, 200, j.text);
  assert.equal(j.body.type, 'joined');
  await w.until((m) => m.type === 'presence' && m.event === 'join' && m.name === 'orphan');
  const a = await post(nodes[1], `/http/send?session=${h.token}`, { type: 'send', room, text: 'back', ref: 'b' });
  assert.equal(a.body.type, 'ack', a.text);
  assert.equal((await w.until((m) => m.type === 'message' && m.text === 'back')).from, 'orphan');
  await sleep(1500);
  assert.equal(w.all.filter((m) => m.type === 'presence' && m.event === 'leave').length, 1, 'exactly one leave');
  assert.ok(!w.all.some((m) => m.type === 'message' && m.text === 'lost?'), 'the send refused after the death was not stored');
  await w.close();
});

test('Redis stopped for 3 s: polls and sends get 503 with a body, no false ack; recovery on its own', async () => {
  const room = 'hpause';
  const h = roundRobin(await HttpChat.open(nodes[0], {}), nodes);
  assert.equal((await h.send({ type: 'join', room })).status, 200);
  const w = await join(nodes[2], room);
  const acked = [];
  const refused = [];
  let i = 0;
  const trySend = async () => {
    const ref = `p${i++}`;
    const r = await h.send({ type: 'send', room, text: ref, ref });
    if (r.status === 200 && r.body.type === 'ack') acked.push(r.body);
    else refused.push(r);
  };
  for (let k = 0; k < 3; k++) await trySend();
  rd.pause();
  const polls = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) {
    await trySend();
    polls.push(await h.poll());
  }
  rd.resume();
  for (const n of nodes) await healthy(n);
  await sleep(500);
  const after = await h.poll();
  assert.equal(after.status, 200, after.text);
  assert.ok(!after.body.some((e) => e.code === 'overflow'), `no reset: events kept while Redis was away ${after.text}`);
  for (let k = 0; k < 3; k++) await trySend();
  assert.ok(refused.length > 0, 'sends were refused while Redis was stopped');
  for (const r of refused) {
    assert.equal(r.status, 503, r.text);
    assert.ok(r.text.trim().length > 0, 'with a body');
  }
  assert.ok(polls.some((p) => p.status === 503), 'polls got 503 while Redis was stopped');
  for (const p of polls) if (p.status !== 200) { assert.equal(p.status, 503); assert.ok(p.text.trim().length > 0); }
  // every ack is a stored message, once, with its text
  const last = Math.max(...acked.map((a) => a.id));
  await w.until((m) => m.type === 'message' && m.id === last, 30000);
  const texts = new Map(w.all.filter((m) => m.type === 'message').map((m) => [m.id, m.text]));
  for (const a of acked) assert.equal(texts.get(a.id), a.ref, 'the ack names a stored message');
  assert.equal(new Set(acked.map((a) => a.id)).size, acked.length);
  // the session goes on after recovery: polls work again (an overflow reset
  // may be among the events: then join again), and new sends are acked
  await w.close();
});

test('the node holding a long poll killed (kill -9): the session goes on, the next long poll elsewhere is woken', async () => {
  const room = 'hpoller';
  const holder = await startNode();
  extra.push(holder);
  const h = await HttpChat.open(nodes[0], {});
  await post(nodes[0], `/http/send?session=${h.token}`, { type: 'join', room });
  const w = await join(nodes[2], room);
  const ack = await pollUntilPresence(nodes[1], h.token);
  const dying = fetch(holder.http(`/http/longpoll?session=${h.token}&ack=${ack}&timeout=20`)).catch(() => null);
  await sleep(300);
  await holder.kill9();
  await dying;
  const t0 = Date.now();
  const held = get(nodes[1], `/http/longpoll?session=${h.token}&ack=${ack}&timeout=20`);
  await sleep(300);
  w.send({ type: 'send', room, text: 'after the poller died', ref: 1 });
  const r = await held;
  assert.equal(r.status, 200, r.text);
  assert.ok(Date.now() - t0 < 3000, `woken promptly (${Date.now() - t0} ms)`);
  assert.deepEqual(r.body.map((e) => [e.seq, e.text]), [[ack + 1, 'after the poller died']]);
  await w.close();
});

test('a forwarded send whose client went away: its reply is queued as an event, as on one node', async () => {
  const room = 'horphan';
  const home = nodes[0];
  const h = await HttpChat.open(home, {});
  assert.equal((await post(home, `/http/send?session=${h.token}`, { type: 'join', room })).status, 200);
  home.proc.kill('SIGSTOP');   /* the home holds the reply back */
  const ac = new AbortController();
  const req = fetch(nodes[1].http(`/http/send?session=${h.token}`), {
    method: 'POST', body: JSON.stringify({ type: 'send', room, text: 'orphaned', ref: 'o1' }), signal: ac.signal,
  }).catch(() => 'aborted');
  await sleep(200);
  ac.abort();
  assert.equal(await req, 'aborted');
  await sleep(100);
  home.proc.kill('SIGCONT');
  let events = [];
  for (const deadline = Date.now() + 10000; Date.now() < deadline;) {
    const r = await get(nodes[2], `/http/poll?session=${h.token}`);
    assert.equal(r.status, 200, r.text);
    events = r.body;
    if (events.some((e) => e.type === 'ack' && e.ref === 'o1')) break;
    await sleep(100);
  }
  const ack = events.find((e) => e.type === 'ack' && e.ref === 'o1');
  assert.ok(ack, `the ack came as an event: ${JSON.stringify(events)}`);
  assert.equal(events.find((e) => e.type === 'message' && e.id === ack.id)?.text, 'orphaned');
});

test('the nodes shut down clean: exit 0, no sanitizer report (sessions, held polls and forwarded sends freed)', async () => {
  // something in flight at shutdown: a held long poll on node 2 for a session of node 1
  const h = await HttpChat.open(nodes[0], {});
  const held = fetch(nodes[1].http(`/http/longpoll?session=${h.token}&timeout=30`)).then((r) => r.status).catch(() => 0);
  await sleep(300);
  for (const n of [nodes[1], nodes[0], nodes[2]]) {   /* the holder first: its poll gets 503 */
    const code = await n.stop();
    assert.equal(code, 0, n.log.slice(-3000));
    assert.doesNotMatch(n.log, /AddressSanitizer|LeakSanitizer|runtime error/, n.log.slice(-3000));
  }
  assert.ok([503, 0].includes(await held), 'the held poll is answered 503 (or its connection closed) at shutdown');
});
