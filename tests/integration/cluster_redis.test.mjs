// Many nodes, one chat: a real redis-server (AOF on, appendfsync always)
// and three wschat nodes started with --redis. Cross-node order and ids,
// typing, presence counts and members, name uniqueness, session reclaim,
// DMs, a node killed (its members leave once, within the TTL), a node
// killed while its clients send, redis-server killed and restarted on the
// same files, Redis stopped for 5 s, Redis that lost its data (new epoch).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../lib/server.mjs';
import { startRedis } from '../lib/redis.mjs';
import { Chat } from '../lib/chat.mjs';
import { healthy, joinRoom as join } from '../lib/cluster.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let rd;
const nodes = [];

async function startNode(extra = []) {
  const n = await startServer({ args: ['--redis', rd.url, '--redis-timeout', '1000', ...extra] });
  nodes.push(n);
  return n;
}

const messageIds = (c, room) => c.all.filter((m) => m.type === 'message' && m.room === room).map((m) => m.id);
const dense = (ids, from = 1) => ids.every((id, i) => id === from + i);

before(async () => {
  rd = await startRedis();
  for (let i = 0; i < 3; i++) await startNode();
});

after(async () => {
  for (const n of nodes) await n.kill9();
  await rd.stop();
});

test('three nodes: every member on every node gets the same dense ids in the same order', async () => {
  const room = 'order';
  const cs = [];
  for (const n of nodes.slice(0, 3)) for (let k = 0; k < 2; k++) cs.push(await join(n, room));
  const acks = [];
  for (let i = 0; i < 20; i++) for (const [j, c] of cs.entries()) c.send({ type: 'send', room, text: `c${j}-${i}`, ref: i });
  for (const c of cs) for (let i = 0; i < 20; i++) acks.push((await c.until((m) => m.type === 'ack' && m.ref === i)).id);
  assert.deepEqual([...acks].sort((a, b) => a - b), Array.from({ length: 120 }, (_, i) => i + 1), 'acks: ids 1..120, each once');
  for (const c of cs) {
    while (messageIds(c, room).length < 120) await c.next();
    const got = c.all.filter((m) => m.type === 'message').map((m) => `${m.id}:${m.text}`);
    assert.deepEqual(got, cs[0].all.filter((m) => m.type === 'message').map((m) => `${m.id}:${m.text}`));
    assert.ok(dense(messageIds(c, room)), 'ids dense and increasing');
  }
  for (const c of cs) await c.close();
});

test('a jump in ids is refilled from the stream before delivery; a repeated publish is dropped', async () => {
  const room = 'gap';
  const a = await join(nodes[0], room);
  const b = await join(nodes[1], room);
  for (let i = 1; i <= 2; i++) {
    a.send({ type: 'send', room, text: `m${i}`, ref: i });
    await a.until((m) => m.type === 'ack' && m.ref === i);
  }
  // Two messages stored behind the nodes' backs (atomically, as the append
  // script does); only the second is published.
  const store2 = "redis.call('XADD', KEYS[2], '3-0', 'f', 'ghost', 't', 'three', 'ts', '1') " +
    "redis.call('XADD', KEYS[2], '4-0', 'f', 'ghost', 't', 'four', 'ts', '2') " +
    "return redis.call('HINCRBY', KEYS[1], 'seq', 2)";
  assert.match(await rd.command('EVAL', store2, '2', `wschat:{${room}}:meta`, `wschat:{${room}}:log`), /:4/);
  await rd.command('PUBLISH', `wschat:{${room}}`, 'm4 2 5 4 ghostfour');
  for (const c of [a, b]) {
    const m3 = await c.until((m) => m.type === 'message' && m.id >= 3);
    assert.deepEqual([m3.id, m3.text, m3.from], [3, 'three', 'ghost'], 'the gap first');
    const m4 = await c.next('message');
    assert.deepEqual([m4.id, m4.text], [4, 'four']);
  }
  await rd.command('PUBLISH', `wschat:{${room}}`, 'm4 2 5 4 ghostfour');
  await rd.command('PUBLISH', `wschat:{${room}}`, 'm2 2 5 3 ghostdup');
  for (const c of [a, b]) {
    await sleep(100);
    await c.quiet('no duplicate');
    assert.deepEqual(messageIds(c, room), [1, 2, 3, 4]);
  }
  // A jump longer than a replay (1,000): read in chunks, the members stay.
  const forge = "for i = 5, 1504 do redis.call('XADD', KEYS[2], i .. '-0', 'f', 'ghost', 't', 'g' .. i, 'ts', '3') end " +
    "redis.call('HSET', KEYS[1], 'seq', 1504) return 1";
  await rd.command('EVAL', forge, '2', `wschat:{${room}}:meta`, `wschat:{${room}}:log`);
  await rd.command('PUBLISH', `wschat:{${room}}`, 'm1504 3 5 5 ghostg1504');
  for (const c of [a, b]) {
    await c.until((m) => m.type === 'message' && m.id === 1504);
    assert.deepEqual(messageIds(c, room), Array.from({ length: 1504 }, (_, i) => i + 1));
    assert.equal(c.closeInfo, null);
  }
  await a.close();
  await b.close();
});

