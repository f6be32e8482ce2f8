// A WebSocket's life around the protocol: graceful shutdown (SIGTERM and
// SIGINT: every WebSocket gets close 1001, the process exits 0 within a
// bounded time, even when a client never answers the close) and the server
// heartbeat (--ping-interval: a client that never answers pings is dropped;
// one that answers stays).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from '../lib/server.mjs';
import { RawWS, OP, text, pong, close, sleep } from '../lib/rawws.mjs';
import { openWs, sendAsync } from '../lib/wsclient.mjs';

const T = { timeout: 90000 };

function assertClean(s) {
  assert.doesNotMatch(s.log, /AddressSanitizer|LeakSanitizer|runtime error:/, s.log.slice(-4000));
}

const refused = (port) => new Promise((resolve) => {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.once('connect', () => { c.destroy(); resolve(false); });
  c.once('error', () => resolve(true));
});

describe('graceful shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    test(`${signal}: every WebSocket gets close 1001, the server exits 0`, T, async () => {
      const s = await startServer({ args: ['--echo'] });
      let exited = false;
      try {
        const lib = await openWs(s.url('/echo'));                 // answers the close by itself
        const polite = await RawWS.connect(s.port, { path: '/echo' }); // we answer by hand
        const rude = await RawWS.connect(s.port, { path: '/echo' });   // never answers
        // a message in flight is still echoed before the close
        await sendAsync(lib.ws, 'before shutdown');
        assert.equal((await lib.next('message')).data.toString(), 'before shutdown');

        const t0 = Date.now();
        const code = s.stop(signal);
        const a = await polite.expectClose(1001, 20000);
        await polite.send(close(1001));
        await polite.expectEnd(20000);
        const b = await rude.expectClose(1001, 20000);
        // while it waits for the last closes, the server takes no new connections
        assert.ok(await refused(s.port), 'new connections accepted during shutdown');
        const c = await lib.closed;
        assert.equal(c.code, 1001, `ws client got ${c.code}`);
        for (const ev of [a, b]) assert.equal(typeof ev.reason, 'string');
        // the server closes the connection that never answered by itself
        await rude.expectEnd(30000);
        assert.equal(await code, 0, `exit code after ${signal}\n${s.log.slice(-3000)}`);
        exited = true;
        assert.ok(Date.now() - t0 < 30000, 'shutdown took longer than 30 s');
        assert.ok(await refused(s.port), 'still accepting connections after exit');
        assertClean(s);
        polite.destroy(); rude.destroy();
      } finally {
        if (!exited) await s.kill9();
      }
    });
  }

  test('SIGTERM with no connections: exit 0 promptly', T, async () => {
    const s = await startServer({ args: ['--echo'] });
    const t0 = Date.now();
    assert.equal(await s.stop(), 0, s.log.slice(-3000));
    assert.ok(Date.now() - t0 < 10000, `took ${Date.now() - t0} ms`);
    assertClean(s);
  });

  test('SIGTERM while a large message is half received: close 1001, exit 0', T, async () => {
    const s = await startServer({ args: ['--echo'] });
    let exited = false;
    try {
      const ws = await RawWS.connect(s.port, { path: '/echo' });
      const f = text(Buffer.alloc(1 << 20, 0x61));
      await ws.send(f.subarray(0, 500000));
      await sleep(100);
      const code = s.stop();
      await ws.expectClose(1001, 20000);
      await ws.expectEnd(30000);
      assert.equal(await code, 0, s.log.slice(-3000));
      exited = true;
      ws.destroy();
      assertClean(s);
    } finally { if (!exited) await s.kill9(); }
  });
});

describe('heartbeat (--ping-interval 1)', () => {
  test('a raw client that never answers pings gets pings, then is dropped within a few seconds', T, async () => {
    const s = await startServer({ args: ['--echo', '--ping-interval', '1'] });
    try {
      const ws = await RawWS.connect(s.port, { path: '/echo' });
      const t0 = Date.now();
      let pings = 0;
      let closeCode = null;
      for (;;) {
        const ev = await ws.next(15000);
        if (ev.kind === 'ping') { pings++; continue; }
        if (ev.kind === 'close') { closeCode = ev.code; continue; }
        assert.equal(ev.kind, 'end', `unexpected ${ws.describe(ev)}`);
        break;
      }
      const dt = Date.now() - t0;
      assert.ok(pings >= 1, 'no ping before being dropped');
      assert.ok(dt >= 1500, `dropped after ${dt} ms: before two pings could be missed`);
      assert.ok(dt <= 8000, `dropped only after ${dt} ms (expected ~3 s)`);
      if (closeCode !== null) assert.ok([1001, 1002, 1006, 1008, 1011].includes(closeCode) || closeCode >= 4000, `close ${closeCode}`);
      ws.destroy();
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
      assertClean(s);
    }
  });

  test('a raw client that answers every ping stays connected (6 s) and still echoes', T, async () => {
    const s = await startServer({ args: ['--echo', '--ping-interval', '1'] });
    try {
      const ws = await RawWS.connect(s.port, { path: '/echo' });
      const until = Date.now() + 6000;
      let pings = 0;
      while (Date.now() < until) {
        let ev;
        try { ev = await ws.next(Math.max(1, until - Date.now())); } catch (e) { if (e.timeout) break; throw e; }
        assert.equal(ev.kind, 'ping', `unexpected ${ws.describe(ev)}`);
        pings++;
        await ws.send(pong(ev.data));
      }
      assert.ok(pings >= 3, `only ${pings} pings in 6 s with --ping-interval 1`);
      await ws.send(text('alive'));
      for (;;) {
        const ev = await ws.next();
        if (ev.kind === 'ping') { await ws.send(pong(ev.data)); continue; }
        assert.equal(ev.kind, 'message', ws.describe(ev));
        assert.equal(ev.opcode, OP.TEXT);
        assert.equal(ev.data.toString(), 'alive');
        break;
      }
      await ws.send(close(1000));
      for (;;) {
        const ev = await ws.next();
        if (ev.kind === 'ping') continue;
        assert.equal(ev.kind, 'close', ws.describe(ev));
        assert.equal(ev.code, 1000);
        break;
      }
      await ws.expectEnd();
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
      assertClean(s);
    }
  });

  test('the ws client (automatic pongs) stays connected (5 s) and still echoes', T, async () => {
    const s = await startServer({ args: ['--echo', '--ping-interval', '1'] });
    try {
      const c = await openWs(s.url('/echo'));
      let closed = false;
      c.closed.then(() => { closed = true; });
      await sleep(5000);
      assert.equal(closed, false, 'dropped although it answered pings');
      const pings = c.events.filter((e) => e.kind === 'ping').length;
      assert.ok(pings >= 2, `only ${pings} pings`);
      c.events = c.events.filter((e) => e.kind !== 'ping');
      await sendAsync(c.ws, 'alive');
      let m;
      do { m = await c.next(); } while (m.kind === 'ping');
      assert.equal(m.kind, 'message');
      assert.equal(m.data.toString(), 'alive');
      c.ws.close(1000);
      assert.equal((await c.closed).code, 1000);
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
      assertClean(s);
    }
  });
});
