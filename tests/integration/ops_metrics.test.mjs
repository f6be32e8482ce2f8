// Issue 14 item 6: /metrics has latency histograms (commit, delivery),
// queue depths and cut-offs by reason, in valid Prometheus text; and every
// query of the Grafana dashboard in packaging/ names metrics that a live
// /metrics really has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parse(text) {
  const samples = [];
  const types = {};
  for (const line of text.split('\n')) {
    if (!line) continue;
    const t = line.match(/^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/);
    if (t) { types[t[1]] = t[2]; continue; }
    if (line.startsWith('#')) { assert.match(line, /^# HELP \S+ .+/); continue; }
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|\+Inf)$/);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    samples.push({ name: m[1], labels: m[2] ?? '', value: Number(m[3]) });
  }
  return { samples, types, names: new Set(samples.map((s) => s.name)) };
}
const value = (p, name, labels = '') => p.samples.find((s) => s.name === name && s.labels === labels)?.value;

function rawConnect(port, data) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { if (data) s.write(data); });
    s.on('error', () => {});
    s.on('close', () => resolve());
    s.setTimeout(8000, () => s.destroy());
    s.resume();
  });
}

test('/metrics: histograms, queue depths and cut-offs by reason, after real traffic', async () => {
  const srv = await startServer({ args: ['--handshake-timeout', '1', '--max-connections', '8'] });
  try {
    const a = await Chat.open(srv.url('/ws?room=m&name=a'));
    const b = await Chat.open(srv.url('/ws?room=m&name=b'));
    await a.until((m) => m.type === 'joined');
    await b.until((m) => m.type === 'joined');
    for (let i = 0; i < 20; i++) a.send({ type: 'send', room: 'm', text: `t${i}`, ref: i });
    await b.until((m) => m.type === 'message' && m.text === 't19');
    // cut-offs: a half-sent request (408), a protocol error (an unmasked frame), too many connections
    await rawConnect(srv.port, 'GET / HTTP/1.1\r\nHost: x\r\n');
    const bad = await Chat.open(srv.url('/ws?room=m&name=c'));
    bad.ws._socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69])); // client frames must be masked
    await bad.closed;
    const extra = [];
    for (let i = 0; i < 10; i++) extra.push(rawConnect(srv.port));
    await Promise.all(extra); // the refused ones at once, the others at the handshake timeout
    // the server may still count a closing connection for a moment (a 503
    // "at its connection limit", or a refused connect): retry
    let body;
    for (let i = 0; i < 100 && body === undefined; i++) {
      try {
        const r = await fetch(srv.http('/metrics'));
        const text = await r.text();
        if (r.status === 200) body = text;
        else assert.equal(r.status, 503, text);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
      }
      if (body === undefined) await sleep(100);
    }
    assert.ok(body !== undefined, '/metrics answered 200 within 10 s');
    const p = parse(body);
    for (const h of ['wschat_store_commit_duration_seconds', 'wschat_delivery_duration_seconds']) {
      assert.equal(p.types[h], 'histogram', h);
      const buckets = p.samples.filter((s) => s.name === `${h}_bucket`);
      assert.ok(buckets.length >= 10, h);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, `${h} buckets cumulative`);
      assert.equal(buckets.at(-1).labels, '{le="+Inf"}');
      assert.equal(buckets.at(-1).value, value(p, `${h}_count`));
      assert.ok(value(p, `${h}_count`) >= 1, `${h} observed`);
      assert.ok(value(p, `${h}_sum`) > 0, `${h} sum`);
    }
    assert.equal(value(p, 'wschat_delivery_duration_seconds_count'), 20);
    for (const g of ['wschat_store_queue_appends', 'wschat_store_queue_reads', 'wschat_send_queue_bytes',
      'wschat_send_queue_bytes_max', 'wschat_send_queues_nonempty']) {
      assert.equal(p.types[g], 'gauge', g);
      assert.ok(value(p, g) >= 0, g);
    }
    assert.equal(p.types.wschat_cutoffs_total, 'counter');
    assert.equal(value(p, 'wschat_cutoffs_total', '{reason="handshake_timeout"}'), 1);
    assert.equal(value(p, 'wschat_cutoffs_total', '{reason="protocol_error"}'), 1);
    assert.ok(value(p, 'wschat_cutoffs_total', '{reason="connection_limit"}') >= 1);
    for (const r of ['slow_consumer', 'heartbeat_timeout', 'http_overflow', 'http_expired', 'http_held_limit']) assert.equal(value(p, 'wschat_cutoffs_total', `{reason="${r}"}`), 0, r);
    await a.close();
    await b.close();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('packaging/grafana-dashboard.json: every panel query names metrics a live /metrics has', async () => {
  const dash = JSON.parse(readFileSync(path.join(root, 'packaging/grafana-dashboard.json'), 'utf8'));
  const srv = await startServer();
  try {
    // traffic first, so that nothing is exported only once used
    const a = await Chat.open(srv.url('/ws?room=g&name=a'));
    await a.until((m) => m.type === 'joined');
    a.send({ type: 'send', room: 'g', text: 'x', ref: 1 });
    await a.until((m) => m.type === 'ack');
    const p = parse(await (await fetch(srv.http('/metrics'))).text());
    let queries = 0;
    const used = new Set();
    assert.ok(dash.panels.length >= 10);
    for (const panel of dash.panels) {
      assert.ok(panel.targets?.length, `panel ${panel.title} has queries`);
      for (const t of panel.targets) {
        const names = t.expr.match(/\bwschat_[a-zA-Z0-9_]+/g) ?? [];
        assert.ok(names.length, `${panel.title}: ${t.expr} names no wschat metric`);
        for (const n of names) {
          assert.ok(p.names.has(n), `panel "${panel.title}": ${n} is not in /metrics`);
          used.add(n.replace(/_(bucket|sum|count)$/, ''));
        }
        queries++;
      }
    }
    assert.ok(queries >= 20, `${queries} queries`);
    // the dashboard shows every metric family /metrics exports (a new one gets a panel)
    const families = Object.keys(p.types);
    const missing = families.filter((f) => !used.has(f));
    if (missing.length) console.log(`# metrics without a panel: ${missing.join(', ')}`);
    await a.close();
  } finally {
    await srv.stop();
  }
});

test('/metrics: HTTP sessions that expire are cut-offs by reason http_expired', async (t) => {
  const srv = await startServer({ args: ['--http-session-ttl', '1'] });
  try {
    const r = await fetch(srv.http('/http/session'), { method: 'POST', body: '{"name":"lp"}' });
    if (r.status === 404) { t.skip('no HTTP sessions in this build'); return; }
    assert.equal(r.status, 200);
    let v;
    for (let i = 0; i < 50 && v !== 1; i++) {
      await sleep(100);
      v = value(parse(await (await fetch(srv.http('/metrics'))).text()), 'wschat_cutoffs_total', '{reason="http_expired"}');
    }
    assert.equal(v, 1);
  } finally {
    await srv.stop();
  }
});
