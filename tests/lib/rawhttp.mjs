// Raw HTTP/1.1 over node:net, for tests where the exact bytes matter:
// malformed requests, keep-alive on one socket, pipelining, oversized heads.
//
//   const c = await HttpConn.open(srv.port);
//   c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
//   const r = await c.readResponse();   // { status, reason, version, headers, rawHeaders, body }
//   await c.expectClosed();            // the server closed the TCP connection
//
// ByteReader is the pull-style byte stream under it (and under rawws.mjs):
// every wait has a deadline, and end of stream is reported, never hung on.
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class EofError extends Error {
  constructor(msg, reset) { super(msg); this.eof = true; this.reset = reset; }
}
export class TimeoutError extends Error {
  constructor(msg) { super(msg); this.timeout = true; }
}

export class ByteReader {
  constructor(socket, initial) {
    this.socket = socket;
    this.chunks = [];
    this.len = 0;
    this.ended = false;       // the peer finished (FIN) or the socket closed
    this.reset = false;       // ... by an error such as ECONNRESET
    this.error = null;
    this.totalRead = 0;
    this._wake = null;
    if (initial && initial.length) this._push(initial);
    this._onData = (d) => { this._push(d); };
    this._onEnd = () => { this.ended = true; this._signal(); };
    this._onError = (e) => { this.error = e; this.reset = true; this.ended = true; this._signal(); };
    socket.on('data', this._onData);
    socket.on('end', this._onEnd);
    socket.on('close', this._onEnd);
    socket.on('error', this._onError);
  }

  detach() {
    this.socket.off('data', this._onData);
    this.socket.off('end', this._onEnd);
    this.socket.off('close', this._onEnd);
    this.socket.off('error', this._onError);
    return this.takeAll();
  }

  _push(d) {
    this.chunks.push(d);
    this.len += d.length;
    this.totalRead += d.length;
    this._signal();
  }

  _signal() {
    const w = this._wake;
    this._wake = null;
    if (w) w();
  }

  // Resolves when something happens (data or end) or rejects at the deadline.
  _wait(deadline, what) {
    return new Promise((resolve, reject) => {
      const left = deadline - Date.now();
      if (left <= 0) { reject(new TimeoutError(`timeout waiting for ${what()}`)); return; }
      const t = setTimeout(() => { this._wake = null; reject(new TimeoutError(`timeout waiting for ${what()}`)); }, left);
      this._wake = () => { clearTimeout(t); resolve(); };
    });
  }

  _take(n) {
    if (n === 0) return Buffer.alloc(0);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.len = rest.length;
    return out;
  }

  takeAll() { return this._take(this.len); }

  peekAll() { return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks); }

  async readExactly(n, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (this.len < n) {
      if (this.ended) throw new EofError(`connection closed while waiting for ${n} bytes (have ${this.len})`, this.reset);
      await this._wait(deadline, () => `${n} bytes (have ${this.len})`);
    }
    return this._take(n);
  }

  // Reads up to and including delim; fails if more than max bytes come first.
  async readUntil(delim, timeoutMs = 10000, max = 1 << 20) {
    const d = Buffer.from(delim);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = this.peekAll();
      const i = all.indexOf(d);
      if (i >= 0) return this._take(i + d.length);
      if (all.length > max) throw new Error(`no ${JSON.stringify(delim)} within ${max} bytes`);
      if (this.ended) throw new EofError(`connection closed before ${JSON.stringify(delim)} (have ${this.len} bytes)`, this.reset);
      await this._wait(deadline, () => `${JSON.stringify(delim)} (have ${this.len} bytes)`);
    }
  }

  // Waits for the end of the stream; returns whatever bytes arrived first.
  async readToEnd(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) await this._wait(deadline, () => `the peer to close the connection (${this.len} bytes unread)`);
    return this.takeAll();
  }

  // True if the stream ended within timeoutMs (data that arrives is kept).
  async endsWithin(timeoutMs) {
    try { await this._waitEndKeep(timeoutMs); return true; } catch (e) { if (e.timeout) return false; throw e; }
  }

  async _waitEndKeep(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) await this._wait(deadline, () => 'end of stream');
  }
}

export function connectTcp(port, host = '127.0.0.1', timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    const t = setTimeout(() => { s.destroy(); reject(new Error('TCP connect timeout')); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.setNoDelay(true); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// Parses a response head (status line + headers, without the final CRLF CRLF).
export function parseHead(text) {
  const lines = text.split('\r\n');
  const m = /^HTTP\/(\d)\.(\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0].slice(0, 200))}`);
  const headers = {};
  const rawHeaders = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`bad header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, i);
    if (/\s/.test(name)) throw new Error(`whitespace in header name: ${JSON.stringify(line)}`);
    const value = line.slice(i + 1).trim();
    rawHeaders.push([name, value]);
    const k = name.toLowerCase();
    headers[k] = k in headers ? `${headers[k]}, ${value}` : value;
  }
  return { version: `${m[1]}.${m[2]}`, status: Number(m[3]), reason: m[4] ?? '', headers, rawHeaders };
}

export class HttpConn {
  constructor(socket) {
    this.socket = socket;
    this.reader = new ByteReader(socket);
    this.socket.on('error', () => {});
  }

  static async open(port, host = '127.0.0.1') {
    return new HttpConn(await connectTcp(port, host));
  }

  write(data) {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) { resolve(false); return; }
      this.socket.write(data, (err) => resolve(!err));
    });
  }

  // Reads one response. `head: true` for responses to HEAD (no body).
  async readResponse({ timeoutMs = 10000, head = false } = {}) {
    const raw = await this.reader.readUntil('\r\n\r\n', timeoutMs, 64 * 1024);
    const res = parseHead(raw.subarray(0, raw.length - 4).toString('latin1'));
    res.head = raw;
    const noBody = head || res.status === 204 || res.status === 304 || (res.status >= 100 && res.status < 200);
    if (noBody) {
      res.body = Buffer.alloc(0);
    } else if (/\bchunked\b/i.test(res.headers['transfer-encoding'] ?? '')) {
      const parts = [];
      for (;;) {
        const line = (await this.reader.readUntil('\r\n', timeoutMs)).toString('latin1');
        const size = parseInt(line, 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(line)}`);
        if (size === 0) { await this.reader.readUntil('\r\n', timeoutMs); break; }
        parts.push(await this.reader.readExactly(size, timeoutMs));
        await this.reader.readExactly(2, timeoutMs);
      }
      res.body = Buffer.concat(parts);
      res.chunked = true;
    } else if ('content-length' in res.headers) {
      const n = Number(res.headers['content-length']);
      if (!Number.isInteger(n) || n < 0) throw new Error(`bad Content-Length ${res.headers['content-length']}`);
      res.body = await this.reader.readExactly(n, timeoutMs);
    } else {
      res.body = await this.reader.readToEnd(timeoutMs);
      res.delimitedByClose = true;
    }
    res.text = res.body.toString('utf8');
    return res;
  }

  // The server closes the connection within timeoutMs; returns any extra bytes.
  async expectClosed(timeoutMs = 10000) {
    return this.reader.readToEnd(timeoutMs);
  }

  destroy() { this.socket.destroy(); }
}

// One request on a fresh connection; returns the response (and closes).
export async function request(port, raw, opts = {}) {
  const c = await HttpConn.open(port);
  try {
    await c.write(raw);
    return await c.readResponse(opts);
  } finally {
    c.destroy();
  }
}
