// The soak: a mixed chat workload against a real wschat for N minutes,
// every delivery verified, the server's RSS, open descriptors and CPU
// sampled every 10 s.
//
//   node tests/soak/soak.mjs --minutes 60 [--bin build/wschat] [--out FILE]
//   make soak SOAK_MIN=60
//
// Workload (a fixed population, so a server that keeps nothing should stay
// flat): STABLE clients in 3 of ROOMS rooms each for the whole run, sending,
// typing, DMing one another, paging history, leaving a room and rejoining it
// with `since`; some of them stop reading for seconds at a time (slow
// consumers). Churn clients connect to /ws/ROOM or /ws?room=, send, and go,
// a third of them coming back with ?since= (which must answer
// "recovered":true and replay exactly what they missed). Hogs request
// history without reading until the server cuts them off (1013). Malformed
// input every second: unmasked frames (1002), invalid UTF-8 (1007), binary
// on chat (1003), oversized messages (1009), non-JSON (`bad_request`),
// broken HTTP (400).
//
// Verified: every member receives every message of its rooms exactly once,
// in id order, with the text and sender that were acknowledged; every
// resume replays exactly the missed ids; every DM arrives once; every
// history page is ascending, dense and matches the acknowledged texts;
// every malformed input gets its close code or error. Exit status 1 on any
// verification failure or when memory or descriptors grow after warm-up.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { RawWS, frame, OP, text as textFrame } from '../lib/rawws.mjs';
import { request } from '../lib/rawhttp.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const MINUTES = Number(arg('minutes', process.env.SOAK_MIN ?? 1));
const BIN = arg('bin', process.env.WSCHAT_BIN ?? path.join(root, 'build/wschat'));
const OUT = arg('out', null);
const SAMPLE_MS = Number(arg('sample-ms', 10000));
const ROOMS = 20;
const STABLE = 200;
const SLOW = 10;              // of the stable clients, the ones that pause reading
const SEND_PER_S = 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const room = (i) => `soak-${i}`;

// --- verification state -------------------------------------------------------
const failures = [];
function fail(msg) {
  failures.push(msg);
  if (failures.length <= 30) console.error(`VERIFY FAIL: ${msg}`);
}
const acked = new Map();      // "room#id" -> text, from acks
const received = new Map();   // "room#id" -> text, first seen (checked against acked)
const maxAcked = new Map();   // room -> highest acked id
const pendingDm = new Map();  // text -> recipient name
const stats = {
  sent: 0, acked: 0, delivered: 0, dms: 0, dmsReceived: 0, typing: 0, history: 0,
  resumes: 0, churn: 0, malformed: 0, hogsCut: 0, hogsNotCut: 0, pauses: 0, errors: 0,
};
let stopping = false;
// Session tokens by identity: every short-lived client is one of a fixed
// population of users that comes back with ?session=TOKEN, as the web page
// does, so the server's session table stays the same size (a fresh name
// per connection would grow it by design, up to its 100,000 cap).
const tokens = new Map();
const who = (identity, name = true) => {
  const t = tokens.get(identity);
  return t ? `session=${t}` : name ? `name=${identity}` : '';
};

function checkText(r, id, txt) {
  const k = `${r}#${id}`;
  const a = acked.get(k);
  if (a !== undefined && a !== txt) fail(`${k}: text ${JSON.stringify(txt)} but acked ${JSON.stringify(a)}`);
  const prev = received.get(k);
  if (prev === undefined) received.set(k, txt);
  else if (prev !== txt) fail(`${k}: two texts seen`);
}

function onAck(r, id, txt) {
  const k = `${r}#${id}`;
  if (acked.has(k)) fail(`${k} acked twice`);
  acked.set(k, txt);
  const rec = received.get(k);
  if (rec !== undefined && rec !== txt) fail(`${k}: received ${JSON.stringify(rec)} but acked ${JSON.stringify(txt)}`);
  if ((maxAcked.get(r) ?? 0) < id) maxAcked.set(r, id);
  stats.acked++;
}

// A chat client that checks what it is sent: per room, ids consecutive after
// the first one (ids of a room are dense), resumes exact.
class Client {
  constructor(name, kind, identity = null) {
    this.name = name;
    this.identity = identity;   // keeps its session token in `tokens`
    this.kind = kind;
    this.rooms = new Map();   // room -> { last, joined, since, resumed }
    this.refs = new Map();    // ref -> { room, text } | { dm }
    this.seq = 0;
    this.open = false;
    this.closeCode = null;
    this.pongs = [];
    this.histBefore = [];   // the `before` of each history request in flight, in order
  }

