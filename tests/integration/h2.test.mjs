// HTTP/2 (h2c with prior knowledge) and WebSockets over HTTP/2 (RFC 8441),
// driven by Node's own `http2` client and the `ws` package's framing:
// the routes over h2 next to HTTP/1.1 on the same port, extended CONNECT on
// /ws, /ws/{room} and /echo, every refusal on its stream only, the chat
// protocol and the echo over streams, RST_STREAM as a normal leave, the
// WebSocket close ending the stream, and fairness: one stalled stream of
// 50 in a room is cut off (1013) while the other 49 get everything.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';
import { h2session, connectStream, connectHeaders, request, get, wsOnStream } from '../lib/h2ws.mjs';

const T = { timeout: 120000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let srv;
before(async () => { srv = await startServer({ args: ['--echo'] }); });
after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-3000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

let seq = 0;
const fresh = (p) => `${p}-${process.pid}-${++seq}`;

async function metric(session, name) {
  const r = await get(session, '/metrics');
  const line = r.body.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : undefined;
}

describe('h2c: the routes over HTTP/2, HTTP/1.1 still on the same port', () => {
  test('SETTINGS carry ENABLE_CONNECT_PROTOCOL; page, assets, /healthz, /metrics over h2', T, async () => {
    const s = await h2session(srv.port);
    assert.equal(s.remoteSettings.enableConnectProtocol, true);
    const h = await get(s, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.body, 'ok\n');
    const page = await get(s, '/');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'], /text\/html/);
    assert.match(page.body, /<html/i);
    const etag = page.headers.etag;
    assert.ok(etag);
    const again = await get(s, '/', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    const js = await get(s, '/static/app.js');
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /javascript/);
    const head = await request(s, { ':method': 'HEAD', ':path': '/healthz' }, { end: true });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '3');
    assert.equal(head.body, '');
    const m = await get(s, '/metrics');
    assert.match(m.body, /wschat_websockets_by_carrier\{carrier="h2"\}/);
    const nf = await get(s, '/nope');
    assert.equal(nf.status, 404);
    assert.equal(nf.body, 'not found\n');
    const post = await request(s, { ':method': 'POST', ':path': '/healthz' }, { end: true });
    assert.equal(post.status, 405);
    // the same connection still serves after the errors
    assert.equal((await get(s, '/healthz')).status, 200);
    s.close();
    // HTTP/1.1 on the same port
    const r = await fetch(srv.http('/healthz'));
    assert.equal(r.status, 200);
    const c = await Chat.open(srv.url('/ws'));
    await c.next('welcome');
    await c.close();
  });

  test('a preface split into single bytes is still HTTP/2; a near-miss is HTTP/1.1', T, async () => {
    const net = await import('node:net');
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    for (const b of preface) { sock.write(Buffer.from([b])); await sleep(2); }
    const got = await new Promise((r) => sock.once('data', r));
    assert.equal(got[3], 0x04, 'the server answers with a SETTINGS frame');
    sock.destroy();
    const s2 = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => s2.once('connect', r));
    s2.write('POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n');
    const resp = await new Promise((r) => s2.once('data', r));
    assert.match(resp.toString('latin1'), /^HTTP\/1\.1 405/);
    s2.destroy();
  });
});

