// A chat protocol client on the `ws` npm client (the independent
// implementation): every server message parsed, in order, awaitable.
//
//   const c = await Chat.open(srv.url('/ws?room=r'));   // rejects with {status} on an HTTP refusal
//   const w = await c.next('welcome');                   // the next message, of that type
//   c.send({ type: 'send', room: 'r', text: 'hi', ref: 1 });
//   const ack = await c.until((m) => m.ref === 1);       // skips until one matches
//   ack.raw                                              // the exact JSON text (not enumerable)
//   await c.expectError('not_member', 'h');
//   await c.seen((m) => m.text === 'x');                 // in c.all, even if next()/until() took it
//   await c.sync();                                      // a ping round trip: what came before the pong
//   const { code, reason } = await c.close();            // or await c.closed; c.closeInfo
//
// c.queue holds what has arrived and not been taken by next(); c.all holds
// every message ever received. Waits have deadlines (default 20 s); a wait
// on a closed connection with nothing queued fails at once.
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Chat {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.all = [];
    this.wake = null;
    this.closeInfo = null;
    ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'chat messages are text frames');
      const raw = data.toString('utf8');
      const m = JSON.parse(raw);
      Object.defineProperty(m, 'raw', { value: raw, enumerable: false });
      this.all.push(m);
      this.queue.push(m);
      this._wake();
    });
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      this._wake();
      resolve(this.closeInfo);
    }));
  }

  // Resolves once open; rejects with an Error carrying `status` when the
  // server answers the upgrade with an HTTP response instead.
  static open(url, opts = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts);
      const c = new Chat(ws);
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (req, res) => { req.destroy(); reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })); });
      ws.once('error', reject);
    });
  }

  // The same client over an HTTP/2 stream (RFC 8441) of `session`
  // (see h2ws.mjs); rejects with {status} on a refusal.
  static async openH2(session, path, headers = {}) {
    const { connectStream, wsOnStream } = await import('./h2ws.mjs');
    const { stream } = await connectStream(session, path, headers);
    const c = new Chat(wsOnStream(stream));
    c.stream = stream;
    return c;
  }

  _wake() { const w = this.wake; this.wake = null; if (w) w(); }

  // Waits for the next message or the close, until `deadline`; fails at
  // once on a closed connection or a passed deadline.
  async _park(deadline, what) {
    if (this.closeInfo) throw new Error(`closed (${this.closeInfo.code} ${this.closeInfo.reason}) waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    let timer;
    await new Promise((r) => { this.wake = r; timer = setTimeout(r, Math.max(1, deadline - Date.now())); });
    clearTimeout(timer);   // a pending timer would keep node alive after the tests
  }

  // An object is sent as JSON, a string as it is.
  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  // The next message; with `type`, it must be of that type.
  async next(type, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) await this._park(deadline, type ?? 'a message');
    const m = this.queue.shift();
    if (type && m.type !== type) throw new Error(`expected ${type}, got ${m.raw.length > 2000 ? m.raw.slice(0, 2000) + '...' : m.raw}`);
    return m;
  }

  // Skips messages until one matches.
  async until(pred, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.next(undefined, Math.max(1, deadline - Date.now()));
      if (pred(m)) return m;
    }
  }

  // A message matching pred has arrived, now or earlier, whether or not
  // next() or until() has taken it from the queue. For a message whose
  // arrival races with other waits (another client's send during a resume).
  async seen(pred, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.all.find(pred);
      if (m) return m;
      await this._park(deadline, 'a message');
    }
  }

  // The next message is the error `code` with a string message and with
  // `ref` (deepEqual), or without a ref when `ref` is undefined.
  async expectError(code, ref) {
    const m = await this.next('error');
    assert.equal(m.code, code, m.raw);
    assert.equal(typeof m.message, 'string', m.raw);
    if (ref === undefined) assert.equal('ref' in m, false, m.raw);
    else assert.deepEqual(m.ref, ref, m.raw);
    return m;
  }

  // As expectError, and the error is exactly {type, code, message[, ref]}
  // with a non-empty message.
  async expectExactError(code, ref) {
    const m = await this.expectError(code, ref);
    assert.ok(m.message.length > 0, m.raw);
    assert.deepEqual(Object.keys(m).sort(), ref === undefined ? ['code', 'message', 'type'] : ['code', 'message', 'ref', 'type'], m.raw);
    return m;
  }

  // Nothing arrives for ms.
  async silence(ms = 300) {
    await sleep(ms);
    assert.deepEqual(this.queue, [], 'unexpected messages');
  }

  // A ping round trip: everything the server sent before it has arrived.
  // Returns what came before the pong.
  async sync() {
    const ref = `sync-${Math.random()}`;
    this.send({ type: 'ping', ref });
    const out = [];
    for (;;) {
      const m = await this.next();
      if (m.type === 'pong' && m.ref === ref) return out;
      out.push(m);
    }
  }

  // Nothing but the pong of a ping round trip.
  async quiet(what = 'unexpected messages') { assert.deepEqual(await this.sync(), [], what); }

  close() { this.ws.close(1000); return this.closed; }
}
