// A tiny raw-socket WebSocket client for tests where exact framing matters.
//
//   const ws = await RawWS.connect(srv.port, { path: '/echo' });
//   await ws.send(frame({ opcode: OP.TEXT, payload: 'hi', rsv: 4 }));   // any bits
//   await ws.sendChopped(bytes, 1, 1);          // one byte a write, 1 ms apart
//   await ws.expectMessage(OP.TEXT, 'hi');
//   await ws.expectFail(1002);                  // close 1002 + reason, then TCP close
//   await ws.closeClean(1000);                  // our close, its echo, TCP close
//
// Everything the server sends is checked as it is read (RFC 6455 rules for a
// server): frames unmasked, RSV bits clear, no reserved opcodes, control
// frames unfragmented and <= 125 bytes, minimal length encoding, continuation
// rules, text messages and close reasons valid UTF-8, close payload not 1
// byte and its code one a server may send, and nothing after its close
// frame. A violation throws from next() and so fails the test.
//
// permessage-deflate: when the 101 accepts it (ws.deflate), RSV1 is allowed
// on the first frame of a data message (only there), such a message is
// inflated (zlib, with the 00 00 ff ff tail) and next() reports it with
// compressed: true and wireBytes (the compressed payload size).
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { ByteReader, EofError, connectTcp, parseHead, sleep } from './rawhttp.mjs';

export { sleep };
export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

export const toBuf = (p) => (p === undefined || p === null ? Buffer.alloc(0)
  : Buffer.isBuffer(p) ? p : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p));

export function hex(s) { return Buffer.from(s.replace(/[^0-9a-fA-F]/g, ''), 'hex'); }

// Builds one client frame. Everything can be set, including what is wrong:
//   fin (bool), rsv (0..7), opcode (0..15), payload (Buffer|string),
//   mask (bool; default true), maskKey (4 bytes; default random),
//   lengthBytes (0 = 7-bit, 2 = 16-bit, 8 = 64-bit; default minimal),
//   declaredLength (number|bigint: the length written in the header, when
//   it should differ from the payload actually appended).
export function frame({ fin = true, rsv = 0, opcode, payload, mask = true, maskKey, lengthBytes, declaredLength } = {}) {
  if (opcode === undefined) throw new Error('frame: opcode required');
  const data = toBuf(payload);
  const len = declaredLength !== undefined ? BigInt(declaredLength) : BigInt(data.length);
  if (lengthBytes === undefined) lengthBytes = len < 126n ? 0 : len < 65536n ? 2 : 8;
  const head = [((fin ? 1 : 0) << 7) | ((rsv & 7) << 4) | (opcode & 15)];
  const m = mask ? 0x80 : 0;
  if (lengthBytes === 0) {
    if (len > 125n) throw new Error('frame: 7-bit length > 125');
    head.push(m | Number(len));
  } else if (lengthBytes === 2) {
    head.push(m | 126, Number((len >> 8n) & 0xffn), Number(len & 0xffn));
  } else {
    head.push(m | 127);
    for (let i = 7; i >= 0; i--) head.push(Number((len >> BigInt(8 * i)) & 0xffn));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = maskKey ? toBuf(maskKey) : crypto.randomBytes(4);
  return Buffer.concat([Buffer.from(head), key, maskBytes(data, key)]);
}

export function maskBytes(data, key) {
  const out = Buffer.allocUnsafe(data.length);
  const n = data.length;
  const k0 = key[0], k1 = key[1], k2 = key[2], k3 = key[3];
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    out[i] = data[i] ^ k0; out[i + 1] = data[i + 1] ^ k1;
    out[i + 2] = data[i + 2] ^ k2; out[i + 3] = data[i + 3] ^ k3;
  }
  for (; i < n; i++) out[i] = data[i] ^ key[i & 3];
  return out;
}