describe('RFC 8441: extended CONNECT', () => {
  test('/echo: 200 without Sec-WebSocket-Accept, messages echoed, close ends the stream', T, async () => {
    const s = await h2session(srv.port);
    const { stream, headers } = await connectStream(s, '/echo', { 'sec-websocket-protocol': 'wschat.v1' });
    assert.equal(headers[':status'], 200);
    assert.equal(headers['sec-websocket-accept'], undefined);
    assert.equal(headers['sec-websocket-protocol'], 'wschat.v1');
    const ws = wsOnStream(stream);
    const got = [];
    ws.on('message', (d, bin) => got.push([bin, d.toString()]));
    ws.send('hello');
    ws.send(Buffer.from([1, 2, 3]));
    const big = 'x'.repeat(300000); // spans many DATA frames and windows
    ws.send(big);
    while (got.length < 3) await sleep(10);
    assert.deepEqual(got[0], [false, 'hello']);
    assert.deepEqual(got[1], [true, '\x01\x02\x03']);
    assert.equal(got[2][1].length, big.length);
    const ended = new Promise((r) => stream.once('end', r));
    const closed = new Promise((r) => ws.once('close', (code) => r(code)));
    ws.close(1000, 'bye');
    assert.equal(await closed, 1000);
    await ended; // the server ended its half of the stream after its close frame
    s.close();
  });

  test('refusals get their status on that stream only; the connection goes on', T, async () => {
    const s = await h2session(srv.port);
    const base = (path, extra = {}) => connectHeaders(s, path, extra);
    const cases = [
      [{ ...base('/ws'), ':protocol': 'h2c-tunnel' }, 400, /:protocol must be websocket/],
      [{ ...base('/nope') }, 404, /no WebSocket endpoint/],
      [{ ...base('/ws/bad%20room') }, 400, /invalid room name/],
      [{ ...base('/ws'), 'sec-websocket-version': '8' }, 426, /Sec-WebSocket-Version/],
      [{ ...base('/ws'), origin: 'https://evil.example' }, 403, /origin not allowed/],
      [{ ...base('/ws?name=%zz') }, 400, /query/],
      [{ ':method': 'GET', ':path': '/ws' }, 405, /extended CONNECT/],
    ];
    for (const [headers, status, body] of cases) {
      const r = await request(s, headers, { end: headers[':method'] !== 'CONNECT' });
      assert.equal(r.status, status, JSON.stringify(headers));
      assert.match(r.body, body);
    }
    // a same-origin browser request is accepted
    const ok = await connectStream(s, '/echo', { origin: `http://127.0.0.1:${srv.port}` });
    ok.stream.close();
    assert.equal((await get(s, '/healthz')).status, 200);
    s.close();
  });

  test('missing :path, :authority or :protocol: their status, decided by our mapping', T, async () => {
    // Node's client fills in :authority and refuses to send a CONNECT without
    // :path, so these go as raw frames with a hand-made HPACK block.
    const net = await import('node:net');
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const lit = (n, v) => Buffer.concat([Buffer.from([0x00, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)]);
    const frame = (type, flags, id, payload) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(id, 5);
      return Buffer.concat([h, payload]);
    };
    const hdrs = (id, fields) => frame(1, 0x04, id, Buffer.concat(fields.map(([n, v]) => lit(n, v))));
    const ver = ['sec-websocket-version', '13'];
    sock.write(Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)),
      hdrs(1, [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':authority', 'a'], ver]),
      hdrs(3, [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ws'], ver]),
      hdrs(5, [[':method', 'CONNECT'], [':authority', 'a']]),
      hdrs(7, [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ws'], [':authority', 'a'], ['Upper', 'x']]),
    ]));
    // The status is the first HPACK byte of the response (static table:
    // 0x8c is :status 400; 501 is a literal); the body says which rule.
    let buf = Buffer.alloc(0);
    const first = {}, body = {};
    const deadline = Date.now() + 5000;
    while (Object.values(body).filter((b) => b.endsWith('\n')).length < 4 && Date.now() < deadline) {
      const d = await Promise.race([new Promise((r) => sock.once('data', r)), sleep(200).then(() => null)]);
      if (d) buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3], id = buf.readUInt32BE(5) & 0x7fffffff, p = buf.subarray(9, 9 + len);
        if (type === 1) first[id] = p[0];
        if (type === 0) body[id] = (body[id] ?? '') + p.toString('utf8');
        buf = buf.subarray(9 + len);
      }
    }
    sock.destroy();
    assert.equal(first[1], 0x8c, 'no :path: 400');
    assert.equal(body[1], 'missing :path\n');
    assert.equal(first[3], 0x8c, 'no :authority: 400');
    assert.equal(body[3], 'missing :authority\n');
    assert.notEqual(first[5], 0x8c, 'CONNECT without :protocol: not 400 but 501');
    assert.equal(body[5], 'CONNECT without :protocol (proxying) is not supported\n');
    assert.equal(first[7], 0x8c, 'upper-case name: 400');
    assert.equal(body[7], 'header field name not a lower-case token\n');
  });
});

