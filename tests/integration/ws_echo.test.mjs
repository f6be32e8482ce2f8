// GET /echo driven by an independent client (the `ws` npm package): text and
// binary messages from 0 bytes to the 16 MiB limit, limit + 1 -> 1009,
// fragmented messages, ping/pong, close codes, many clients at once, and a
// slow consumer against a bounded send queue.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { openWs, sendAsync } from '../lib/wsclient.mjs';
import { RawWS, OP, binary as rawBinary, text as rawText, ping, sleep } from '../lib/rawws.mjs';

const MiB = 1 << 20;
const LIMIT = 16 * MiB;
const T = { timeout: 120000 };
let srv;

// The shared server runs without the heartbeat: its global round could land
// a ping inside a test that expects an exact sequence (seen on a loaded
// machine). The default heartbeat has its own test below, on its own server.
before(async () => { srv = await startServer({ args: ['--echo', '--ping-interval', '0'] }); });
after(async () => {
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, `exit code after SIGTERM\n${srv.log.slice(-4000)}`);
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

// Exactly n bytes of UTF-8 with 1-, 2-, 3- and 4-byte characters, so code
// points straddle every read and frame boundary.
function textOf(n) {
  const unit = 'aé€😀';                    // 1 + 2 + 3 + 4 = 10 bytes
  return unit.repeat(Math.floor(n / 10)) + 'x'.repeat(n % 10);
}
function binaryOf(n) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}
const label = (n) => (n >= MiB ? `${n / MiB} MiB` : `${n} B`);

async function echoOnce(payload, isBinary) {
  const c = await openWs(srv.url('/echo'));
  try {
    await sendAsync(c.ws, payload, { binary: isBinary });
    const m = await c.next('message', 90000);
    assert.equal(m.isBinary, isBinary, 'opcode of the echo');
    const want = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    assert.equal(m.data.length, want.length, 'length of the echo');
    assert.ok(m.data.equals(want), 'echo differs from what was sent');
    c.ws.close(1000, 'done');
    const cl = await c.closed;
    assert.equal(cl.code, 1000);
  } finally {
    c.ws.terminate();
  }
}

describe('echo: sizes', () => {
  const sizes = [0, 1, 125, 126, 127, 65535, 65536, MiB, LIMIT];
  for (const n of sizes) {
    test(`text ${label(n)} -> same text back`, T, () => echoOnce(textOf(n), false));
    test(`binary ${label(n)} -> same binary back`, T, () => echoOnce(binaryOf(n), true));
  }

  for (const isBinary of [false, true]) {
    test(`${isBinary ? 'binary' : 'text'} 16 MiB + 1 byte -> close 1009`, T, async () => {
      const c = await openWs(srv.url('/echo'));
      try {
        c.ws.send(isBinary ? binaryOf(LIMIT + 1) : textOf(LIMIT + 1), { binary: isBinary }, () => {});
        const ev = await c.next(undefined, 60000);
        assert.equal(ev.kind, 'close', `expected close 1009, got ${ev.kind}`);
        assert.equal(ev.code, 1009, `close code (reason ${JSON.stringify(ev.reason)})`);
      } finally {
        c.ws.terminate();
      }
    });
  }
});

describe('echo: fragmented messages', () => {
  test('text in 3 fragments -> one message', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      await sendAsync(c.ws, 'Hello, ', { fin: false });
      await sendAsync(c.ws, 'fragmented ', { fin: false });
      await sendAsync(c.ws, 'world', { fin: true });
      const m = await c.next('message');
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'Hello, fragmented world');
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally { c.ws.terminate(); }
  });

  test('text with a code point split across fragments -> one valid message', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      const all = Buffer.from('κόσμε 😀', 'utf8');
      // split inside the 3-byte ό and inside the 4-byte emoji
      const cuts = [3, 4, all.length - 2];
      let prev = 0;
      for (const cut of cuts) { await sendAsync(c.ws, all.subarray(prev, cut), { binary: false, fin: false }); prev = cut; }
      await sendAsync(c.ws, all.subarray(prev), { binary: false, fin: true });
      const m = await c.next('message');
      assert.equal(m.isBinary, false);
      assert.ok(m.data.equals(all));
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally { c.ws.terminate(); }
  });

  test('binary in 100 fragments, with pings between -> pongs, then one message', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      const parts = Array.from({ length: 100 }, (_, i) => binaryOf(1000 + i));
      for (let i = 0; i < parts.length; i++) {
        await sendAsync(c.ws, parts[i], { binary: true, fin: i === parts.length - 1 });
        if (i % 25 === 0) c.ws.ping(Buffer.from(`p${i}`));
      }
      for (let i = 0; i < 100; i += 25) {
        const p = await c.next('pong');
        assert.equal(p.data.toString(), `p${i}`);
      }
      const m = await c.next('message');
      assert.equal(m.isBinary, true);
      assert.ok(m.data.equals(Buffer.concat(parts)));
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally { c.ws.terminate(); }
  });

  test('16 MiB text in 4 fragments of 4 MiB (exactly the limit) -> echo', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      const all = Buffer.from(textOf(LIMIT), 'utf8');
      for (let i = 0; i < 4; i++) await sendAsync(c.ws, all.subarray(i * 4 * MiB, (i + 1) * 4 * MiB), { binary: false, fin: i === 3 });
      const m = await c.next('message', 90000);
      assert.equal(m.isBinary, false);
      assert.ok(m.data.equals(all));
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally { c.ws.terminate(); }
  });

  test('fragments adding up to 16 MiB + 1 -> close 1009', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      const part = binaryOf(4 * MiB);
      for (let i = 0; i < 4; i++) c.ws.send(part, { binary: true, fin: false }, () => {});
      c.ws.send(Buffer.from([1]), { binary: true, fin: true }, () => {});
      const ev = await c.next(undefined, 60000);
      assert.equal(ev.kind, 'close', `expected close 1009, got ${ev.kind}`);
      assert.equal(ev.code, 1009);
    } finally { c.ws.terminate(); }
  });
});

