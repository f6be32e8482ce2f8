// The lazy round's CPU budget (docs/PROTOCOL.md "Delivery and
// back-pressure"): presence and typing wait for company; during a join storm
// the wait grows with what the waiting round is expected to cost (99x it: a
// 1 % budget, at least 15 ms, at most 1 s), and the first calm round brings
// it back to 15 ms. What
// must hold whatever the wait: every presence event arrives, and none is
// overtaken by a message sent after it. Observed through /metrics and the
// messages themselves; no assertion on speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STORM = 1100;       // members: rounds of up to several hundred writes each
const PARALLEL = 100;     // handshakes in flight
const SENDERS = 10;       // every STORM/SENDERS-th joiner sends a message right after joined

async function metrics(srv) {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const get = (name) => {
    const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
    assert.ok(m, `${name} in /metrics`);
    return Number(m[1]);
  };
  return {
    rounds: get('wschat_lazy_rounds_total'),
    writes: get('wschat_lazy_writes_total'),
    wait: get('wschat_lazy_wait_seconds'),
    waitMax: get('wschat_lazy_wait_seconds_max'),
    roundMax: get('wschat_lazy_round_seconds_max'),
  };
}

// A storm member: joins, counts what it gets, maybe sends one message.
function member(srv, i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(srv.url(`/ws?room=storm&name=s${i}`));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const s = data.toString();
      if (s.startsWith('{"type":"joined"')) {
        if (i % (STORM / SENDERS) === 0) ws.send(JSON.stringify({ type: 'send', room: 'storm', text: `from s${i}` }));
        resolve(ws);
      }
    });
  });
}

test('a join storm makes the lazy wait grow (capped at 1 s); a calm round returns it to 15 ms; presence complete and in order', { timeout: 240000 }, async () => {
  const srv = await startServer();
  const members = [];
  try {
    const before = await metrics(srv);
    assert.equal(before.wait, 0.015, 'a quiet server waits 15 ms');
    const watcher = await Chat.open(srv.url('/ws?room=storm&name=watcher'));
    await watcher.until((m) => m.type === 'joined');

    for (let i = 0; i < STORM; i += PARALLEL) {
      const batch = [];
      for (let k = i; k < Math.min(STORM, i + PARALLEL); k++) batch.push(member(srv, k));
      members.push(...(await Promise.all(batch)));
    }

    // Every join reaches the watcher, and each sender's join comes before
    // its message (sent after its `joined`, so after its presence was queued).
    const seen = (pred) => watcher.all.some(pred);
    for (let t = 0; t < 600; t++) {
      if (seen((m) => m.type === 'presence' && m.name === `s${STORM - 1}`) &&
          seen((m) => m.type === 'message' && m.text === `from s${STORM - STORM / SENDERS}`)) break;
      await sleep(100);
    }
    const joins = watcher.all.filter((m) => m.type === 'presence' && m.event === 'join').map((m) => m.name);
    assert.equal(new Set(joins).size, STORM, 'one presence join per member');
    assert.equal(joins.length, STORM, 'and no duplicates');
    const order = watcher.all.map((m) => (m.type === 'presence' ? `p:${m.name}` : m.type === 'message' ? `m:${m.from}` : ''));
    for (let i = 0; i < STORM; i += STORM / SENDERS) {
      const p = order.indexOf(`p:s${i}`), msg = order.indexOf(`m:s${i}`);
      assert.ok(p >= 0 && msg > p, `s${i}: presence join (${p}) before its message (${msg})`);
    }
    const counts = watcher.all.filter((m) => m.type === 'presence').map((m) => m.count);
    assert.deepEqual(counts, [...counts].sort((a, b) => a - b), 'counts in join order');

    const storm = await metrics(srv);
    assert.ok(storm.rounds > before.rounds && storm.writes > 0, `lazy rounds ran (${storm.rounds}, ${storm.writes} writes)`);
    console.log(`storm: ${storm.rounds} lazy rounds, ${storm.writes} writes, longest round ${storm.roundMax} s, longest wait ${storm.waitMax} s`);
    // How long the storm's rounds take depends on the machine (a quiet one
    // writes 1,100 sockets in a few ms), so the test checks the rule, not a
    // speed: the waits stay between 15 ms and the 1 s cap, and a storm whose
    // rounds cost more than 15 ms / 99 made a round wait longer than 15 ms
    // (the budget holds the round back while its members keep coming).
    assert.ok(storm.waitMax >= 0.015 && storm.waitMax <= 1.0, `waits between 15 ms and 1 s (${storm.waitMax} s)`);
    if (storm.roundMax * 99 > 0.05) assert.ok(storm.waitMax > 0.015, `rounds of up to ${storm.roundMax} s made the wait grow`);

    // Calm: once the budget wait has passed, one join in a small room is a
    // light round: back to 15 ms. Each event waits 300 ms after the round
    // before it: a round due right after another (b's leave just after its
    // join) may be held for 99x the last round's cost, which on a busy
    // machine under ASan can pass 15 ms; that is the rule, not a storm.
    const a = await Chat.open(srv.url('/ws?room=calm&name=a'));
    await a.until((m) => m.type === 'joined');
    let calm;
    for (let t = 0; t < 50; t++) {
      await sleep(200);
      const b = await Chat.open(srv.url(`/ws?room=calm&name=b${t}`));
      await b.until((m) => m.type === 'joined');
      await a.until((m) => m.type === 'presence' && m.name === `b${t}`);
      await sleep(300);
      b.ws.terminate();
      await a.until((m) => m.type === 'presence' && m.event === 'leave' && m.name === `b${t}`);
      calm = await metrics(srv);
      if (calm.wait === 0.015) break;
    }
    assert.equal(calm.wait, 0.015, 'a calm round returns the wait to 15 ms');
    a.ws.terminate();
    watcher.ws.terminate();
  } finally {
    for (const ws of members) ws.terminate();
    assert.equal(await srv.stop(), 0);
  }
});
