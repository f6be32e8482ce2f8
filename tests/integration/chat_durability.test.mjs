// Durable history and fan-out under pressure, end to end:
//   - history survives a clean restart; ids continue;
//   - kill -9 while clients are sending, restart on the same file: every
//     acknowledged message is there, ids continue, nothing is duplicated;
//   - a slow consumer (raw TCP client that completes the handshake, then
//     never reads) is closed with 1013 once its queue passes --send-queue,
//     while the others in the room keep receiving everything.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { RawWS } from '../lib/rawws.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 180000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every message of the room through `history`, ascending.
async function allHistory(c, room) {
  const out = [];
  let before;
  for (;;) {
    c.send({ type: 'history', room, limit: 200, ...(before ? { before } : {}) });
    const h = await c.until((m) => m.type === 'history');
    out.unshift(...h.messages);
    if (!h.more) return out;
    before = h.messages[0].id;
  }
}

describe('chat: durable history', () => {
  test('history survives a restart and ids continue', T, async () => {
    let srv = await startServer();
    try {
      const room = 'keep';
      const a = await Chat.open(srv.url(`/ws?name=ann&room=${room}`));
      await a.next('welcome');
      const j0 = await a.next('joined');
      for (let i = 0; i < 5; i++) a.send({ type: 'send', room, text: `before ${i}`, ref: i });
      const ids = [];
      while (ids.length < 5) { const m = await a.next(); if (m.type === 'ack') ids.push(m.id); }
      a.ws.close();
      await a.closed;
      srv = await srv.restart();

      const b = await Chat.open(srv.url(`/ws?room=${room}`));
      await b.next('welcome');
      const j = await b.next('joined');
      assert.equal(j.last_id, ids[4]);
      assert.equal(j.epoch, j0.epoch, 'same database, same epoch');
      const replay = [];
      for (let i = 0; i < 5; i++) replay.push(await b.next('message'));
      assert.deepEqual(replay.map((m) => m.text), [0, 1, 2, 3, 4].map((i) => `before ${i}`));
      assert.deepEqual(replay.map((m) => m.id), ids);
      assert.ok(replay.every((m) => m.from === 'ann'));
      b.send({ type: 'send', room, text: 'after', ref: 'x' });
      const ack = await b.next('ack');
      assert.ok(ack.id > ids[4], 'ids continue after the restart');
      // resume across the restart with since + epoch
      const c = await Chat.open(srv.url(`/ws?room=${room}&since=${ids[2]}&epoch=${j0.epoch}`));
      await c.next('welcome');
      assert.equal((await c.next('joined')).recovered, true);
      assert.deepEqual([(await c.next('message')).id, (await c.next('message')).id, (await c.next('message')).id],
        [ids[3], ids[4], ack.id]);
      b.ws.close();
      c.ws.close();
    } finally {
      assert.equal(await srv.stop(), 0, srv.log.slice(-3000));
    }
  });

  test('kill -9 while clients send: every acked message survives, ids continue, no duplicates', T, async () => {
    let srv = await startServer();
    try {
      const room = 'crash';
      const clients = [];
      for (let k = 0; k < 3; k++) {
        const c = await Chat.open(srv.url(`/ws?name=writer${k}&room=${room}`));
        await c.next('welcome');
        await c.next('joined');
        clients.push(c);
      }
      const acked = new Map();   // id -> text
      let stop = false;
      const pumps = clients.map(async (c, k) => {
        c.ws.on('message', () => {
          for (const m of c.queue.splice(0)) if (m.type === 'ack') acked.set(m.id, m.ref);
        });
        for (let i = 0; !stop && c.ws.readyState === WebSocket.OPEN; i++) {
          c.send({ type: 'send', room, text: `c${k}-${i}`, ref: `c${k}-${i}` });
          if (i % 20 === 19) await sleep(2);
        }
      });
      // let a few hundred messages be acknowledged, then crash mid-stream
      const deadline = Date.now() + 30000;
      while (acked.size < 300 && Date.now() < deadline) await sleep(10);
      assert.ok(acked.size >= 300, `only ${acked.size} acks`);
      await srv.kill9();
      stop = true;
      await Promise.all(pumps);
      const before = new Map(acked);

      srv = await srv.restart();
      const r = await Chat.open(srv.url(`/ws?room=${room}`));
      await r.next('welcome');
      const j = await r.until((m) => m.type === 'joined');
      const all = await allHistory(r, room);
      assert.equal(all.length > 0 ? all[all.length - 1].id : 0, j.last_id);
      const byId = new Map(all.map((m) => [m.id, m.text]));
      for (const [id, text] of before) assert.equal(byId.get(id), text, `acked message ${id} (${text}) lost`);
      for (let i = 1; i < all.length; i++) assert.ok(all[i].id > all[i - 1].id, 'ids strictly increase');
      assert.equal(new Set(all.map((m) => m.text)).size, all.length, 'no message stored twice');
      // per writer, what was stored is in send order
      for (let k = 0; k < 3; k++) {
        const seq = all.filter((m) => m.from === `writer${k}`).map((m) => Number(m.text.split('-')[1]));
        for (let i = 1; i < seq.length; i++) assert.ok(seq[i] > seq[i - 1], `writer${k} order`);
      }
      r.send({ type: 'send', room, text: 'after the crash', ref: 'z' });
      const ack = await r.until((m) => m.type === 'ack');
      assert.ok(ack.id > Math.max(...before.keys()) && ack.id > j.last_id, 'ids continue after the crash');
      r.ws.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('chat: slow consumer', () => {
  test('a client that never reads is closed with 1013 past --send-queue; the others receive everything', T, async () => {
    const srv = await startServer({ args: ['--send-queue', String(256 * 1024)] });
    try {
      const room = 'firehose';
      const slow = await RawWS.connect(srv.port, { path: `/ws/${room}` });
      slow.socket.pause();   // never read
      const reader = await Chat.open(srv.url(`/ws?room=${room}`));
      await reader.next('welcome');
      await reader.until((m) => m.type === 'joined');
      const writer = await Chat.open(srv.url(`/ws?room=${room}`));
      await writer.next('welcome');
      await writer.until((m) => m.type === 'joined');

      // ~4 KB messages, 20 at a time (so one commit's fan-out stays well
      // under the queue limit of the clients that do read), until the server
      // reports the slow consumer dropped
      const text = 'x'.repeat(4000);
      let sent = 0, dropped = 0;
      const received = [];
      reader.ws.on('message', () => {
        for (const m of reader.queue.splice(0)) if (m.type === 'message') received.push(m.id);
      });
      const deadline = Date.now() + 120000;
      for (let round = 0; !dropped && Date.now() < deadline;) {
        for (let i = 0; i < 20; i++) writer.send({ type: 'send', room, text, ref: sent++ });
        let acks = 0;
        while (acks < 20) { const m = await writer.next(undefined, 60000); if (m.type === 'ack') acks++; }
        if (++round % 10) continue;
        const metrics = await (await fetch(srv.http('/metrics'))).text();
        dropped = Number(/^wschat_slow_consumers_dropped_total (\d+)/m.exec(metrics)?.[1] ?? 0);
      }
      assert.ok(dropped >= 1, `no slow consumer dropped after ${sent} messages`);

      // the slow client's stream ends with a 1013 close
      slow.socket.resume();
      let ev;
      do { ev = await slow.next(30000); } while (ev.kind === 'message');
      assert.equal(ev.kind, 'close');
      assert.equal(ev.code, 1013);

      // the reader got every message, in order
      const until = Date.now() + 60000;
      while (received.length < sent && Date.now() < until) await sleep(50);
      assert.equal(received.length, sent);
      for (let i = 1; i < received.length; i++) assert.ok(received[i] > received[i - 1]);
      reader.ws.close();
      writer.ws.close();
    } finally {
      assert.equal(await srv.stop(), 0, srv.log.slice(-3000));
    }
  });
});

describe('chat: a replay larger than the send queue', () => {
  test('a joiner that reads gets a 1,000-message replay whole, even past --send-queue', T, async () => {
    const srv = await startServer({ args: ['--send-queue', '65536'] });
    try {
      const room = 'bigreplay';
      const writer = await Chat.open(srv.url(`/ws?name=writer&room=${room}`));
      await writer.next('welcome');
      await writer.next('joined');
      const text = 'x'.repeat(1000);
      let acked = 0;
      for (let batch = 0; batch < 50; batch++) {
        for (let i = 0; i < 20; i++) writer.send({ type: 'send', room, text, ref: batch * 20 + i });
        while (acked < (batch + 1) * 20) { const m = await writer.next(undefined, 60000); if (m.type === 'ack') acked++; }
      }
      // ~1 MB of replay against a 64 KiB queue: it is one reply, accepted whole.
      const joiner = await Chat.open(srv.url(`/ws?name=joiner&room=${room}&since=0`));
      await joiner.next('welcome');
      const joined = await joiner.next('joined');
      assert.equal(joined.recovered, true);
      assert.equal(joined.last_id, 1000);
      for (let id = 1; id <= 1000; id++) {
        const m = await joiner.next('message');
        assert.equal(m.id, id);
      }
      assert.equal(joiner.closeInfo, null);
      joiner.ws.close();
      writer.ws.close();
    } finally {
      assert.equal(await srv.stop(), 0, srv.log.slice(-3000));
    }
  });
});