describe('echo: ping and pong', () => {
  for (const [name, payload] of [['empty', Buffer.alloc(0)], ['small', Buffer.from('ping!')], ['125 bytes', binaryOf(125)]]) {
    test(`ping (${name}) -> pong with the same payload`, T, async () => {
      const c = await openWs(srv.url('/echo'));
      try {
        c.ws.ping(payload);
        const p = await c.next('pong');
        assert.ok(p.data.equals(payload));
        c.ws.close(1000);
        assert.equal((await c.closed).code, 1000);
      } finally { c.ws.terminate(); }
    });
  }
  test('unsolicited pong is ignored; messages still echo', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      c.ws.pong(Buffer.from('unsolicited'));
      await sendAsync(c.ws, 'after pong');
      const m = await c.next('message');   // no pong/ping/anything before it
      assert.equal(m.data.toString(), 'after pong');
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally { c.ws.terminate(); }
  });
  test('the server does not ping without --ping-interval (default 30 s) during a short session', T, async () => {
    const fresh = await startServer({ args: ['--echo'] });
    const c = await openWs(fresh.url('/echo'));
    try {
      for (let i = 0; i < 20; i++) {
        await sendAsync(c.ws, `m${i}`);
        const m = await c.next('message');
        assert.equal(m.data.toString(), `m${i}`);
      }
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally { c.ws.terminate(); await fresh.stop(); }
  });
});

describe('echo: close codes', () => {
  for (const [code, reason] of [[1000, ''], [1000, 'bye'], [1001, 'going away'], [1003, ''], [1007, ''], [1008, 'policy'],
    [1009, ''], [1010, ''], [1011, 'oops'], [3000, 'app'], [3999, ''], [4000, 'private'], [4999, 'κόσμε']]) {
    test(`close ${code}${reason ? ` "${reason}"` : ''} -> the server echoes ${code}`, T, async () => {
      const c = await openWs(srv.url('/echo'));
      try {
        c.ws.close(code, reason);
        const cl = await c.closed;
        assert.equal(cl.code, code);
      } finally { c.ws.terminate(); }
    });
  }
  test('close without a code -> empty close back (1005 at the client)', T, async () => {
    const c = await openWs(srv.url('/echo'));
    try {
      c.ws.close();
      const cl = await c.closed;
      assert.ok(cl.code === 1005 || cl.code === 1000, `got ${cl.code}`);
    } finally { c.ws.terminate(); }
  });
});

describe('echo: many clients', () => {
  test('20 clients x 100 messages each -> every client gets exactly its own, in order', T, async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => openWs(srv.url('/echo'))));
    try {
      await Promise.all(clients.map(async (c, k) => {
        for (let i = 0; i < 100; i++) c.ws.send(i % 2 ? `client ${k} msg ${i}` : Buffer.from(`client ${k} bin ${i}`), { binary: i % 2 === 0 });
        for (let i = 0; i < 100; i++) {
          const m = await c.next('message', 30000);
          assert.equal(m.isBinary, i % 2 === 0);
          assert.equal(m.data.toString(), i % 2 ? `client ${k} msg ${i}` : `client ${k} bin ${i}`);
        }
        c.ws.close(1000);
        assert.equal((await c.closed).code, 1000);
      }));
    } finally { for (const c of clients) c.ws.terminate(); }
  });
});

