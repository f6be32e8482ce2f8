// HTTP sessions: chat over polling and long polling (docs/PROTOCOL.md,
// "HTTP sessions"), against a real server, with Node's fetch and raw
// sockets as clients and Node `ws` as the WebSocket peer. Every endpoint,
// every error status, cross-transport delivery both ways, long-poll timeout
// and wake-up, lost-response redelivery, expiry with presence leave, the
// caps, takeover, and a held request freed on disconnect.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';
import { HttpChat, sleep } from '../lib/httpchat.mjs';
import { HttpConn } from '../lib/rawhttp.mjs';

async function metric(srv, name) {
  const text = await (await fetch(srv.http('/metrics'))).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  assert.ok(m, `metric ${name} in ${text}`);
  return Number(m[1]);
}

async function waitFor(pred, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await sleep(50);
  }
}

function rawRequest(token, path, query = '') {
  return `GET ${path}?session=${token}${query} HTTP/1.1\r\nHost: t\r\n\r\n`;
}

describe('HTTP session endpoints', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-text', '100'] }); });
  after(async () => { assert.equal(await srv.stop(), 0, srv.log); });

  test('POST /http/session answers the welcome; name and session in the body', async () => {
    const g = await HttpChat.create(srv);
    assert.equal(g.status, 200);
    assert.equal(g.headers.get('content-type'), 'application/json');
    assert.equal(g.body.type, 'welcome');
    assert.match(g.body.name, /^guest-[0-9a-f]{4,}$/);
    assert.match(g.body.session, /^[0-9a-f]{32}$/);
    const a = await HttpChat.create(srv, { name: '  Annie  ' });
    assert.equal(a.body.name, 'Annie');
    // the same rules as ?name=: a taken name gets a guest name and the error as an event
    const b = await HttpChat.open(srv, { name: 'annie' });
    assert.match(b.welcome.name, /^guest-/);
    const ev = await b.poll();
    assert.equal(ev.events[0].type, 'error');
    assert.equal(ev.events[0].code, 'name_taken');
    const bad = await HttpChat.open(srv, { name: 'guest-1' });
    assert.equal((await bad.poll()).events[0].code, 'bad_name');
  });

  test('malformed session bodies and wrong methods or paths are refused with a text line', async () => {
    for (const body of ['[1]', '{"name":3}', '{"session":{}}', 'not json', '{"name":"a","name":"b"}']) {
      const r = await HttpChat.create(srv, body);
      assert.equal(r.status, 400, body);
      assert.match(r.headers.get('content-type'), /^text\/plain/);
      assert.ok(r.text.endsWith('\n') && r.text.split('\n').length === 2, r.text);
    }
    assert.equal((await fetch(srv.http('/http/session'))).status, 405);
    assert.equal((await fetch(srv.http('/http/send?session=x'))).status, 405);
    assert.equal((await fetch(srv.http('/http/poll?session=x'), { method: 'POST' })).status, 405);
    assert.equal((await fetch(srv.http('/http/nothing'))).status, 404);
    const r = await fetch(srv.http('/http/poll?session=0123'));
    assert.equal(r.status, 404);
    assert.match(await r.text(), /unknown session/);
    assert.equal((await fetch(srv.http('/http/poll'))).status, 400);
    const h = await HttpChat.open(srv);
    assert.equal((await h.poll({ ack: 'x' })).status, 400);
    assert.equal((await h.poll({ ack: -1 })).status, 400);
    assert.equal((await fetch(h.url('/http/longpoll', { timeout: 'soon' }))).status, 400);
    assert.equal((await h.poll({ ack: 5 })).status, 400, 'ack beyond the last event');
    assert.equal((await fetch(`${h.url('/http/poll')}&ack=0&ack=0`)).status, 400, 'ack given twice');
    assert.equal((await fetch(`${h.url('/http/poll')}&ack=%zz`)).status, 400, 'a malformed escape');
  });

  test('/http/send answers each message with its direct reply; events go to the queue', async () => {
    const h = await HttpChat.open(srv, { name: 'sender' });
    let r = await h.send({ type: 'join', room: 'hs1' });
    assert.equal(r.status, 200);
    assert.equal(r.body.type, 'joined');
    assert.deepEqual(r.body.members, ['sender']);
    r = await h.send({ type: 'send', room: 'hs1', text: 'one', ref: 'r1' });
    assert.equal(r.status, 200);
    assert.deepEqual({ ...r.body }, { type: 'ack', ref: 'r1', room: 'hs1', id: r.body.id });
    assert.ok(r.body.id >= 1);
    const ev = await h.poll();
    assert.equal(ev.events.length, 1);
    assert.deepEqual(Object.keys(ev.events[0]), ['seq', 'type', 'room', 'id', 'from', 'text', 'ts']);
    assert.equal(ev.events[0].seq, 1);
    assert.equal(ev.events[0].id, r.body.id);
    assert.equal(ev.events[0].text, 'one');
    r = await h.send({ type: 'typing', room: 'hs1' });
    assert.equal(r.status, 204);
    r = await h.send({ type: 'ping', ref: 7 });
    assert.equal(r.body.type, 'pong');
    assert.equal(r.body.ref, 7);
    r = await h.send({ type: 'history', room: 'hs1', limit: 5 });
    assert.equal(r.body.type, 'history');
    assert.equal(r.body.messages.length, 1);
    r = await h.send({ type: 'hello', name: 'sender2' });
    assert.equal(r.body.type, 'welcome');
    assert.equal(r.body.session, h.token);
    r = await h.send({ type: 'leave', room: 'hs1' });
    assert.deepEqual(r.body, { type: 'left', room: 'hs1' });
    // the rename presence went to the queue; acknowledged events are gone
    const ev2 = await h.poll();
    assert.equal(ev2.events[0].seq, 2);
    assert.equal(ev2.events[0].event, 'rename');
    assert.deepEqual((await h.poll()).events, []);
  });

  test('every error has its status, with the error object as the body', async () => {
    const h = await HttpChat.open(srv);
    const cases = [
      ['not json', 400, 'bad_request'],
      [{ type: 'nope' }, 400, 'unknown_type'],
      [{ type: 'join', room: 'bad room' }, 400, 'bad_room'],
      [{ type: 'hello', name: 'guest-9' }, 400, 'bad_name'],
      [{ type: 'send', room: 'hs-none', text: 'x', ref: 'n' }, 403, 'not_member'],
      [{ type: 'dm', to: 'nobody-here', text: 'x' }, 400, 'no_such_user'],
    ];
    for (const [msg, status, code] of cases) {
      const r = await h.send(msg);
      assert.equal(r.status, status, JSON.stringify(msg));
      assert.equal(r.body.type, 'error');
      assert.equal(r.body.code, code);
    }
    await h.send({ type: 'join', room: 'hs-err' });
    const big = await h.send({ type: 'send', room: 'hs-err', text: 'x'.repeat(101), ref: 'big' });
    assert.equal(big.status, 413);
    assert.equal(big.body.code, 'too_large');
    assert.equal(big.body.ref, 'big');
    const unknown = await fetch(srv.http('/http/send?session=ffff'), { method: 'POST', body: '{"type":"ping"}' });
    assert.equal(unknown.status, 404);
    const notUtf8 = await fetch(h.url('/http/send'), { method: 'POST', body: Buffer.from([0x7b, 0xff, 0x7d]) });
    assert.equal(notUtf8.status, 400);
    const huge = await fetch(h.url('/http/send'), { method: 'POST', body: 'x'.repeat(70000) });
    assert.equal(huge.status, 413);
  });

  test('a dm between HTTP sessions: ack to the sender, dm event to the recipient', async () => {
    const a = await HttpChat.open(srv, { name: 'dm-a' });
    const b = await HttpChat.open(srv, { name: 'dm-b' });
    const r = await a.send({ type: 'dm', to: 'DM-B', text: 'psst', ref: 'd1' });
    assert.deepEqual(r.body, { type: 'ack', ref: 'd1' });
    const ev = await b.poll();
    assert.equal(ev.events[0].type, 'dm');
    assert.equal(ev.events[0].from, 'dm-a');
    assert.equal(ev.events[0].text, 'psst');
  });

  test('a poll with nothing new reads nothing from the store', async () => {
    const h = await HttpChat.open(srv);
    await h.send({ type: 'join', room: 'hs1' });
    await h.poll();
    const reads = await metric(srv, 'wschat_store_reads_total');
    for (let i = 0; i < 20; i++) assert.deepEqual((await h.poll()).events, []);
    assert.deepEqual((await h.poll({ long: true, timeout: 0 })).events, []);
    assert.equal(await metric(srv, 'wschat_store_reads_total'), reads);
    await h.send({ type: 'history', room: 'hs1' });
    assert.equal(await metric(srv, 'wschat_store_reads_total'), reads + 1, 'the counter counts');
  });

  test('a join answers joined; its replay follows as events', async () => {
    const w = await HttpChat.open(srv);
    await w.send({ type: 'join', room: 'hs-replay' });
    for (let i = 0; i < 3; i++) await w.send({ type: 'send', room: 'hs-replay', text: `m${i}` });
    const h = await HttpChat.open(srv);
    const j = await h.send({ type: 'join', room: 'hs-replay' });
    assert.equal(j.body.type, 'joined');
    assert.equal(j.body.last_id, 3);
    const ev = await h.poll();
    assert.deepEqual(ev.events.map((e) => e.text), ['m0', 'm1', 'm2']);
    assert.deepEqual(ev.events.map((e) => e.seq), [1, 2, 3]);
  });
});