  connect(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      this.ws = ws;
      ws.on('open', () => { this.open = true; resolve(this); });
      ws.on('error', (e) => { if (!this.open) reject(e); });
      ws.on('close', (code) => { this.open = false; this.closeCode = code; if (this.onclose) this.onclose(code); });
      ws.on('message', (data) => {
        let m;
        try { m = JSON.parse(data.toString('utf8')); } catch (e) { fail(`${this.name}: bad message ${e.message}`); return; }
        if (m.type === 'welcome' && this.identity) tokens.set(this.identity, m.session);
        this.handle(m);
      });
    });
  }

  handle(m) {
    switch (m.type) {
      case 'welcome': this.welcome = m; break;
      case 'joined': {
        const st = this.rooms.get(m.room) ?? {};
        st.joined = true;
        st.lastId = m.last_id;
        if (st.since !== undefined && st.since !== null) {
          stats.resumes++;
          if (m.recovered !== true) fail(`${this.name} ${m.room}: resume since ${st.since} not recovered (last_id ${m.last_id})`);
          st.last = st.since;   // the replay must continue from since + 1
        } else {
          st.last = null;       // the first message fixes the base
        }
        st.since = null;
        this.rooms.set(m.room, st);
        break;
      }
      case 'left': {
        const st = this.rooms.get(m.room);
        this.rooms.delete(m.room);
        // A stable client comes back, resuming after the last id it saw.
        if (this.kind === 'stable' && !stopping) {
          const since = st?.last ?? undefined;
          setTimeout(() => { if (!stopping && !this.rooms.has(m.room)) this.join(m.room, since); }, 200 + Math.random() * 2000);
        }
        break;
      }
      case 'message': {
        const st = this.rooms.get(m.room);
        if (!st || !st.joined) { fail(`${this.name}: message in ${m.room} before joined`); break; }
        if (st.last !== null && m.id !== st.last + 1) {
          fail(`${this.name} ${m.room}: id ${m.id} after ${st.last} (${m.id <= st.last ? 'duplicate' : 'lost'})`);
        }
        st.last = m.id;
        checkText(m.room, m.id, m.text);
        const parts = m.text.split(':');
        if (parts[0] === 'm' && parts[1] !== m.from) fail(`${m.room}#${m.id}: from ${m.from}, text says ${parts[1]}`);
        stats.delivered++;
        break;
      }
      case 'ack': {
        const r = this.refs.get(m.ref);
        if (!r) { fail(`${this.name}: ack for unknown ref ${m.ref}`); break; }
        this.refs.delete(m.ref);
        if (r.room) {
          if (m.room !== r.room || !Number.isInteger(m.id)) fail(`${this.name}: ack ${JSON.stringify(m)} for ${r.room}`);
          else onAck(r.room, m.id, r.text);
        }
        break;
      }
      case 'dm': {
        const to = pendingDm.get(m.text);
        if (to === undefined) fail(`${this.name}: unexpected or duplicate dm ${m.text}`);
        else if (to.toLowerCase() !== this.name.toLowerCase()) fail(`dm for ${to} reached ${this.name}`);
        else { pendingDm.delete(m.text); stats.dmsReceived++; }
        break;
      }
      case 'history': {
        stats.history++;
        const ms = m.messages;
        const before = this.histBefore.shift();
        for (let i = 0; i < ms.length; i++) {
          if (i > 0 && ms[i].id !== ms[i - 1].id + 1) fail(`${this.name} history ${m.room}: ids ${ms[i - 1].id}, ${ms[i].id}`);
          if (before !== undefined && ms[i].id >= before) fail(`history ${m.room}: id ${ms[i].id} not before ${this.histBefore}`);
          checkText(m.room, ms[i].id, ms[i].text);
        }
        break;
      }
      case 'pong': { const w = this.pongs.shift(); if (w) w(); break; }
      case 'presence': case 'typing': break;
      case 'error':
        if (this.expectError && m.code === this.expectError) { this.expectError = null; stats.malformed++; break; }
        fail(`${this.name}: error ${JSON.stringify(m)}`);
        break;
      default: fail(`${this.name}: unknown type ${m.type}`);
    }
  }

  send(obj) { if (this.open) this.ws.send(JSON.stringify(obj)); }

  say(r) {
    const ref = `${this.name}-${++this.seq}`;
    const txt = `m:${this.name}:${this.seq}:${r}`;
    this.refs.set(ref, { room: r, text: txt });
    this.send({ type: 'send', room: r, text: txt, ref });
    stats.sent++;
  }

  dm(to) {
    const ref = `${this.name}-${++this.seq}`;
    const txt = `d:${this.name}:${this.seq}:${to}`;
    pendingDm.set(txt, to);
    this.refs.set(ref, { dm: to });
    this.send({ type: 'dm', to, text: txt, ref });
    stats.dms++;
  }

  join(r, since) {
    this.rooms.set(r, { joined: false, since, last: null });
    this.send(since === undefined ? { type: 'join', room: r } : { type: 'join', room: r, since });
  }

  sync(timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no pong`)), timeoutMs);
      this.pongs.push(() => { clearTimeout(t); resolve(); });
      this.send({ type: 'ping' });
    });
  }

  close() { try { this.ws.close(1000); } catch { /* already */ } }
}

// --- the server and its samples ----------------------------------------------------
function procSample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);   // utime + stime
  return { rssKb, fds, ticks };
}

async function main() {
  if (!existsSync(BIN)) throw new Error(`no server binary at ${BIN} (make build)`);
  process.env.WSCHAT_BIN = BIN;
  const srv = await startServer({ args: ['--max-connections', '5000'] });
  const pid = srv.proc.pid;
  console.log(`soak: ${MINUTES} min against ${BIN} pid ${pid} port ${srv.port}`);
  const url = (p) => srv.url(p);

  // Stable clients: each in 3 rooms, for the whole run.
  const stable = [];
  for (let i = 0; i < STABLE; i++) {
    const c = new Client(`st${i}`, 'stable');
    await c.connect(url(`/ws?name=st${i}`));
    c.onclose = (code) => { if (!stopping) fail(`stable ${c.name} closed ${code}`); };
    for (let k = 0; k < 3; k++) c.join(room((i + k * 7) % ROOMS));
    stable.push(c);
  }
  await Promise.all(stable.map((c) => c.sync()));

  const timers = [];
  const every = (ms, fn) => timers.push(setInterval(() => {
    if (stopping) return;
    Promise.resolve().then(fn).catch((e) => { stats.errors++; if (stats.errors <= 20) console.error(`action error: ${e.message}`); });
  }, ms));
  const joinedRooms = (c) => [...c.rooms.entries()].filter(([, s]) => s.joined && !s.leaving).map(([r]) => r);

  // Sends: SEND_PER_S per second from random stable clients.
  const sendStart = Date.now();
  let sendCount = 0;
  every(10, () => {
    const due = Math.floor((Date.now() - sendStart) * SEND_PER_S / 1000) - sendCount;
    for (let k = 0; k < due; k++) {
      sendCount++;
      const c = pick(stable);
      const rs = joinedRooms(c);
      if (rs.length) c.say(pick(rs));
    }
  });
  every(100, () => { const a = pick(stable); let b = pick(stable); if (b === a) b = stable[(stable.indexOf(a) + 1) % STABLE]; a.dm(b.name); });
  every(50, () => { const c = pick(stable); const rs = joinedRooms(c); if (rs.length) { c.send({ type: 'typing', room: pick(rs) }); stats.typing++; } });
  every(200, () => {
    const c = pick(stable);
    const rs = joinedRooms(c);
    if (!rs.length) return;
    const r = pick(rs);
    const top = maxAcked.get(r) ?? 0;
    const before = top > 2 ? 1 + Math.floor(Math.random() * top) : undefined;
    c.histBefore.push(before);
    c.send({ type: 'history', room: r, before, limit: 1 + Math.floor(Math.random() * 200) });
  });
  // Leave a room and come back with since.
  every(500, () => {
    const c = pick(stable);
    const rs = joinedRooms(c);
    if (!rs.length) return;
    const r = pick(rs);
    c.rooms.get(r).leaving = true;
    c.send({ type: 'leave', room: r });   // the rejoin follows its `left`
  });
  // Slow consumers: stop reading for 2-6 s now and then.
  every(3000, () => {
    const c = stable[Math.floor(Math.random() * SLOW)];
    if (c.paused) return;
    c.paused = true;
    stats.pauses++;
    c.ws._socket.pause();
    setTimeout(() => { c.ws._socket.resume(); c.paused = false; }, 2000 + Math.random() * 4000);
  });

  // Churn: short-lived clients, a third of them resuming.
  let churnSeq = 0;
  async function churnOne() {
    const n = ++churnSeq;
    const r = room(n % ROOMS);
    const name = `ch${n % 300}`;
    const c = new Client(name, 'churn', name);
    c.rooms.set(r, { joined: false, last: null });
    await c.connect(n % 2 ? url(`/ws/${r}?${who(name)}`) : url(`/ws?${who(name)}&room=${r}`));
    stats.churn++;
    for (let k = 0; k < 3; k++) { await sleep(300 + Math.random() * 1500); if (c.rooms.get(r)?.joined) c.say(r); }
    await sleep(500);
    const last = c.rooms.get(r)?.last;
    c.close();
    if (n % 3 === 0 && last !== null && last !== undefined && !stopping) {
      await sleep(500 + Math.random() * 2000);
      if (stopping) return;
      const back = new Client(`${name}b`, 'churn', `${name}b`);
      back.rooms.set(r, { joined: false, last: null, since: last });
      await back.connect(url(`/ws?${who(`${name}b`)}&room=${r}&since=${last}`));
      await sleep(1000 + Math.random() * 2000);
      await back.sync();
      back.close();
    }
  }
  every(200, churnOne);

  // Hogs: history requests without reading, until the server cuts them off.
  every(60000, async () => {
    const r = room(0);
    const c = new Client('hog', 'hog', 'hog');
    await c.connect(url(`/ws?${who('hog')}&room=${r}`));
    c.ws._socket.pause();
    c.ws.on('message', () => {});  // whatever arrives is not checked
    c.handle = () => {};
    for (let k = 0; k < 400; k++) c.send({ type: 'history', room: r, limit: 200 });
    await sleep(8000);
    c.ws._socket.resume();
    const deadline = Date.now() + 20000;
    while (c.open && Date.now() < deadline) await sleep(100);
    // Cut off: 1013 when the close frame still got through, 1006 when the
    // server had to drop the connection with its queue full (the frame
    // never reaches a client that reads nothing).
    if (c.closeCode === 1013 || c.closeCode === 1006) stats.hogsCut++;
    else { stats.hogsNotCut++; c.close(); }
  });

  // Malformed input, one a second, in turn.
  let bad = 0;
  every(1000, async () => {
    const kind = bad++ % 6;
    const r = room(bad % ROOMS);
    if (kind === 0 || kind === 1) {
      const id = `raw${kind}`;
      const ws = await RawWS.connect(srv.port, { path: `/ws/${r}?${who(id)}` });
      await ws.send(kind === 0 ? frame({ opcode: OP.TEXT, payload: 'x', mask: false })
        : textFrame(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])));
      const want = kind === 0 ? 1002 : 1007;
      for (;;) {
        const ev = await ws.next(10000);
        if (ev.kind === 'close') { if (ev.code !== want) fail(`malformed ${kind}: close ${ev.code}, want ${want}`); break; }
        if (ev.kind === 'end') { fail(`malformed ${kind}: TCP closed without a close frame`); break; }
        if (ev.kind === 'message') {
          try { const m = JSON.parse(ev.data.toString('utf8')); if (m.type === 'welcome') tokens.set(id, m.session); } catch { /* not ours */ }
        }
      }
      ws.destroy();
      stats.malformed++;
    } else if (kind === 2 || kind === 3) {
      const c = new Client(`bad${bad}`, 'bad', `bad${kind}`);
      c.handle = () => {};
      await c.connect(url(`/ws/${r}?${who(`bad${kind}`)}`));
      const closed = new Promise((res) => { c.onclose = res; });
      if (kind === 2) c.ws.send(Buffer.from('bin'), { binary: true });
      else c.ws.send('x'.repeat(70 * 1024));
      const code = await Promise.race([closed, sleep(10000).then(() => 'timeout')]);
      const want = kind === 2 ? 1003 : 1009;
      if (code !== want) fail(`malformed ${kind}: close ${code}, want ${want}`);
      c.close();
      stats.malformed++;
    } else if (kind === 4) {
      const c = new Client(`bad${bad}`, 'bad', 'bad4');
      await c.connect(url(`/ws?${who('bad4')}`));
      c.expectError = 'bad_request';
      c.ws.send('{"type":');
      await c.sync();
      if (c.expectError) fail('non-JSON: no bad_request');
      c.close();
    } else {
      const res = await request(srv.port, 'GET /ws/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      if (res.status !== 400) fail(`broken upgrade: status ${res.status}, want 400`);
      stats.malformed++;
    }
  });

  // Samples.
  const samples = [];
  let prev = procSample(pid);
  const hz = 100;
  const t0 = Date.now();
  const endAt = t0 + MINUTES * 60000;
  console.log('| t (s) | RSS (MiB) | fds | CPU % | sent | acked | delivered | DMs | history | resumes | churn | malformed | hogs cut | failures |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  while (Date.now() < endAt) {
    await sleep(Math.min(SAMPLE_MS, Math.max(0, endAt - Date.now())));
    const s = procSample(pid);
    const row = {
      t: Math.round((Date.now() - t0) / 1000), rssMiB: s.rssKb / 1024, fds: s.fds,
      cpu: ((s.ticks - prev.ticks) / hz) / (SAMPLE_MS / 1000) * 100, ...stats, failures: failures.length,
    };
    prev = s;
    samples.push(row);
    console.log(`| ${row.t} | ${row.rssMiB.toFixed(1)} | ${row.fds} | ${row.cpu.toFixed(0)} | ${row.sent} | ${row.acked} | ${row.delivered} | ${row.dms} | ${row.history} | ${row.resumes} | ${row.churn} | ${row.malformed} | ${row.hogsCut} | ${row.failures} |`);
  }

  // Quiesce, then the end checks.
  stopping = true;
  for (const t of timers) clearInterval(t);
  await sleep(8000);
  for (const c of stable) if (c.paused) { c.ws._socket.resume(); c.paused = false; }
  await Promise.all(stable.map((c) => c.sync()));
  await sleep(500);
  await Promise.all(stable.map((c) => c.sync()));
  for (const c of stable) {
    for (const [r, st] of c.rooms) {
      if (!st.joined) continue;
      const top = maxAcked.get(r) ?? 0;
      // >=: a churn client may close before the ack of its last message.
      if (st.last !== null && st.last < top) fail(`${c.name} ${r}: ends at ${st.last}, room at ${top}`);
    }
    if (c.refs.size) fail(`${c.name}: ${c.refs.size} requests never acknowledged`);
  }
  let dmLost = 0;
  for (const [, to] of pendingDm) if (to.startsWith('st')) dmLost++;
  if (dmLost) fail(`${dmLost} DMs to stable clients never arrived`);
  for (const [k, txt] of acked) { const rec = received.get(k); if (rec === undefined) fail(`${k} acked, never delivered`); else if (rec !== txt) fail(`${k} text differs`); }

  // Flatness: after warm-up (the first fifth, at least one sample), RSS and fds.
  const warm = samples[Math.min(samples.length - 1, Math.max(1, Math.floor(samples.length / 5)))];
  const after = samples.slice(samples.indexOf(warm));
  const maxRss = Math.max(...after.map((s) => s.rssMiB));
  const last = samples[samples.length - 1];
  const fdsAfter = after.map((s) => s.fds);
  const growth = last.rssMiB - warm.rssMiB;
  const summary = {
    minutes: MINUTES, samples: samples.length, stats, failures: failures.length,
    rssWarmMiB: +warm.rssMiB.toFixed(1), rssEndMiB: +last.rssMiB.toFixed(1), rssMaxAfterWarmMiB: +maxRss.toFixed(1),
    fdsWarm: warm.fds, fdsEnd: last.fds, fdsMin: Math.min(...fdsAfter), fdsMax: Math.max(...fdsAfter),
    cpuMean: +(samples.reduce((a, s) => a + s.cpu, 0) / samples.length).toFixed(1),
    acked: acked.size, verifiedDeliveries: stats.delivered,
  };
  const rc = await srv.stop();
  summary.serverExit = rc;
  if (rc !== 0) fail(`server exit ${rc}`);
  const errLines = srv.log.split('\n').filter((l) => /^(error|fatal)/i.test(l));
  summary.serverErrorLines = errLines.length;
  let ok = failures.length === 0;
  // "Flat": the growth after warm-up stays under 10 % (and 8 MiB), and the
  // descriptors stay within the churn population's swing.
  if (growth > Math.max(8, warm.rssMiB * 0.1)) { ok = false; console.error(`RSS grew ${growth.toFixed(1)} MiB after warm-up`); }
  if (last.fds > warm.fds + 100) { ok = false; console.error(`fds grew ${warm.fds} -> ${last.fds}`); }
  console.log(JSON.stringify(summary, null, 1));
  if (OUT) writeFileSync(OUT, JSON.stringify({ summary, samples, failures: failures.slice(0, 100) }, null, 1));
  console.log(ok ? 'soak: PASS' : `soak: FAIL (${failures.length} verification failures)`);
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(2); });