// Close payload: code (2 bytes, big-endian) + reason; code undefined = empty.
export function closePayload(code, reason = '') {
  if (code === undefined) return Buffer.alloc(0);
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

export const text = (payload, o = {}) => frame({ opcode: OP.TEXT, payload, ...o });
export const binary = (payload, o = {}) => frame({ opcode: OP.BINARY, payload, ...o });
export const cont = (payload, o = {}) => frame({ opcode: OP.CONT, payload, ...o });
export const ping = (payload, o = {}) => frame({ opcode: OP.PING, payload, ...o });
export const pong = (payload, o = {}) => frame({ opcode: OP.PONG, payload, ...o });
export const close = (code, reason, o = {}) => frame({ opcode: OP.CLOSE, payload: closePayload(code, reason), ...o });

// Close codes a server may put on the wire (RFC 6455 §7.4, IANA registry).
export function validWireCloseCode(c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function isUtf8(buf) {
  try { utf8.decode(buf); return true; } catch { return false; }
}

export function randomKey() { return crypto.randomBytes(16).toString('base64'); }

// Builds the upgrade request. headers: extra/overriding headers (null value
// removes a default one).
export function upgradeRequest(port, { path = '/echo', key = randomKey(), headers = {}, method = 'GET', version = 'HTTP/1.1' } = {}) {
  const h = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
  };
  for (const [k, v] of Object.entries(headers)) {
    for (const d of Object.keys(h)) if (d.toLowerCase() === k.toLowerCase()) delete h[d];
    if (v !== null && v !== undefined) h[k] = v;
  }
  let s = `${method} ${path} ${version}\r\n`;
  for (const [k, v] of Object.entries(h)) {
    for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
  }
  return s + '\r\n';
}

export class ProtocolViolation extends Error {}

export class RawWS {
  constructor(socket, reader, response, { timeoutMs = 10000 } = {}) {
    this.socket = socket;
    this.reader = reader;
    this.response = response;
    this.timeoutMs = timeoutMs;
    this.assembly = null;        // { opcode, parts, len } of a fragmented server message
    this.closeReceived = null;   // the server's close frame, once read
    this.writeErrors = 0;
    this.deflate = /permessage-deflate/i.test(response.headers['sec-websocket-extensions'] ?? '');
    socket.on('error', () => {}); // reported through the reader
  }

  // Opens TCP, sends the upgrade (plus `extra` bytes in the same write, e.g.
  // frames), checks 101 + Sec-WebSocket-Accept.
  static async connect(port, { path = '/echo', headers = {}, key = randomKey(), extra, timeoutMs = 10000 } = {}) {
    const socket = await connectTcp(port);
    const reader = new ByteReader(socket);
    const req = Buffer.from(upgradeRequest(port, { path, key, headers }), 'latin1');
    socket.write(extra ? Buffer.concat([req, extra]) : req);
    let head;
    try {
      head = await reader.readUntil('\r\n\r\n', timeoutMs, 64 * 1024);
    } catch (e) {
      socket.destroy();
      throw new Error(`handshake: ${e.message}`);
    }
    const res = parseHead(head.subarray(0, head.length - 4).toString('latin1'));
    if (res.status !== 101) {
      socket.destroy();
      throw new Error(`handshake: expected 101, got ${res.status} ${res.reason}`);
    }
    const up = (res.headers.upgrade ?? '').toLowerCase();
    const conn = (res.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
    if (up !== 'websocket' || !conn.includes('upgrade') || res.headers['sec-websocket-accept'] !== acceptFor(key)) {
      socket.destroy();
      throw new Error(`handshake: bad 101 response headers ${JSON.stringify(res.headers)}`);
    }
    return new RawWS(socket, reader, res, { timeoutMs });
  }

  // The same client on an HTTP/2 stream opened with extended CONNECT
  // (RFC 8441) by Node's http2 client: frames are written and read raw on
  // the stream; "TCP close" is the end of the stream. `destroy` also closes
  // the HTTP/2 connection.
  static async connectH2(port, { path = '/echo', headers = {}, extra, timeoutMs = 10000 } = {}) {
    const { h2session, connectStream } = await import('./h2ws.mjs');
    const session = await h2session(port);
    let stream, res;
    try {
      ({ stream, headers: res } = await connectStream(session, path, headers));
    } catch (e) {
      session.destroy();
      throw new Error(`handshake: ${e.message}`);
    }
    if (res['sec-websocket-accept'] !== undefined) {
      session.destroy();
      throw new Error('handshake: Sec-WebSocket-Accept in an RFC 8441 response');
    }
    stream.destroy = ((orig) => (...a) => { orig(...a); session.destroy(); return stream; })(stream.destroy.bind(stream));
    const ws = new RawWS(stream, new ByteReader(stream), { status: 200, headers: res }, { timeoutMs });
    if (extra) await ws.send(extra);
    return ws;
  }

  // RawWS.connect or RawWS.connectH2, as $WSCHAT_WS_CARRIER says ("h2").
  static open(port, opts) {
    return process.env.WSCHAT_WS_CARRIER === 'h2' ? RawWS.connectH2(port, opts) : RawWS.connect(port, opts);
  }

  // Writes bytes; resolves when handed to the kernel (false if the socket is gone).
  send(data) {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) { this.writeErrors++; resolve(false); return; }
      this.socket.write(toBuf(data), (err) => { if (err) this.writeErrors++; resolve(!err); });
    });
  }

  // Sends several buffers as one write.
  sendAll(list) { return this.send(Buffer.concat(list.map(toBuf))); }

  // Sends each buffer as its own write, delayMs apart.
  async sendEach(list, delayMs = 5) {
    for (let i = 0; i < list.length; i++) {
      if (i) await sleep(delayMs);
      await this.send(list[i]);
    }
  }

  // Sends data in writes of `size` bytes, delayMs apart (0 = back to back).
  async sendChopped(data, size = 1, delayMs = 1) {
    const b = toBuf(data);
    for (let i = 0; i < b.length; i += size) {
      if (i && delayMs) await sleep(delayMs);
      if (!(await this.send(b.subarray(i, i + size)))) return false;
    }
    return true;
  }

  violation(msg) { throw new ProtocolViolation(`server violated RFC 6455: ${msg}`); }

  // Reads one server frame (null at a clean end of stream between frames).
  async readFrame(timeoutMs = this.timeoutMs) {
    let h;
    try {
      h = await this.reader.readExactly(2, timeoutMs);
    } catch (e) {
      if (e.eof && this.reader.len === 0) return null;
      throw e;
    }
    const fin = (h[0] & 0x80) !== 0;
    const rsv = (h[0] >> 4) & 7;
    const opcode = h[0] & 15;
    const masked = (h[1] & 0x80) !== 0;
    let len = h[1] & 127;
    if (len === 126) {
      len = (await this.reader.readExactly(2, timeoutMs)).readUInt16BE(0);
      if (len < 126) this.violation(`16-bit length used for ${len} bytes`);
    } else if (len === 127) {
      const big = (await this.reader.readExactly(8, timeoutMs)).readBigUInt64BE(0);
      if (big >> 63n) this.violation('64-bit length with the top bit set');
      if (big < 65536n) this.violation(`64-bit length used for ${big} bytes`);
      if (big > 1n << 40n) this.violation(`absurd frame length ${big}`);
      len = Number(big);
    }
    if (masked) this.violation('server frame is masked');
    if (rsv & (this.deflate ? 3 : 7)) this.violation(`RSV bits ${rsv} set without an extension`);
    if ((rsv & 4) && (opcode === OP.CONT || opcode >= 8)) this.violation(`RSV1 on opcode ${opcode}`);
    let key = null;
    if (masked) key = await this.reader.readExactly(4, timeoutMs);
    let payload = await this.reader.readExactly(len, Math.max(timeoutMs, 30000));
    if (key) payload = maskBytes(payload, key);
    return { fin, rsv, opcode, masked, payload };
  }

  // Next event from the server:
  //   { kind: 'message', opcode, data }  a whole data message (reassembled)
  //   { kind: 'ping'|'pong', data }
  //   { kind: 'close', code, reason, payload }   code 1005 when empty
  //   { kind: 'end', reset }             TCP closed by the server
  async next(timeoutMs = this.timeoutMs) {
    for (;;) {
      if (this.closeReceived) {
        const rest = await this.reader.readToEnd(timeoutMs);
        if (rest.length) this.violation(`${rest.length} bytes sent after the close frame: ${rest.subarray(0, 16).toString('hex')}`);
        return { kind: 'end', reset: this.reader.reset };
      }
      const f = await this.readFrame(timeoutMs);
      if (!f) {
        if (this.assembly) this.violation('TCP closed in the middle of a fragmented message');
        return { kind: 'end', reset: this.reader.reset };
      }
      const { fin, opcode, payload } = f;
      if (opcode >= 8) {
        if (opcode > 10) this.violation(`reserved control opcode ${opcode}`);
        if (!fin) this.violation(`fragmented control frame (opcode ${opcode})`);
        if (payload.length > 125) this.violation(`control frame of ${payload.length} bytes`);
        if (opcode === OP.PING) return { kind: 'ping', data: payload };
        if (opcode === OP.PONG) return { kind: 'pong', data: payload };
        this.closeReceived = f;
        if (payload.length === 1) this.violation('close frame with a 1-byte payload');
        if (payload.length === 0) return { kind: 'close', code: 1005, reason: '', payload };
        const code = payload.readUInt16BE(0);
        if (!validWireCloseCode(code)) this.violation(`close code ${code} may not be sent`);
        const r = payload.subarray(2);
        if (!isUtf8(r)) this.violation(`close reason is not UTF-8: ${r.toString('hex')}`);
        return { kind: 'close', code, reason: r.toString('utf8'), payload };
      }
      if (opcode === OP.CONT) {
        if (!this.assembly) this.violation('continuation frame without a message in progress');
        this.assembly.parts.push(payload);
      } else if (opcode === OP.TEXT || opcode === OP.BINARY) {
        if (this.assembly) this.violation('new data frame inside a fragmented message');
        this.assembly = { opcode, parts: [payload], compressed: (f.rsv & 4) !== 0 };
      } else {
        this.violation(`reserved data opcode ${opcode}`);
      }
      if (fin) {
        const { opcode: op, parts, compressed } = this.assembly;
        this.assembly = null;
        let data = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        const wireBytes = data.length;
        if (compressed) {
          try {
            data = zlib.inflateRawSync(Buffer.concat([data, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
          } catch (e) {
            this.violation(`compressed message does not inflate: ${e.message}`);
          }
        }
        if (op === OP.TEXT && !isUtf8(data)) this.violation('text message is not valid UTF-8');
        return { kind: 'message', opcode: op, data, compressed, wireBytes };
      }
    }
  }

  describe(ev) {
    if (ev.kind === 'message') {
      const d = ev.data.length > 40 ? `${ev.data.length} bytes` : JSON.stringify(ev.data.toString('latin1'));
      return `message(opcode ${ev.opcode}, ${d})`;
    }
    if (ev.kind === 'close') return `close(${ev.code}, ${JSON.stringify(ev.reason)})`;
    if (ev.kind === 'end') return `TCP end${ev.reset ? ' (reset)' : ''}`;
    return `${ev.kind}(${JSON.stringify(ev.data.toString('latin1'))})`;
  }

  async expect(kind, timeoutMs) {
    const ev = await this.next(timeoutMs);
    if (ev.kind !== kind) throw new Error(`expected ${kind}, got ${this.describe(ev)}`);
    return ev;
  }

  async expectMessage(opcode, data, timeoutMs = this.timeoutMs) {
    const ev = await this.next(timeoutMs);
    const want = toBuf(data);
    if (ev.kind !== 'message' || ev.opcode !== opcode || !ev.data.equals(want)) {
      const w = want.length > 40 ? `${want.length} bytes` : JSON.stringify(want.toString('latin1'));
      throw new Error(`expected message(opcode ${opcode}, ${w}), got ${this.describe(ev)}`);
    }
    return ev;
  }

  async expectPong(data, timeoutMs = this.timeoutMs) {
    const ev = await this.next(timeoutMs);
    const want = toBuf(data);
    if (ev.kind !== 'pong' || !ev.data.equals(want)) {
      throw new Error(`expected pong(${JSON.stringify(want.toString('latin1'))}), got ${this.describe(ev)}`);
    }
    return ev;
  }

  // The server's close frame with one of `codes` (number or array).
  async expectClose(codes, timeoutMs = this.timeoutMs) {
    const list = [].concat(codes);
    const ev = await this.next(timeoutMs);
    if (ev.kind !== 'close' || !list.includes(ev.code)) {
      throw new Error(`expected close(${list.join('|')}), got ${this.describe(ev)}`);
    }
    return ev;
  }

  // The server closes TCP (and sends nothing more) within timeoutMs.
  async expectEnd(timeoutMs = this.timeoutMs) {
    const ev = await this.next(timeoutMs);
    if (ev.kind !== 'end') throw new Error(`expected the server to close TCP, got ${this.describe(ev)}`);
    return ev;
  }

  // The server fails the connection: close frame with `code` and a non-empty
  // reason, then it closes TCP by itself (we do not answer the close).
  async expectFail(code, timeoutMs = this.timeoutMs) {
    const ev = await this.expectClose(code, timeoutMs);
    if (ev.reason.length === 0) throw new Error(`close ${code} carries no reason`);
    await this.expectEnd(timeoutMs);
    return ev;
  }

  // Our close (code, reason) -> the server echoes `echo` (default: the same
  // code; 1005 = an empty close) and closes TCP.
  async closeClean(code = 1000, reason = '', echo = code === undefined ? 1005 : code) {
    await this.send(close(code, reason));
    const ev = await this.expectClose(echo);
    await this.expectEnd();
    return ev;
  }

  // Nothing at all arrives for ms (for the "not yet" half of fail-fast cases).
  async expectSilence(ms) {
    await sleep(ms);
    if (this.reader.len > 0 || this.reader.ended) {
      const ev = await this.next(1000).catch((e) => ({ kind: 'error', data: Buffer.from(e.message) }));
      throw new Error(`expected silence for ${ms} ms, got ${this.describe(ev)}`);
    }
  }

  destroy() { this.socket.destroy(); }
}