describe('long polling', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--handshake-timeout', '1'] }); });
  after(async () => { assert.equal(await srv.stop(), 0, srv.log); });

  test('a long poll with nothing answers [] after its timeout, not 408', async () => {
    const h = await HttpChat.open(srv);
    const t0 = Date.now();
    const r = await h.poll({ long: true, timeout: 2 });
    const dt = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.deepEqual(r.events, []);
    assert.ok(dt >= 1900 && dt < 4000, `took ${dt} ms`);
  });

  test('an event wakes a held long poll at once', async () => {
    const h = await HttpChat.open(srv);
    const s = await HttpChat.open(srv);
    await h.send({ type: 'join', room: 'lp' });
    await s.send({ type: 'join', room: 'lp' });
    await h.poll();   // the presence join of s
    const t0 = Date.now();
    const p = h.poll({ long: true, timeout: 20 });
    await sleep(300);
    await s.send({ type: 'send', room: 'lp', text: 'wake' });
    const r = await p;
    assert.ok(Date.now() - t0 < 3000);
    assert.equal(r.events[0].text, 'wake');
  });

  test('timeout=0 answers at once; timeouts over 60 are clamped (held, not refused)', async () => {
    const h = await HttpChat.open(srv);
    const t0 = Date.now();
    assert.deepEqual((await h.poll({ long: true, timeout: 0 })).events, []);
    assert.ok(Date.now() - t0 < 1000);
    const c = await HttpConn.open(srv.port);
    await c.write(rawRequest(h.token, '/http/longpoll', '&timeout=99999'));
    await sleep(300);
    assert.equal(await metric(srv, 'wschat_http_held'), 1);
    c.destroy();
  });

  test('a second long poll answers the first with [] at once', async () => {
    const h = await HttpChat.open(srv);
    const first = h.poll({ long: true, timeout: 20 });
    await sleep(200);
    const t0 = Date.now();
    const second = h.poll({ long: true, timeout: 1 });
    const r1 = await first;
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual(r1.events, []);
    assert.deepEqual((await second).events, []);
  });

  test('a held request is freed the moment its client disconnects', async () => {
    const h = await HttpChat.open(srv);
    await waitFor(async () => (await metric(srv, 'wschat_http_held')) === 0, 'no held requests');
    const c = await HttpConn.open(srv.port);
    await c.write(rawRequest(h.token, '/http/longpoll', '&timeout=30'));
    await waitFor(async () => (await metric(srv, 'wschat_http_held')) === 1, 'one held');
    await sleep(1500);   // past the 1 s header timeout: still held, no 408
    assert.equal(await metric(srv, 'wschat_http_held'), 1);
    c.destroy();
    await waitFor(async () => (await metric(srv, 'wschat_http_held')) === 0, 'freed on disconnect', 2000);
    // the session lives on
    assert.equal((await h.poll()).status, 200);
  });

  test('a request pipelined behind a held one ends the connection with 400', async () => {
    const h = await HttpChat.open(srv);
    const c = await HttpConn.open(srv.port);
    await c.write(rawRequest(h.token, '/http/longpoll', '&timeout=30'));
    await sleep(200);
    await c.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 400);
    await c.expectClosed();
    await waitFor(async () => (await metric(srv, 'wschat_http_held')) === 0, 'held freed');
  });

  test('a lost response loses nothing: the same ack gets the same events again', async () => {
    const h = await HttpChat.open(srv);
    await h.send({ type: 'join', room: 'lost' });
    await h.send({ type: 'send', room: 'lost', text: 'keep me' });
    // the response is sent and dropped: the socket is destroyed right after the request
    const c = await HttpConn.open(srv.port);
    await c.write(rawRequest(h.token, '/http/poll', '&ack=0'));
    c.destroy();
    // a held long poll dropped mid-flight, then an event for it
    const c2 = await HttpConn.open(srv.port);
    await c2.write(rawRequest(h.token, '/http/longpoll', '&ack=0&timeout=30'));
    await sleep(200);
    c2.destroy();
    await h.send({ type: 'send', room: 'lost', text: 'and me' });
    const r = await h.poll({ ack: 0 });
    assert.deepEqual(r.events.map((e) => [e.seq, e.text]), [[1, 'keep me'], [2, 'and me']]);
    // and once more, until an ack covers them
    assert.deepEqual((await h.poll({ ack: 0 })).events.map((e) => e.seq), [1, 2]);
    assert.deepEqual((await h.poll({ ack: 2 })).events, []);
  });

  test('a send whose client disconnects before the ack: the message still comes as an event', async () => {
    const h = await HttpChat.open(srv);
    await h.send({ type: 'join', room: 'orphan' });
    const c = await HttpConn.open(srv.port);
    const body = JSON.stringify({ type: 'send', room: 'orphan', text: 'fire and forget', ref: 'o1' });
    await c.write(`POST /http/send?session=${h.token} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    c.destroy();
    // the ack went out on the dropped connection, or (if the connection was
    // gone first) is queued as an event; the message is an event either way
    await waitFor(async () => (await h.poll({ ack: 0 })).events.some((e) => e.type === 'message'), 'message queued');
    const ev = (await h.poll({ ack: 0 })).events;
    const msg = ev.find((e) => e.type === 'message');
    assert.equal(msg.text, 'fire and forget');
    const ack = ev.find((e) => e.type === 'ack');
    if (ack) assert.deepEqual([ack.ref, ack.id], ['o1', msg.id]);
  });
});

describe('cross-transport delivery', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { assert.equal(await srv.stop(), 0, srv.log); });

  test('a WebSocket client and a long-polling client see each other with the same ids, in the same order', async () => {
    const ws = await Chat.open(srv.url('/ws?name=wsuser&room=x1'));
    await ws.next('welcome');
    await ws.next('joined');
    const h = await HttpChat.open(srv, { name: 'httpuser' });
    const j = await h.send({ type: 'join', room: 'x1' });
    assert.deepEqual(j.body.members.sort(), ['httpuser', 'wsuser']);
    const pres = await ws.next('presence');
    assert.equal(pres.name, 'httpuser');
    h.startLongPoll();
    const ids = [];
    for (let i = 0; i < 10; i++) {
      if (i % 2) {
        ws.send({ type: 'send', room: 'x1', text: `ws-${i}`, ref: i });
        ids.push((await ws.until((m) => m.type === 'ack' && m.ref === i)).id);
      } else {
        const r = await h.send({ type: 'send', room: 'x1', text: `http-${i}`, ref: i });
        assert.equal(r.body.type, 'ack');
        ids.push(r.body.id);
      }
    }
    await waitFor(() => ws.all.filter((m) => m.type === 'message').length >= 10, 'ws saw 10 messages');
    const wsSeen = ws.all.filter((m) => m.type === 'message');
    const hSeen = [];
    while (hSeen.length < 10) {
      const m = await h.next();
      if (m.type === 'message') hSeen.push(m);
    }
    await h.stopLongPoll();
    assert.deepEqual(wsSeen.map((m) => m.id), ids);
    assert.deepEqual(hSeen.map((m) => m.id), ids);
    assert.deepEqual(hSeen.map((m) => m.text), wsSeen.map((m) => m.text));
    for (let i = 0; i < 10; i++) {
      const { seq, ...rest } = hSeen[i];
      assert.ok(seq > 0);
      assert.deepEqual(rest, { ...wsSeen[i] }, 'the same object on both transports');
    }
    await ws.close();
  });
});

describe('session lifetime and caps', () => {
  test('a session without requests for --http-session-ttl ends with a presence leave; a held poll keeps it', async () => {
    const srv = await startServer({ args: ['--http-session-ttl', '1'] });
    try {
      const ws = await Chat.open(srv.url('/ws?name=watcher&room=ttl'));
      await ws.next('welcome');
      await ws.next('joined');
      const kept = await HttpChat.open(srv, { name: 'kept' });   // in no room: nothing wakes its poll
      const idle = await HttpChat.open(srv, { name: 'idle' });
      await idle.send({ type: 'join', room: 'ttl' });
      const p = kept.poll({ long: true, timeout: 3, ack: 0 });
      const t0 = Date.now();
      const leave = await ws.until((m) => m.type === 'presence' && m.event === 'leave');
      assert.equal(leave.name, 'idle');
      assert.ok(Date.now() - t0 < 3000);
      assert.equal((await idle.poll()).status, 404);
      await p;
      assert.equal((await kept.poll()).status, 200, 'the held poll counted as a request');
      await waitFor(async () => (await metric(srv, 'wschat_http_sessions')) === 1, 'one session left');
      await waitFor(async () => (await metric(srv, 'wschat_http_sessions')) === 0, 'all expired');
      assert.equal(await metric(srv, 'wschat_chat_clients'), 1, 'only the WebSocket');
      await ws.close();
    } finally {
      assert.equal(await srv.stop(), 0, srv.log);
    }
  });

  test('--max-held: past it a long poll gets 503', async () => {
    const srv = await startServer({ args: ['--max-held', '1'] });
    try {
      const a = await HttpChat.open(srv);
      const b = await HttpChat.open(srv);
      const held = a.poll({ long: true, timeout: 2 });
      await sleep(200);
      const r = await b.poll({ long: true, timeout: 2 });
      assert.equal(r.status, 503);
      assert.match(r.text, /too many held/);
      assert.equal((await held).status, 200);
      assert.equal((await b.poll({ long: true, timeout: 0 })).status, 200);
    } finally {
      assert.equal(await srv.stop(), 0, srv.log);
    }
  });

  test('--http-queue-max: past it an overflow error, the queue dropped, rooms left; rejoin with since recovers all', async () => {
    const srv = await startServer({ args: ['--http-queue-max', '3'] });
    try {
      const ws = await Chat.open(srv.url('/ws?name=writer&room=ov'));
      await ws.next('welcome');
      await ws.next('joined');
      const h = await HttpChat.open(srv, { name: 'slow' });
      await h.send({ type: 'join', room: 'ov' });
      await ws.next('presence');
      for (let i = 0; i < 6; i++) {
        ws.send({ type: 'send', room: 'ov', text: `m${i}`, ref: i });
        await ws.until((m) => m.type === 'ack' && m.ref === i);
      }
      const leave = await ws.until((m) => m.type === 'presence' && m.event === 'leave');
      assert.equal(leave.name, 'slow');
      const ev = await h.poll();
      const err = ev.events.find((e) => e.type === 'error');
      assert.equal(err.code, 'overflow');
      assert.ok(ev.events.length <= 4);
      const notIn = await h.send({ type: 'send', room: 'ov', text: 'x' });
      assert.equal(notIn.status, 403, 'no longer in the room');
      const j = await h.send({ type: 'join', room: 'ov', since: 0 });
      assert.equal(j.body.recovered, true);
      const replay = await h.poll();
      assert.deepEqual(replay.events.filter((e) => e.type === 'message').map((e) => e.text), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
      await ws.close();
    } finally {
      assert.equal(await srv.stop(), 0, srv.log);
    }
  });

  test('--rate-limit counts per HTTP session, not per TCP connection', async () => {
    const srv = await startServer({ args: ['--rate-limit', '1'] });
    try {
      const h = await HttpChat.open(srv);
      await h.send({ type: 'join', room: 'rl' });
      const statuses = [];
      // fetch spreads requests over pooled connections; a fresh one each time proves it
      for (let i = 0; i < 4; i++) {
        const c = await HttpConn.open(srv.port);
        const body = JSON.stringify({ type: 'send', room: 'rl', text: `t${i}` });
        await c.write(`POST /http/send?session=${h.token} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        const r = await c.readResponse();
        statuses.push(r.status);
        if (r.status === 429) assert.equal(JSON.parse(r.text).code, 'rate_limited');
        c.destroy();
      }
      assert.deepEqual(statuses, [200, 200, 429, 429]);
      const other = await HttpChat.open(srv);
      await other.send({ type: 'join', room: 'rl' });
      assert.equal((await other.send({ type: 'send', room: 'rl', text: 'mine' })).status, 200);
    } finally {
      assert.equal(await srv.stop(), 0, srv.log);
    }
  });

  test('takeover by /ws?session= answers the held poll with [] and later requests with 404', async () => {
    const srv = await startServer();
    try {
      const h = await HttpChat.open(srv, { name: 'mover' });
      await h.send({ type: 'join', room: 'tk' });
      const held = h.poll({ long: true, timeout: 20 });
      await sleep(200);
      const t0 = Date.now();
      const ws = await Chat.open(srv.url(`/ws?session=${h.token}`));
      const w = await ws.next('welcome');
      assert.equal(w.name, 'mover');
      const r = await held;
      assert.ok(Date.now() - t0 < 2000);
      assert.equal(r.status, 200);
      assert.deepEqual(r.events, []);
      assert.equal((await h.poll()).status, 404);
      assert.equal((await h.send({ type: 'ping' })).status, 404);
      await waitFor(async () => (await metric(srv, 'wschat_http_sessions')) === 0, 'session gone');
      assert.equal(await metric(srv, 'wschat_http_held'), 0);
      await ws.close();
    } finally {
      assert.equal(await srv.stop(), 0, srv.log);
    }
  });

  test('takeover by another POST /http/session answers the held poll with []; the token names the new session', async () => {
    const srv = await startServer();
    try {
      const h = await HttpChat.open(srv, { name: 'twice' });
      const held = h.poll({ long: true, timeout: 20 });
      await sleep(200);
      const h2 = await HttpChat.open(srv, { session: h.token });
      assert.equal(h2.token, h.token);
      assert.equal(h2.welcome.name, 'twice');
      assert.deepEqual((await held).events, []);
      assert.equal(await metric(srv, 'wschat_http_sessions'), 1);
      assert.equal((await h2.send({ type: 'ping', ref: 1 })).body.type, 'pong');
    } finally {
      assert.equal(await srv.stop(), 0, srv.log);
    }
  });

  test('shutdown answers held polls and exits cleanly with sessions open (no leak under ASan)', async () => {
    const srv = await startServer();
    const h = await HttpChat.open(srv);
    await h.send({ type: 'join', room: 'bye' });
    const held = h.poll({ long: true, timeout: 30 });
    await sleep(200);
    const code = await srv.stop();
    const r = await held.catch((e) => ({ status: 0, e }));
    assert.ok(r.status === 503 || r.status === 0, `status ${r.status}`);
    assert.equal(code, 0, srv.log);
  });
});
