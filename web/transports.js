/* wschat — the transports the page can use, and what each one costs.
 *
 * WebSocket is the browser's own. HttpSocket carries the same JSON protocol
 * over HTTP sessions (docs/PROTOCOL.md, "HTTP sessions") with the
 * WebSocket's shape — readyState, send(text), close(), onopen, onmessage,
 * onclose — so app.js drives either the same way:
 *   long polling  GET /http/longpoll held by the server until an event
 *   polling       GET /http/poll every N seconds
 * Client messages go as POST /http/send; the reply is the response body.
 * Events are acknowledged with the next poll's ack=, so a lost response is
 * fetched again, never lost.
 *
 * Stats: per transport, the requests made, the empty responses, the bytes
 * sent and received (estimated for headers: the request line and headers
 * this page sets, the status line and headers it gets back; for WebSocket
 * the handshake and each frame's header), and message latency (arrival
 * time minus the server's `ts`, for live messages). Shown by app.js.
 */
(function () {
  'use strict';

  const LONGPOLL_TIMEOUT = 25;      // s, the server holds a long poll this long
  const RETRY_MAX = 3;              // failed polls in a row before the session is given up
  const LATENCY_KEEP = 200;         // latencies kept for the percentiles

  const enc = new TextEncoder();
  const byteLen = (s) => enc.encode(s).length;

  const stats = {};
  function statsFor(kind) {
    if (!stats[kind]) stats[kind] = { requests: 0, empty: 0, bytesOut: 0, bytesIn: 0, messages: 0, latencies: [] };
    return stats[kind];
  }
  const listeners = [];
  function changed() { for (const f of listeners) f(); }

  function recordLatency(kind, ms) {
    const s = statsFor(kind);
    s.messages++;
    s.latencies.push(ms);
    if (s.latencies.length > LATENCY_KEEP) s.latencies.shift();
    changed();
  }

  function percentile(arr, p) {
    if (!arr.length) return null;
    const a = arr.slice().sort((x, y) => x - y);
    return a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))];
  }

  // WebSocket frame sizes: a client frame is masked (4 bytes), a server's not.
  function frameHeader(len, masked) {
    return (len < 126 ? 2 : len < 65536 ? 4 : 10) + (masked ? 4 : 0);
  }
  function countWs(dir, text) {
    const s = statsFor('websocket');
    const n = byteLen(text);
    if (dir === 'out') s.bytesOut += n + frameHeader(n, true);
    else s.bytesIn += n + frameHeader(n, false);
    changed();
  }
  function countWsHandshake(url, protocol) {
    const s = statsFor('websocket');
    const u = new URL(url);
    s.requests++;
    // the request line and the headers the upgrade needs; the 101's headers
    s.bytesOut += byteLen(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: ${protocol}\r\nOrigin: ${location.origin}\r\n\r\n`);
    s.bytesIn += byteLen('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`);
    changed();
  }

  // One HTTP request with its bytes counted; resolves {status, text, json}.
  async function request(kind, method, path, body, signal) {
    const s = statsFor(kind);
    const headers = body != null ? { 'Content-Type': 'application/json' } : {};
    let out = `${method} ${path} HTTP/1.1\r\nHost: ${location.host}\r\n`;
    for (const [k, v] of Object.entries(headers)) out += `${k}: ${v}\r\n`;
    if (body != null) out += `Content-Length: ${byteLen(body)}\r\n`;
    out += '\r\n';
    s.requests++;
    s.bytesOut += byteLen(out) + (body != null ? byteLen(body) : 0);
    changed();
    const res = await fetch(path, { method, body: body ?? undefined, headers, signal, cache: 'no-store' });
    const text = await res.text();
    let head = `HTTP/1.1 ${res.status} ${res.statusText}\r\n`;
    res.headers.forEach((v, k) => { head += `${k}: ${v}\r\n`; });
    s.bytesIn += byteLen(head) + 2 + byteLen(text);
    changed();
    let json = null;
    if ((res.headers.get('content-type') || '').startsWith('application/json')) {
      try { json = JSON.parse(text); } catch { json = null; }
    }
    return { status: res.status, text, json };
  }

  class HttpSocket {
    // mode: 'longpoll' or 'poll'; intervalMs for 'poll'; params: {session, name}
    constructor(mode, intervalMs, params) {
      this.kind = mode === 'poll' ? 'polling' : 'longpoll';
      this.mode = mode;
      this.intervalMs = intervalMs;
      this.readyState = 0;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      this.ack = 0;
      this.token = null;
      this.failures = 0;
      this.controller = new AbortController();
      this.timer = 0;
      this.open(params);
    }

    deliver(obj) {
      if (this.readyState !== 1 || !this.onmessage) return;
      this.onmessage({ data: JSON.stringify(obj) });
    }

    async open(params) {
      const body = {};
      // a known token reclaims its name (the name is then ignored); an
      // unknown one (the server restarted) gets a new session with the name
      if (params.session) body.session = params.session;
      if (params.name) body.name = params.name;
      let r;
      try {
        r = await request(this.kind, 'POST', '/http/session', JSON.stringify(body), this.controller.signal);
      } catch {
        this.fail(1006);
        return;
      }
      if (this.readyState !== 0) return;
      if (r.status !== 200 || !r.json) { this.fail(1006); return; }
      this.token = r.json.session;
      this.readyState = 1;
      if (this.onopen) this.onopen();
      this.deliver(r.json);
      this.loop();
    }

    async loop() {
      while (this.readyState === 1) {
        const q = new URLSearchParams({ session: this.token, ack: String(this.ack) });
        let path = '/http/poll';
        if (this.mode === 'longpoll') {
          path = '/http/longpoll';
          q.set('timeout', String(LONGPOLL_TIMEOUT));
        }
        let r;
        try {
          r = await request(this.kind, 'GET', `${path}?${q}`, null, this.controller.signal);
        } catch {
          if (this.readyState !== 1) return;
          if (++this.failures >= RETRY_MAX) { this.fail(1006); return; }
          await this.sleep(500 * this.failures);
          continue;
        }
        if (this.readyState !== 1) return;
        if (r.status === 404) { this.fail(1006); return; }   // the session is gone: reconnect
        if (r.status !== 200 || !Array.isArray(r.json)) {
          if (++this.failures >= RETRY_MAX) { this.fail(1006); return; }
          await this.sleep(500 * this.failures);
          continue;
        }
        this.failures = 0;
        if (r.json.length === 0) { statsFor(this.kind).empty++; changed(); }
        for (const e of r.json) {
          if (typeof e.seq === 'number' && e.seq > this.ack) this.ack = e.seq;
          this.deliver(e);
        }
        if (this.mode === 'poll') await this.sleep(this.intervalMs);
      }
    }

    sleep(ms) {
      return new Promise((resolve) => { this.timer = setTimeout(resolve, ms); });
    }

    send(text) {
      if (this.readyState !== 1) throw new Error('not open');
      const q = new URLSearchParams({ session: this.token });
      request(this.kind, 'POST', `/http/send?${q}`, text, this.controller.signal).then((r) => {
        if (this.readyState !== 1) return;
        if (r.status === 404) { this.fail(1006); return; }
        if (r.json && typeof r.json === 'object' && !Array.isArray(r.json)) this.deliver(r.json);
      }, () => { /* the connection failed: the poll loop notices */ });
    }

    fail(code) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.controller.abort();
      clearTimeout(this.timer);
      if (this.onclose) this.onclose({ code, reason: '' });
    }

    close() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.controller.abort();
      clearTimeout(this.timer);
    }
  }

  window.WschatTransports = {
    HttpSocket, stats, statsFor, recordLatency, countWs, countWsHandshake, percentile,
    onChange(f) { listeners.push(f); },
  };
})();