test('typing reaches members on other nodes, not the typist', async () => {
  const a = await join(nodes[0], 'typing', '&name=typer');
  const b = await join(nodes[1], 'typing');
  await a.until((m) => m.type === 'presence' && m.event === 'join');
  a.send({ type: 'typing', room: 'typing' });
  const t = await b.until((m) => m.type === 'typing');
  assert.equal(t.name, 'typer');
  await a.quiet('no typing echo to the typist');
  await a.close();
  await b.close();
});

test('presence covers every node: joined.members and counts', async () => {
  const room = 'pres';
  const a = await join(nodes[0], room, '&name=ann');
  const b = await join(nodes[1], room, '&name=ben');
  assert.deepEqual([...b.joined.members].sort(), ['ann', 'ben']);
  const pj = await a.until((m) => m.type === 'presence' && m.name === 'ben');
  assert.equal(pj.event, 'join');
  assert.equal(pj.count, 2);
  const c = await join(nodes[2], room, '&name=cat');
  assert.deepEqual([...c.joined.members].sort(), ['ann', 'ben', 'cat']);
  for (const x of [a, b]) assert.equal((await x.until((m) => m.type === 'presence' && m.name === 'cat')).count, 3);
  await c.close();
  for (const x of [a, b]) {
    const l = await x.until((m) => m.type === 'presence' && m.name === 'cat');
    assert.equal(l.event, 'leave');
    assert.equal(l.count, 2);
  }
  b.send({ type: 'hello', name: 'benny', ref: 'h' });
  assert.equal((await b.until((m) => m.type === 'welcome')).name, 'benny');
  const rn = await a.until((m) => m.type === 'presence' && m.event === 'rename');
  assert.deepEqual([rn.name, rn.old, rn.count], ['benny', 'ben', 2]);
  await a.close();
  await b.close();
});

test('names are unique across nodes; hello and ?name= both see other nodes', async () => {
  const a = await join(nodes[0], 'names', '&name=Alice');
  const b = await Chat.open(nodes[1].url('/ws?name=alice'));
  const e = await b.next('error');
  assert.equal(e.code, 'name_taken', e.raw);
  const w = await b.next('welcome');
  assert.match(w.name, /^guest-/);
  b.send({ type: 'hello', name: 'ALICE', ref: 1 });
  await b.expectError('name_taken', 1);
  const c = await Chat.open(nodes[2].url('/ws'));
  await c.next('welcome');
  c.send({ type: 'hello', name: 'alice', ref: 2 });
  await c.expectError('name_taken', 2);
  await a.close();
  // Freed everywhere once its holder is gone.
  await sleep(100);
  c.send({ type: 'hello', name: 'alice', ref: 3 });
  assert.equal((await c.next('welcome')).name, 'alice');
  await b.close();
  await c.close();
});