describe('echo: many connections', () => {
  test('300 concurrent raw connections, one message each, all closed cleanly', T, async () => {
    const conns = [];
    try {
      for (let i = 0; i < 300; i++) conns.push(await RawWS.connect(srv.port, { path: '/echo' }));
      await Promise.all(conns.map(async (ws, i) => {
        await ws.send(rawText(`conn ${i}`));
        await ws.expectMessage(OP.TEXT, `conn ${i}`, 30000);
      }));
      await Promise.all(conns.map((ws) => ws.closeClean()));
    } finally { for (const ws of conns) ws.destroy(); }
  });
});

describe('echo: slow consumer', () => {
  test('a client that pipelines 8 x 1 MiB while reading at full speed is not cut off (default queue)', T, async () => {
    const ws = await RawWS.connect(srv.port, { path: '/echo' });
    try {
      const p = Buffer.alloc(MiB, 0x42);
      await ws.sendAll(Array.from({ length: 8 }, () => rawBinary(p)));
      for (let i = 0; i < 8; i++) await ws.expectMessage(OP.BINARY, p, 60000);
      await ws.closeClean();
    } finally { ws.destroy(); }
  });

  test('a client that never reads is dropped once its backlog passes --send-queue; the server stays healthy', T, async () => {
    const s = await startServer({ args: ['--echo', '--send-queue', '65536'] });
    try {
      const websockets = async () => {
        const r = await fetch(s.http('/metrics'));
        const m = /^wschat_websockets (\S+)$/m.exec(await r.text());
        assert.ok(m, 'wschat_websockets gauge missing');
        return Number(m[1]);
      };
      const ws = await RawWS.connect(s.port, { path: '/echo' });
      ws.socket.pause();                     // never read: echoes pile up on the server
      const chunk = rawBinary(Buffer.alloc(256 * 1024, 0x5a));
      // Send until our writes stall (the server stopped reading) or fail,
      // at most 64 MiB: far more than socket buffers plus a 64 KiB queue.
      let sent = 0;
      while (sent < 64 * MiB) {
        const ok = await Promise.race([ws.send(chunk), sleep(5000).then(() => 'stalled')]);
        if (ok !== true) break;
        sent += chunk.length;
      }
      // Still not reading, the connection must disappear on the server side
      // (its backlog can never drain).
      const deadline = Date.now() + 40000;
      let open;
      while ((open = await websockets()) !== 0 && Date.now() < deadline) await sleep(200);
      ws.destroy();
      assert.equal(open, 0, `a client that never reads is still connected after ${sent} bytes sent`);
      const c = await openWs(s.url('/echo'));
      await sendAsync(c.ws, 'alive');
      assert.equal((await c.next('message')).data.toString(), 'alive');
      c.ws.close(1000);
      await c.closed;
    } finally {
      const code = await s.stop();
      assert.equal(code, 0, s.log.slice(-3000));
    }
  });
});

describe('echo: ping flood', () => {
  test('a client that pings without reading is cut off (1013) past --send-queue, not given unbounded pongs', T, async () => {
    const s = await startServer({ args: ['--echo', '--send-queue', '65536'] });
    try {
      const ws = await RawWS.connect(s.port, { path: '/echo' });
      ws.socket.pause();                            // never read the pongs
      const burst = Buffer.concat(Array.from({ length: 1000 }, () => ping(Buffer.alloc(125, 0x70))));
      let dropped = 0;
      const deadline = Date.now() + 60000;
      for (let i = 0; i < 100 && !dropped && Date.now() < deadline; i++) {
        const ok = await Promise.race([ws.send(burst), sleep(5000).then(() => 'stalled')]);
        const metrics = await (await fetch(s.http('/metrics'))).text();
        dropped = Number(/^wschat_slow_consumers_dropped_total (\d+)/m.exec(metrics)?.[1] ?? 0);
        if (ok === false || ok === 'stalled' || ws.socket.destroyed) break;
      }
      for (let i = 0; i < 100 && !dropped; i++) {
        await sleep(100);
        const metrics = await (await fetch(s.http('/metrics'))).text();
        dropped = Number(/^wschat_slow_consumers_dropped_total (\d+)/m.exec(metrics)?.[1] ?? 0);
      }
      assert.ok(dropped >= 1, 'the ping flooder was not cut off');
      ws.destroy();
      const c = await openWs(s.url('/echo'));
      await sendAsync(c.ws, 'alive');
      assert.equal((await c.next('message')).data.toString(), 'alive');
      c.ws.close(1000);
      await c.closed;
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
    }
  });
});
