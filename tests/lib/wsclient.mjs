// Helpers around the `ws` npm client (the independent implementation):
// an inbox that turns its events into awaitable, ordered values.
//
//   const c = await openWs(srv.url('/echo'));
//   c.ws.send('hi');
//   const m = await c.next('message');   // { data: Buffer, isBinary }
//   const { code, reason } = await c.closed;
import WebSocket from 'ws';

export { WebSocket };

export class Inbox {
  constructor(ws) {
    this.ws = ws;
    this.events = [];
    this.waiter = null;
    this.errors = [];
    ws.on('message', (data, isBinary) => this._push({ kind: 'message', data: Buffer.isBuffer(data) ? data : Buffer.concat([].concat(data)), isBinary }));
    ws.on('ping', (data) => this._push({ kind: 'ping', data }));
    ws.on('pong', (data) => this._push({ kind: 'pong', data }));
    ws.on('error', (err) => { this.errors.push(err); });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        const ev = { kind: 'close', code, reason: reason.toString('utf8') };
        this._push(ev);
        resolve(ev);
      });
    });
  }

  _push(ev) {
    this.events.push(ev);
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  // Next event; if `kind` is given, it must be of that kind.
  async next(kind, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length === 0) {
      await new Promise((resolve, reject) => {
        const t = setTimeout(() => { this.waiter = null; reject(new Error(`timeout waiting for ${kind ?? 'an event'}`)); }, Math.max(0, deadline - Date.now()));
        this.waiter = () => { clearTimeout(t); resolve(); };
      });
    }
    const ev = this.events.shift();
    if (kind && ev.kind !== kind) {
      const what = ev.kind === 'close' ? `close(${ev.code}, ${JSON.stringify(ev.reason)})` : `${ev.kind}(${ev.data.length} bytes)`;
      throw new Error(`expected ${kind}, got ${what}${this.errors.length ? ` (errors: ${this.errors.map((e) => e.message).join('; ')})` : ''}`);
    }
    return ev;
  }
}

export function openWs(url, opts = {}, protocols) {
  return new Promise((resolve, reject) => {
    const ws = protocols ? new WebSocket(url, protocols, opts) : new WebSocket(url, opts);
    const inbox = new Inbox(ws);
    ws.once('open', () => resolve(inbox));
    ws.once('unexpected-response', (req, res) => { req.destroy(); reject(new Error(`unexpected response ${res.statusCode}`)); });
    ws.once('error', reject);
  });
}

export function sendAsync(ws, data, opts = {}) {
  return new Promise((resolve, reject) => ws.send(data, opts, (err) => (err ? reject(err) : resolve())));
}