test('?session= reclaims the name on another node and closes the stale connection with 4001', async () => {
  const a = await join(nodes[0], 'sess', '&name=sam');
  const w = await join(nodes[2], 'sess');
  const b = await Chat.open(nodes[1].url(`/ws?session=${a.welcome.session}&room=sess`));
  const wb = await b.next('welcome');
  assert.equal(wb.name, 'sam');
  assert.equal(wb.session, a.welcome.session);
  const info = await a.closed;
  assert.equal(info.code, 4001);
  assert.equal(info.reason, 'replaced');
  await b.next('joined');
  // The name stays held (by the new connection).
  const c = await Chat.open(nodes[2].url('/ws?name=sam'));
  assert.equal((await c.next('error')).code, 'name_taken');
  await c.close();
  await b.close();
  await w.close();
});

test('direct messages reach a user on another node; unknown names get no_such_user', async () => {
  const a = await join(nodes[0], 'dm', '&name=dora');
  const b = await join(nodes[2], 'dm2', '&name=dave');
  a.send({ type: 'dm', to: 'Dave', text: 'psst / "hi" ü', ref: 7 });
  const ack = await a.until((m) => m.ref === 7);
  assert.equal(ack.type, 'ack', ack.raw);
  const d = await b.until((m) => m.type === 'dm');
  assert.deepEqual([d.from, d.to, d.text], ['dora', 'dave', 'psst / "hi" ü']);
  assert.equal(typeof d.ts, 'number');
  a.send({ type: 'dm', to: 'nobody-here', text: 'x', ref: 8 });
  await a.until((m) => m.ref === 8 && m.type === 'error' && m.code === 'no_such_user');
  await a.close();
  await b.close();
});

test('HTTP sessions (long polling) work on a node of the cluster: name held cluster-wide, messages from other nodes', async () => {
  const post = async (node, p, body) => {
    const r = await fetch(node.http(p), { method: 'POST', body: JSON.stringify(body) });
    return { status: r.status, json: r.status === 200 ? await r.json() : await r.text() };
  };
  const open = await post(nodes[0], '/http/session', { name: 'polly' });
  assert.equal(open.status, 200, String(open.json));
  assert.equal(open.json.name, 'polly');
  const S = open.json.session;
  const other = await post(nodes[1], '/http/session', { name: 'polly' });
  assert.equal(other.status, 200);
  assert.match(other.json.name, /^guest-/, 'the name is held on another node');
  const j = await post(nodes[0], `/http/send?session=${S}`, { type: 'join', room: 'hp' });
  assert.equal(j.json.type, 'joined');
  const w = await join(nodes[2], 'hp');
  w.send({ type: 'send', room: 'hp', text: 'to the poller', ref: 1 });
  await w.until((m) => m.type === 'ack');
  let got = null;
  for (let ack = 0; !got;) {
    const r = await (await fetch(nodes[0].http(`/http/longpoll?session=${S}&ack=${ack}&timeout=5`))).json();
    for (const e of r) { ack = e.seq; if (e.type === 'message') got = e; }
  }
  assert.equal(got.text, 'to the poller');
  await w.close();
});

test('a node killed (kill -9): each of its members leaves exactly once, within the TTL, and its names are free', async () => {
  const room = 'ttl';
  const victim = await startNode(['--presence-ttl', '2']);
  const w = await join(nodes[0], room, '&name=watch');
  const zs = [await join(victim, room, '&name=zed'), await join(victim, room, '&name=zoe')];
  for (const z of zs) await w.until((m) => m.type === 'presence' && m.name === z.welcome.name && m.event === 'join');
  await sleep(300);   /* a heartbeat with the short TTL has landed */
  const t0 = Date.now();
  await victim.kill9();
  const left = [];
  while (left.length < 2) {
    const m = await w.until((mm) => mm.type === 'presence' && mm.event === 'leave', 10000);
    left.push(m);
  }
  assert.ok(Date.now() - t0 <= 3000, `left within the TTL (${Date.now() - t0} ms)`);
  assert.deepEqual(left.map((m) => m.name).sort(), ['zed', 'zoe']);
  assert.deepEqual(left.map((m) => m.count).sort(), [1, 2]);
  await sleep(2500);
  assert.equal(w.all.filter((m) => m.type === 'presence' && m.event === 'leave').length, 2, 'exactly one leave each');
  const z2 = await Chat.open(nodes[1].url('/ws?name=zed'));
  assert.equal((await z2.next('welcome')).name, 'zed');
  await z2.close();
  await w.close();
});

