// WebSockets over HTTP/3 (RFC 9220), with our own client (tools/h3ws on
// ngtcp2 + nghttp3, no server code): echo, the chat protocol across carriers
// (an HTTP/1.1 client from Node `ws` in the same rooms), several rooms on one
// QUIC connection, the same validation and Origin rules as HTTP/1.1, the
// by-carrier gauge, a stalled stream cut off (1013) without stalling its
// connection's other streams, and packets larger than 1452 bytes to a
// loopback peer with no pacing timer per write (the h3 counters in /metrics),
// and a PTO that sends its two probes (a UDP relay blacks the path out).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startH3Server, H3WS, udpRelay } from '../lib/h3.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 120000 };
let srv;
const clients = [];
const h3wsVia = (port, paths, opts) => { const c = new H3WS(port, paths, opts); clients.push(c); return c; };
const h3ws = (paths, opts) => h3wsVia(srv.h3port, paths, opts);

async function metric(name) {
  const text = await (await fetch(srv.http('/metrics'))).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function eventually(fn, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try { return await fn(); } catch (e) { if (Date.now() > deadline) throw e; }
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => { srv = await startH3Server({ args: ['--echo', '--send-queue', '262144'] }); });
after(async () => {
  for (const c of clients) await c.kill();
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-4000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

describe('WebSocket over HTTP/3', () => {
  test('echo: text round trip, closing handshake 1000, stream and gauge released', T, async () => {
    const c = h3ws(['/echo']);
    await c.waitFor((e) => e.kind === 'open');
    await eventually(async () => assert.equal(await metric('wschat_websockets_by_carrier{carrier="h3"}'), 1));
    c.send(0, 'héllo over QUIC');
    assert.equal((await c.waitFor((e) => e.kind === 'msg')).text, 'héllo over QUIC');
    const big = 'x'.repeat(100000);
    c.send(0, big);
    assert.equal((await c.waitFor((e) => e.kind === 'msg' && e.text.length === big.length)).text, big);
    c.close(0);
    assert.equal((await c.waitFor((e) => e.kind === 'close')).code, 1000);
    assert.equal(await c.exited, 0);
    await eventually(async () => assert.equal(await metric('wschat_websockets_by_carrier{carrier="h3"}'), 0));
  });

  test('chat across carriers: h3 and HTTP/1.1 clients share a room; two rooms on one QUIC connection', T, async () => {
    const h1 = await Chat.open(srv.url('/ws/lobby?name=hugo'));
    await h1.next('welcome');
    await h1.next('joined');
    const c = h3ws(['/ws/lobby?name=quinn', '/ws/side?name=quinn2']);
    const w0 = await c.waitFor((e) => e.ws === 0 && e.json?.type === 'welcome');
    assert.equal(w0.json.name, 'quinn');
    await c.waitFor((e) => e.ws === 0 && e.json?.type === 'joined' && e.json.room === 'lobby');
    await c.waitFor((e) => e.ws === 1 && e.json?.type === 'joined' && e.json.room === 'side');
    await h1.until((m) => m.type === 'presence' && m.name === 'quinn');
    c.send(0, { type: 'send', room: 'lobby', text: 'from h3', ref: 'a' });
    const ack = await c.waitFor((e) => e.ws === 0 && e.json?.type === 'ack');
    assert.equal(ack.json.ref, 'a');
    const got = await h1.until((m) => m.type === 'message');
    assert.equal(got.text, 'from h3');
    assert.equal(got.from, 'quinn');
    h1.send({ type: 'send', room: 'lobby', text: 'from http/1.1' });
    const m = await c.waitFor((e) => e.ws === 0 && e.json?.type === 'message' && e.json.from === 'hugo');
    assert.equal(m.json.text, 'from http/1.1');
    // the other stream of the same connection is its own client
    c.send(1, { type: 'dm', to: 'hugo', text: 'psst' });
    assert.equal((await h1.until((x) => x.type === 'dm')).from, 'quinn2');
    assert.equal(await metric('wschat_websockets_by_carrier{carrier="h3"}'), 2);
    c.close(0);
    c.close(1);
    assert.equal(await c.exited, 0);
    await h1.until((x) => x.type === 'presence' && x.event === 'leave' && x.name === 'quinn');
    h1.ws.close();
  });

  test('a loopback peer gets packets larger than 1452 bytes, and a write costs no pacing timer', T, async () => {
    // 50 messages of 3000 bytes in the room's history: joining replays them,
    // over 150 kB from the server. In packets of at most 1452 bytes that
    // alone is 104 packets or more; the loopback route's MTU allows 16 KiB.
    const h1 = await Chat.open(srv.url('/ws/bulk?name=filler'));
    await h1.next('welcome');
    await h1.next('joined');
    const text = 'y'.repeat(3000);
    for (let i = 0; i < 50; i++) h1.send({ type: 'send', room: 'bulk', text, ref: i });
    await h1.until((m) => m.type === 'ack' && m.ref === 49);
    const [p0, w0, x0] = [await metric('wschat_h3_packets_out_total'), await metric('wschat_h3_conn_writes_total'),
      await metric('wschat_h3_expiries_total')];
    const c = h3ws(['/ws/bulk?name=bulky']);
    await c.waitFor((e) => e.json?.type === 'joined');
    let n = 0;
    await c.waitFor((e) => e.json?.type === 'message' && e.json.text === text && ++n === 50);
    const [p1, w1, x1] = [await metric('wschat_h3_packets_out_total'), await metric('wschat_h3_conn_writes_total'),
      await metric('wschat_h3_expiries_total')];
    const minSmall = Math.ceil((50 * 3000) / 1452);
    assert.ok(p1 - p0 < minSmall, `${p1 - p0} packets for 150 kB: not larger than 1452 bytes (${minSmall} at least)`);
    // every write used to arm ngtcp2's pacing deadline, and its timer then
    // fired for a second, empty write: about one expiry per two writes
    // (the timer's own write counted). Loss-detection and ACK-delay timers
    // may fire a few times when the machine is busy (4 for 11 writes seen
    // with the suite running in parallel), hence the floor of 6.
    assert.ok(x1 - x0 < Math.max(6, (w1 - w0) / 3), `${x1 - x0} timer expiries for ${w1 - w0} connection writes`);
    c.close(0);
    assert.equal(await c.exited, 0);
    h1.ws.close();
  });

  test('small messages queued in one iteration go to nghttp3 as one buffer, intact and in order', T, async () => {
    // 50 sends in a burst are stored in one or a few commits; each commit's
    // acks and messages are queued to the stream in one loop iteration, and
    // short ones are copied into one buffer (one nghttp3 vec, not one each).
    const c = h3ws(['/ws/smalls?name=smally']);
    await c.waitFor((e) => e.json?.type === 'joined');
    const k0 = await metric('wschat_h3_segs_coalesced_total');
    for (let i = 0; i < 50; i++) c.send(0, { type: 'send', room: 'smalls', text: `m${i}`, ref: i });
    const got = [];
    await c.waitFor((e) => e.json?.type === 'message' && got.push(e.json.text) === 50);
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i}`));
    const k1 = await metric('wschat_h3_segs_coalesced_total');
    assert.ok(k1 - k0 >= 40, `${k1 - k0} of 100 queued frames (50 acks, 50 messages) copied together`);
    c.close(0);
    assert.equal(await c.exited, 0);
  });

  test('the same refusals as HTTP/1.1: room name, Origin, version, echo off, wrong method', T, async () => {
    const c = h3ws(['/ws/bad%20room!', '/ws/', '/nope']);
    const fails = await Promise.all([0, 1, 2].map((i) => c.waitFor((e) => e.ws === i && e.kind === 'fail')));
    assert.deepEqual(fails.map((f) => f.status), [400, 400, 404]);
    const o = h3ws(['/ws'], { origin: 'https://evil.example' });
    assert.equal((await o.waitFor((e) => e.kind === 'fail')).status, 403);
    const ok = h3ws(['/ws?name=samehost'], { origin: `https://localhost:${srv.h3port}` });
    await ok.waitFor((e) => e.json?.type === 'welcome');
    ok.close(0);
    const v = h3ws(['/echo'], { headers: ['sec-websocket-version=8'] });
    assert.equal((await v.waitFor((e) => e.kind === 'fail')).status, 426);
  });

  test('at most 100 streams per connection: the 101st WebSocket waits until one closes', T, async () => {
    const paths = Array.from({ length: 101 }, () => '/echo');
    const c = h3ws(paths);
    await eventually(() => assert.equal(c.events.filter((e) => e.kind === 'open').length, 100), 20000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(c.events.filter((e) => e.kind === 'open').length, 100, 'the limit holds (MAX_STREAMS)');
    c.close(0);
    await c.waitFor((e) => e.kind === 'open' && e.ws === 100);
    c.send(100, 'the 101st');
    assert.equal((await c.waitFor((e) => e.ws === 100 && e.kind === 'msg')).text, 'the 101st');
    await c.kill();
  });

  test('a stalled stream is cut off (1013) while its sibling on the same connection keeps receiving', T, async () => {
    const dropped0 = await metric('wschat_slow_consumers_dropped_total');
    const c = h3ws(['/ws/flood?name=stuck', '/ws/flood?name=reader'], { stall: 0 });
    await c.waitFor((e) => e.ws === 1 && e.json?.type === 'joined');
    await c.waitFor((e) => e.ws === 0 && e.json?.type === 'joined').catch(() => {});
    const pub = await Chat.open(srv.url('/ws/flood?name=pub'));
    await pub.next('welcome');
    const text = 'y'.repeat(3000);
    const N = 600; // 1.8 MB: past the stalled stream's 1 MiB window plus the 256 KiB send queue
    for (let i = 0; i < N; i++) {
      pub.send({ type: 'send', room: 'flood', text, ref: i });
      if (i % 10 === 9) await pub.until((m) => m.type === 'ack' && m.ref === i, 60000); // the publisher reads
    }
    // the sibling got every message
    await c.waitFor((e) => e.ws === 1 && e.json?.type === 'message' && e.json.text === text &&
      c.events.filter((x) => x.ws === 1 && x.json?.type === 'message').length === N, 60000,
      'all messages on ws 1').catch((e) => { throw new Error(`ws1 got ${c.events.filter((x) => x.ws === 1 && x.json?.type === 'message').length} of ${N}; ws0 ${JSON.stringify(c.events.filter((x) => x.ws === 0).slice(-1))} ${srv.log.slice(-1500)}`); });
    await eventually(async () => assert.ok(await metric('wschat_slow_consumers_dropped_total') >= dropped0 + 1));
    assert.match(srv.log, /slow consumer cut off peer=127\.0\.0\.1:\d+\/h3/);
    c.send(1, { type: 'ping', ref: 'still' });
    await c.waitFor((e) => e.ws === 1 && e.json?.type === 'pong');
    pub.ws.close();
  });

  // RFC 9002 6.2.4: when the probe timeout fires, a sender sends one or two
  // ack-eliciting probes; ngtcp2 asks for two, and h3's write must not end
  // after the first (it ended on a short packet once: one probe per PTO, and a
  // lost probe waited for the next, doubled, timeout). A relay drops
  // everything from the moment the echo leaves the server, both ways, so no
  // ACK comes back; the server's datagrams in that second come in bursts, one
  // per PTO (exponential back-off), each of two probes.
  test('a probe timeout sends two probes, and the message arrives once the path is back', T, async () => {
    const relay = await udpRelay(srv.h3port);
    try {
      const r = h3wsVia(relay.port, ['/echo']);
      await r.waitFor((e) => e.kind === 'open');
      await new Promise((res) => setTimeout(res, 300)); // the handshake's last ACKs settle
      relay.onServerDatagram = () => { relay.blackout = true; relay.onServerDatagram = null; };
      r.send(0, 'through the blackout');
      await new Promise((res) => setTimeout(res, 1000));
      const bursts = [];
      for (const d of relay.dropped) {
        const last = bursts.at(-1);
        if (last && d.t - last.end < 5) { last.n++; last.end = d.t; } else bursts.push({ n: 1, start: d.t, end: d.t });
      }
      const desc = bursts.map((b) => `${b.n}@${Math.round(b.start - bursts[0].start)}ms`).join(' ');
      const probes = bursts.slice(1); // the first is the echo itself
      assert.ok(probes.length >= 2, `at least two probe timeouts in 1 s: ${desc}`);
      for (const b of probes) assert.ok(b.n >= 2, `every probe timeout sends two probes: ${desc}`);
      relay.blackout = false;
      assert.equal((await r.waitFor((e) => e.kind === 'msg', 20000)).text, 'through the blackout');
      r.close(0);
      assert.equal((await r.waitFor((e) => e.kind === 'close')).code, 1000);
    } finally {
      relay.close();
    }
  });
});