describe('the chat protocol over HTTP/2 streams', () => {
  test('two chat WebSockets on one connection and one over HTTP/1.1 share a room', T, async () => {
    const room = fresh('h2room');
    const s = await h2session(srv.port);
    const a = await Chat.openH2(s, `/ws?name=${fresh('a')}&room=${room}`);
    const aw = await a.next('welcome');
    await a.next('joined');
    const b = await Chat.openH2(s, `/ws/${room}?name=${fresh('b')}`);
    const bw = await b.next('welcome');
    await b.next('joined');
    const c = await Chat.open(srv.url(`/ws?room=${room}`));
    await c.next('welcome');
    await c.next('joined');
    assert.equal((await a.next('presence')).name, bw.name);
    assert.equal(await metric(s, 'wschat_websockets_by_carrier{carrier="h2"}'), 2);
    a.send({ type: 'send', room, text: 'over h2', ref: 1 });
    const ack = await a.until((m) => m.type === 'ack' && m.ref === 1);
    for (const x of [a, b, c]) {
      const m = await x.until((mm) => mm.type === 'message');
      assert.equal(m.text, 'over h2');
      assert.equal(m.id, ack.id);
      assert.equal(m.from, aw.name);
    }
    b.ws.send('plain text to the room endpoint');
    for (const x of [a, c]) assert.equal((await x.until((mm) => mm.type === 'message')).text, 'plain text to the room endpoint');
    // RST_STREAM ends b's WebSocket: the room sees a normal leave
    b.stream.close(http2Cancel());
    const leave = await a.until((m) => m.type === 'presence' && m.event === 'leave');
    assert.equal(leave.name, bw.name);
    assert.equal((await c.until((m) => m.type === 'presence' && m.event === 'leave')).name, bw.name);
    await a.close();
    await c.close();
    await sleep(100);
    assert.equal(await metric(s, 'wschat_websockets_by_carrier{carrier="h2"}'), 0);
    s.close();
  });

  test('50 WebSockets on one connection in one room: one stalls, the other 49 get everything', T, async () => {
    const room = fresh('fair');
    // Windows as a browser sets them, smaller per stream: a stream that
    // stops reading holds 256 KiB in flight, then its queue on the server grows.
    const s = await h2session(srv.port, { options: { settings: { initialWindowSize: 256 * 1024 } } });
    s.setLocalWindowSize(32 * 1024 * 1024);
    const members = [];
    for (let i = 0; i < 50; i++) {
      const c = await Chat.openH2(s, `/ws/${room}?name=${fresh('m')}`);
      await c.next('welcome');
      await c.next('joined');
      members.push(c);
    }
    const stalled = members[0];
    stalled.stream.pause(); // stops reading: its stream window is not returned
    const sender = await Chat.open(srv.url(`/ws/${room}`));
    await sender.next('welcome');
    await sender.next('joined');
    const N = 600, BATCH = 25;
    const text = 'y'.repeat(3000); // 600 x ~3 KB = 1.8 MB: past 256 KiB + the 1 MiB send queue
    const got = new Array(members.length).fill(0);
    const counting = members.slice(1).map(async (c, i) => {
      while (got[i + 1] < N) {
        const m = await c.next(undefined, 60000);
        if (m.type === 'message') { assert.equal(m.text.length, text.length); got[i + 1]++; }
      }
    });
    for (let i = 0; i < N; i += BATCH) {
      for (let j = i; j < i + BATCH; j++) sender.send({ type: 'send', room, text, ref: j });
      await sender.until((m) => m.type === 'ack' && m.ref === i + BATCH - 1, 60000);
      // paced by the healthy members (not by the stalled one)
      while (Math.min(...got.slice(1)) < i + BATCH) await sleep(5);
      // once the server has cut it off, the stalled one reads again, so its
      // close frame (queued behind what its window held back) can arrive
      if (stalled.stream.isPaused() && (await metric(s, 'wschat_slow_consumers_dropped_total')) >= 1) stalled.stream.resume();
    }
    await Promise.all(counting);
    stalled.stream.resume();
    const info = await stalled.closed;
    // cut off with 1013 on its own stream; on a machine slow enough that it
    // resumed only after the 5 s close grace, its stream was reset (CANCEL)
    assert.ok(info.code === 1013 || (info.code === 1006 && stalled.stream.rstCode === 8),
      `stalled: close ${info.code}, stream reset code ${stalled.stream.rstCode}`);
    const dropped = await metric(s, 'wschat_slow_consumers_dropped_total');
    assert.equal(dropped, 1, `slow consumers dropped: ${dropped}`);
    for (const c of members.slice(1)) await c.close();
    await sender.close();
    s.close();
  });

  test('shutdown: every WebSocket on an h2 connection gets 1001', T, async () => {
    const own = await startServer({ args: ['--echo'] });
    const s = await h2session(own.port);
    const a = await Chat.openH2(s, '/ws');
    await a.next('welcome');
    const { stream } = await connectStream(s, '/echo');
    const e = wsOnStream(stream);
    const eClosed = new Promise((r) => e.once('close', (code) => r(code)));
    const stop = own.stop();
    assert.equal((await a.closed).code, 1001);
    assert.equal(await eClosed, 1001);
    assert.equal(await stop, 0);
    assert.doesNotMatch(own.log, /AddressSanitizer|LeakSanitizer|runtime error:/);
  });
});