test('a node killed (kill -9) while its clients send: they resume on another node, every acked message exactly once', async () => {
  const room = 'crash';
  const victim = await startNode();
  const watcher = await join(nodes[0], room);
  const senders = [await join(victim, room), await join(victim, room)];
  const acked = new Set();
  let stop = false;
  const pump = async (c, tag) => {
    for (let i = 0; !stop && !c.closeInfo; i++) {
      c.send({ type: 'send', room, text: `${tag}-${i}`, ref: `${tag}-${i}` });
      await sleep(5);
    }
  };
  const pumps = senders.map((c, k) => pump(c, `s${k}`));
  await sleep(400);
  await victim.kill9();
  await Promise.all(senders.map((c) => c.closed));
  await Promise.all(pumps);
  for (const c of senders) for (const m of c.all) if (m.type === 'ack') acked.add(m.id);
  assert.ok(acked.size > 5, `some sends were acked before the crash (${acked.size})`);

  // Each resumes on another node with since = the last id it saw.
  const resumed = [];
  for (const [k, c] of senders.entries()) {
    const seen = messageIds(c, room);
    const since = seen.length ? seen[seen.length - 1] : 0;
    const r = await join(nodes[1 + k], room, `&since=${since}&epoch=${c.joined.epoch}`);
    assert.equal(r.joined.recovered, true, r.joined.raw);
    for (let i = 0; i < 5; i++) r.send({ type: 'send', room, text: `r${k}-${i}`, ref: i });
    for (let i = 0; i < 5; i++) acked.add((await r.until((m) => m.type === 'ack' && m.ref === i)).id);
    resumed.push({ before: seen, r });
  }
  const max = Math.max(...acked);
  for (const c of [watcher, ...resumed.map((x) => x.r)]) while (!messageIds(c, room).includes(max)) await c.next();
  const wids = messageIds(watcher, room);
  assert.ok(dense(wids), 'the watcher saw dense ids');
  for (const id of acked) assert.ok(wids.includes(id), `acked ${id} reached the watcher`);
  for (const { before: seen, r } of resumed) {
    const all = [...seen, ...messageIds(r, room)];
    assert.equal(new Set(all).size, all.length, 'no duplicates across the resume');
    assert.ok(dense(all), 'no gap across the resume');
    for (const id of acked) assert.ok(all.includes(id), `acked ${id} reached the resumed client`);
    await r.close();
  }
  await watcher.close();
});

test('redis-server killed (kill -9) and restarted on the same files: nothing acked is lost, nodes recover by themselves', async () => {
  const room = 'rkill';
  const x = await join(nodes[0], room);
  const y = await join(nodes[1], room);
  const acked = [];
  for (let i = 0; i < 40; i++) {
    x.send({ type: 'send', room, text: `m${i}`, ref: i });
    if (i === 20) {
      // at least one acked before the kill (a busy machine may not have
      // answered any of the first 20 yet); seen() leaves it for the loop below
      await x.seen((m) => m.type === 'ack' && m.ref === 0);
      await rd.kill9();
    }
    await sleep(2);
  }
  for (let i = 0; i < 40; i++) {
    const m = await x.until((mm) => (mm.type === 'ack' || mm.type === 'error') && mm.ref === i);
    if (m.type === 'ack') acked.push(m.id);
    else assert.equal(m.code, 'unavailable', m.raw);
  }
  assert.ok(acked.length >= 1, 'some were acked before the kill');
  assert.equal((await fetch(nodes[0].http('/healthz'))).status, 503, 'degraded while Redis is gone');
  rd = await rd.restart();
  for (const n of nodes.slice(0, 3)) await healthy(n);
  y.send({ type: 'send', room, text: 'after', ref: 'after' });
  const a = await y.until((m) => m.type === 'ack' && m.ref === 'after');
  assert.ok(a.id > Math.max(...acked), 'ids go on after the restart');
  for (const c of [x, y]) {
    await c.until((m) => m.type === 'message' && m.id === a.id);
    const ids = messageIds(c, room);
    assert.ok(dense(ids), `dense ids on ${c === x ? 'x' : 'y'}: ${ids}`);
    for (const id of acked) assert.ok(ids.includes(id), `acked ${id} delivered`);
  }
  const z = await join(nodes[2], room, `&since=0&epoch=${x.joined.epoch}`);
  assert.equal(z.joined.recovered, true, 'same epoch: the AOF kept the history');
  const zids = [];
  while (zids.length < a.id) zids.push((await z.next('message')).id);
  for (const id of acked) assert.ok(zids.includes(id), `acked ${id} is in the history`);
  for (const c of [x, y, z]) await c.close();
});

