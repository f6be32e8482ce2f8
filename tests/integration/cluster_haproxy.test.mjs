// The HAProxy configuration of docs/SCALING.md, as written there (only the
// ports changed), in front of three nodes on one real redis-server: clients
// spread over the nodes and share one chat; with Redis stopped the health
// check takes the nodes out (503 through the balancer) and puts them back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, freePort, killAtEnd } from '../lib/server.mjs';
import { startRedis } from '../lib/redis.mjs';
import { Chat } from '../lib/chat.mjs';
import { HttpChat } from '../lib/httpchat.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let rd, lb, lbPort;
const nodes = [];

function documentedConfig() {
  const doc = readFileSync(path.join(root, 'docs/SCALING.md'), 'utf8');
  const m = doc.match(/```\n(# \/etc\/haproxy\/haproxy\.cfg[\s\S]*?)```/);
  assert.ok(m, 'docs/SCALING.md has the HAProxy configuration');
  return m[1];
}

async function status(url) {
  try { return (await fetch(url)).status; } catch { return 0; }
}

async function until(fn, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

// HAProxy on the documented configuration (ports changed; `edit` may
// change more), started in the foreground; stopped by the caller.
async function startHaproxy(edit = (c) => c) {
  const port = await freePort();
  let cfg = documentedConfig().replace('bind :8000', `bind 127.0.0.1:${port}`);
  nodes.forEach((n, i) => { cfg = cfg.replace(`127.0.0.1:${8001 + i}`, `127.0.0.1:${n.port}`); });
  cfg = edit(cfg);
  const dir = mkdtempSync(path.join(tmpdir(), 'wschat-haproxy-'));
  writeFileSync(path.join(dir, 'haproxy.cfg'), cfg);
  const proc = killAtEnd(spawn('haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  proc.log = '';
  proc.stdout.on('data', (d) => { proc.log += d; });
  proc.stderr.on('data', (d) => { proc.log += d; });
  await until(async () => (await status(`http://127.0.0.1:${port}/healthz`)) === 200, `haproxy up: ${proc.log}`);
  return { proc, port };
}

async function stopHaproxy(p) {
  if (p && p.exitCode === null) { p.kill('SIGTERM'); await new Promise((r) => p.on('exit', r)); }
}

before(async () => {
  rd = await startRedis();
  for (let i = 0; i < 3; i++) nodes.push(await startServer({ args: ['--redis', rd.url] }));
  ({ proc: lb, port: lbPort } = await startHaproxy());
});

after(async () => {
  await stopHaproxy(lb);
  for (const n of nodes) await n.stop();
  await rd.stop();
});

test('through the documented HAProxy config: clients spread over the nodes, one chat', async () => {
  const cs = [];
  for (let i = 0; i < 6; i++) {
    const c = await Chat.open(`ws://127.0.0.1:${lbPort}/ws?room=lb&name=u${i}`);
    await c.next('welcome');
    await c.next('joined');
    cs.push(c);
  }
  const per = [];
  for (const n of nodes) {
    const text = await (await fetch(n.http('/metrics'))).text();
    per.push(Number(text.match(/^wschat_chat_clients (\d+)/m)[1]));
  }
  assert.deepEqual(per, [2, 2, 2], 'leastconn spread the six over the three nodes');
  const last = cs[5].all.find((m) => m.type === 'joined');
  assert.equal(last.members.length, 6, 'joined.members covers every node');
  cs[0].send({ type: 'send', room: 'lb', text: 'via haproxy', ref: 1 });
  for (const c of cs) assert.equal((await c.until((m) => m.type === 'message')).text, 'via haproxy');
  for (const c of cs) await c.close();
});

test('an HTTP long-polling client through a round-robin balancer chats without sticky sessions', async () => {
  // The documented configuration with `balance roundrobin`: consecutive
  // requests of one session go to different nodes, none sticks.
  const rr = await startHaproxy((c) => c.replace('balance leastconn', 'balance roundrobin'));
  try {
    const counters = async () => Promise.all(nodes.map(async (n) => {
      const text = await (await fetch(n.http('/metrics'))).text();
      return Number(text.match(/^wschat_http_polls_total (\d+)/m)[1]);
    }));
    const before = await counters();
    const lbSrv = { http: (p) => `http://127.0.0.1:${rr.port}${p}` };
    const h = await HttpChat.open(lbSrv, { name: 'lbpoll' });
    const j = await h.send({ type: 'join', room: 'lbh' });
    assert.equal(j.status, 200, j.text);
    const c = await Chat.open(`ws://127.0.0.1:${rr.port}/ws?room=lbh`);
    await c.next('welcome');
    await c.next('joined');
    h.startLongPoll(5);
    for (let i = 0; i < 10; i++) {
      c.send({ type: 'send', room: 'lbh', text: `ws${i}`, ref: i });
      const r = await h.send({ type: 'send', room: 'lbh', text: `http${i}`, ref: `h${i}` });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.type, 'ack', r.text);
    }
    const msgs = () => h.all.filter((e) => e.type === 'message');
    while (msgs().length < 20) await h.next(undefined, 20000);
    await h.stopLongPoll();
    assert.deepEqual(msgs().map((m) => m.id), Array.from({ length: 20 }, (_, k) => k + 1), 'every message once, in order');
    const texts = msgs().map((m) => m.text);
    for (let i = 0; i < 10; i++) assert.ok(texts.includes(`ws${i}`) && texts.includes(`http${i}`));
    const after = await counters();
    const served = after.filter((v, i) => v > before[i]).length;
    assert.equal(served, 3, `polls were answered by every node (${before} -> ${after})`);
    await c.close();
  } finally {
    await stopHaproxy(rr.proc);
  }
});

test('Redis stopped: the health check takes the nodes out (503 through the balancer), then back', async () => {
  rd.pause();
  try {
    await until(async () => (await status(`http://127.0.0.1:${lbPort}/healthz`)) === 503, 'nodes out', 20000);
  } finally {
    rd.resume();
  }
  await until(async () => (await status(`http://127.0.0.1:${lbPort}/healthz`)) === 200, 'nodes back', 20000);
  // The balancer takes a node back after its check passes; a client that
  // lands on a node still reconnecting gets `unavailable` (tested in
  // cluster_redis): wait for every node, then connect.
  for (const n of nodes) await until(async () => (await status(n.http('/healthz'))) === 200, 'node back', 20000);
  await sleep(2500);   /* two check intervals: every server is UP in HAProxy again */
  const c = await Chat.open(`ws://127.0.0.1:${lbPort}/ws?room=lb2`);
  await c.next('welcome');
  await c.next('joined');
  await c.close();
});