function http2Cancel() { return 0x8; /* NGHTTP2_CANCEL */ }

describe('HTTP sessions (polling, long polling) over HTTP/2 streams', () => {
  test('session, send, a held long poll answered by a WebSocket message; a reset long poll is forgotten', T, async () => {
    const room = fresh('hsess');
    const s = await h2session(srv.port);
    const post = (p, body) => new Promise((resolve, reject) => {
      const st = s.request({ ':method': 'POST', ':path': p, 'content-type': 'application/json' });
      let out = '', h;
      st.on('response', (x) => { h = x; });
      st.setEncoding('utf8');
      st.on('data', (d) => { out += d; });
      st.on('end', () => resolve({ status: h[':status'], body: out }));
      st.on('error', reject);
      st.end(body);
    });
    const w = await post('/http/session', JSON.stringify({ name: fresh('h') }));
    assert.equal(w.status, 200, w.body);
    const session = JSON.parse(w.body).session;
    const j = await post(`/http/send?session=${session}`, JSON.stringify({ type: 'join', room }));
    assert.equal(JSON.parse(j.body).type, 'joined', j.body);
    let events = JSON.parse((await get(s, `/http/poll?session=${session}&ack=0`)).body);
    const ack = events.length ? events[events.length - 1].seq : 0;
    // a long poll held on one stream while other streams go on
    const held = get(s, `/http/longpoll?session=${session}&ack=${ack}&timeout=20`);
    await sleep(200);
    assert.equal((await get(s, '/healthz')).status, 200);
    const c = await Chat.openH2(s, `/ws/${room}`);
    await c.next('welcome');
    c.ws.send('to the long poll');
    const r = await held; // answered by the first event (the WebSocket's presence join)
    assert.equal(r.status, 200);
    events = JSON.parse(r.body);
    assert.ok(events.length > 0, r.body);
    let last = events[events.length - 1].seq;
    while (!events.some((e) => e.type === 'message' && e.text === 'to the long poll')) {
      const more = await get(s, `/http/longpoll?session=${session}&ack=${last}&timeout=10`);
      const evs = JSON.parse(more.body);
      assert.ok(evs.length > 0, 'the message came within the long poll timeout');
      events.push(...evs);
      last = evs[evs.length - 1].seq;
    }
    // a long poll whose stream is reset: the session forgets it, and serves the next one
    const st = s.request({ ':path': `/http/longpoll?session=${session}&ack=${last}&timeout=20` }, { endStream: true });
    st.on('error', () => {});
    await sleep(200);
    st.close(http2Cancel());
    await sleep(200);
    c.ws.send('after the reset');
    const again = await get(s, `/http/longpoll?session=${session}&ack=${last}&timeout=5`);
    assert.ok(JSON.parse(again.body).some((e) => e.text === 'after the reset'), again.body);
    await c.close();
    s.close();
  });
});

describe('h2 over TLS (ALPN)', () => {
  test('ALPN h2: page, /metrics and a chat WebSocket on the same TLS connection', T, async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { makeCert, tlsArgs } = await import('../lib/tls.mjs');
    const { freePort } = await import('../lib/server.mjs');
    const dir = mkdtempSync(path.join(tmpdir(), 'wschat-h2tls-'));
    const { cert, key } = makeCert(dir);
    // two free ports asked for one after the other may be the same one: retry
    let tlsPort, own;
    for (let i = 0; !own; i++) {
      tlsPort = await freePort();
      try { own = await startServer({ dir, args: tlsArgs(tlsPort, cert, key) }); } catch (e) { if (i === 2) throw e; }
    }
    try {
      const s = await h2session(tlsPort, { scheme: 'https', options: { rejectUnauthorized: false } });
      assert.equal(s.alpnProtocol, 'h2');
      assert.equal(s.remoteSettings.enableConnectProtocol, true);
      const page = await get(s, '/');
      assert.equal(page.status, 200);
      const c = await Chat.openH2(s, `/ws/${fresh('tls')}`, { ':scheme': 'https', origin: `https://127.0.0.1:${tlsPort}` });
      await c.next('welcome');
      await c.next('joined');
      assert.equal(await metric(s, 'wschat_websockets_by_carrier{carrier="h2"}'), 1);
      await c.close();
      s.close();
    } finally {
      assert.equal(await own.stop(), 0, own.log.slice(-3000));
      assert.doesNotMatch(own.log, /AddressSanitizer|LeakSanitizer|runtime error:/);
    }
  });
});