test('Redis stopped for 5 s: sends get unavailable, never a false ack, connections stay open, /healthz 503, recovery on its own', async () => {
  const room = 'pause';
  const x = await join(nodes[0], room);
  const w = await join(nodes[2], room);
  const replies = new Map();
  let degraded = false;
  let i = 0;
  const send = () => { x.send({ type: 'send', room, text: `p${i}`, ref: i }); i++; };
  for (let k = 0; k < 5; k++) { send(); await sleep(50); }
  rd.pause();
  const t0 = Date.now();
  while (Date.now() - t0 < 5000) {
    send();
    await sleep(100);
    if ((await fetch(nodes[0].http('/healthz'))).status === 503) degraded = true;
  }
  rd.resume();
  await healthy(nodes[0]);
  await healthy(nodes[2]);
  for (let k = 0; k < 5; k++) send();
  for (let k = 0; k < i; k++) {
    const m = await x.until((mm) => (mm.type === 'ack' || mm.type === 'error') && mm.ref === k, 30000);
    replies.set(k, m);
  }
  assert.ok(degraded, '/healthz said degraded while Redis was stopped');
  assert.equal(x.closeInfo, null, 'the connection stayed open');
  const unavailable = [...replies.values()].filter((m) => m.type === 'error');
  assert.ok(unavailable.length > 0, 'some sends got unavailable');
  for (const m of unavailable) assert.equal(m.code, 'unavailable', m.raw);
  const acked = [...replies.values()].filter((m) => m.type === 'ack').map((m) => m.id);
  assert.equal(new Set(acked).size, acked.length, 'acks are distinct ids');
  const last = Math.max(...acked);
  // Every ack is a stored message: the other node's member has each, once, in order.
  await w.until((m) => m.type === 'message' && m.id === last, 30000);
  const wids = messageIds(w, room);
  assert.ok(dense(wids), `dense ids: ${wids}`);
  for (const id of acked) assert.ok(wids.includes(id), `acked ${id} delivered`);
  const texts = new Map(w.all.filter((m) => m.type === 'message').map((m) => [m.id, m.text]));
  for (const m of replies.values()) if (m.type === 'ack') assert.equal(texts.get(m.id), `p${m.ref}`, 'the ack names the stored message');
  await x.close();
  await w.close();
});

test('Redis that lost its data: a new epoch, members are told to rejoin, resume says recovered:false', async () => {
  const room = 'lost';
  const x = await join(nodes[0], room);
  x.send({ type: 'send', room, text: 'before', ref: 1 });
  const ack = await x.until((m) => m.type === 'ack' && m.ref === 1);
  const oldEpoch = x.joined.epoch;
  await rd.kill9();
  rmSync(rd.dir, { recursive: true, force: true });
  const fresh = mkdtempSync(path.join(tmpdir(), 'wschat-redis-'));
  rd = await rd.restart({ dir: fresh });
  for (const n of nodes.slice(0, 3)) await healthy(n);
  const info = await x.closed;
  assert.equal(info.code, 1012, 'the member is closed to rejoin');
  const y = await join(nodes[1], room, `&since=${ack.id}&epoch=${oldEpoch}`);
  assert.equal(y.joined.recovered, false);
  assert.notEqual(y.joined.epoch, oldEpoch);
  assert.equal(y.joined.last_id, 0);
  await y.close();
});
