// A chat client on HTTP sessions (POST /http/session, /http/send, GET
// /http/poll, /http/longpoll), on Node's fetch: the independent HTTP client.
//
//   const h = await HttpChat.open(srv, { name: 'bob' });  // h.welcome, h.token
//   const r = await h.send({ type: 'join', room: 'r' });  // { status, body (parsed JSON or text) }
//   const ev = await h.poll();                            // { status, events } (ack = h.ack)
//   h.startLongPoll();                                    // a loop: events into h.queue, acked
//   const m = await h.next('message');                    // as tests/lib/chat.mjs
//   await h.stopLongPoll();
//
// h.all holds every event received, in order.
import assert from 'node:assert/strict';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function parse(res) {
  const text = await res.text();
  let body = text;
  if ((res.headers.get('content-type') || '').startsWith('application/json')) body = JSON.parse(text);
  return { status: res.status, body, text, headers: res.headers };
}

export class HttpChat {
  constructor(srv, welcome) {
    this.base = srv.http('');
    this.welcome = welcome;
    this.token = welcome.session;
    this.ack = 0;
    this.queue = [];
    this.all = [];
    this.wake = null;
    this.looping = false;
    this.loopDone = null;
    this.loopError = null;
  }

  static async create(srv, body) {
    const res = await fetch(srv.http('/http/session'), {
      method: 'POST',
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return parse(res);
  }

  static async open(srv, body) {
    const r = await HttpChat.create(srv, body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.type, 'welcome');
    return new HttpChat(srv, r.body);
  }

  url(path, params = {}) {
    const q = new URLSearchParams({ session: this.token, ...params });
    return `${this.base}${path}?${q}`;
  }

  async send(obj) {
    const res = await fetch(this.url('/http/send'), {
      method: 'POST',
      body: typeof obj === 'string' ? obj : JSON.stringify(obj),
    });
    return parse(res);
  }

  // One poll (or long poll with `timeout`), acknowledging this.ack; the
  // events are checked dense and in order, and this.ack advances.
  async poll({ long = false, timeout, ack = this.ack, signal } = {}) {
    const params = { ack: String(ack) };
    if (timeout !== undefined) params.timeout = String(timeout);
    const res = await fetch(this.url(long ? '/http/longpoll' : '/http/poll', params), { signal });
    const r = await parse(res);
    if (r.status === 200) {
      assert.ok(Array.isArray(r.body), r.text);
      // dense: consecutive, and the first right after ack (only an overflow,
      // which drops the queue, makes a gap before its error event)
      let expect = r.body.length && r.body[0].type === 'error' && r.body[0].code === 'overflow' ? r.body[0].seq : ack + 1;
      for (const e of r.body) {
        assert.equal(e.seq, expect, `seq dense: ${r.text}`);
        expect++;
      }
      if (r.body.length) this.ack = r.body[r.body.length - 1].seq;
      r.events = r.body;
    }
    return r;
  }

  startLongPoll(timeout = 25) {
    this.looping = true;
    this.controller = new AbortController();
    this.loopDone = (async () => {
      while (this.looping) {
        let r;
        try {
          r = await this.poll({ long: true, timeout, signal: this.controller.signal });
        } catch (e) {
          if (!this.looping) return;
          this.loopError = e;
          this._wake();
          return;
        }
        if (r.status !== 200) { this.loopError = new Error(`poll ${r.status}: ${r.text}`); this._wake(); return; }
        for (const e of r.events) { this.all.push(e); this.queue.push(e); }
        this._wake();
      }
    })();
  }

  async stopLongPoll() {
    this.looping = false;
    this.controller?.abort();
    await this.loopDone;
  }

  _wake() { const w = this.wake; this.wake = null; if (w) w(); }

  async next(type, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.loopError) throw this.loopError;
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${type ?? 'an event'}`);
      let timer;
      await new Promise((r) => { this.wake = r; timer = setTimeout(r, Math.max(1, deadline - Date.now())); });
      clearTimeout(timer);
    }
    const m = this.queue.shift();
    if (type) assert.equal(m.type, type, JSON.stringify(m));
    return m;
  }

  async until(pred, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.next(undefined, Math.max(1, deadline - Date.now()));
      if (pred(m)) return m;
    }
  }
}

export { sleep };
