// HTTP/3 test helpers: a certificate and its SPKI hash, a server with TLS
// and --h3-port on one port number, Debian's ngtcp2 example client (gtlsclient, package
// ngtcp2-client) as an independent HTTP/3 client, and raw UDP datagrams.
import { spawn } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import dgram from 'node:dgram';
import path from 'node:path';
import { startServer, freePort } from './server.mjs';
import { makeCert as makeTlsCert, tlsArgs } from './tls.mjs';

// A self-signed certificate (tests/lib/tls.mjs) and its SPKI SHA-256
// (base64), which Chromium's --ignore-certificate-errors-spki-list wants.
export function makeCert(dir = mkdtempSync(path.join(tmpdir(), 'wschat-cert-'))) {
  const { cert, key } = makeTlsCert(dir);
  const spkiDer = createPublicKey(readFileSync(cert)).export({ type: 'spki', format: 'der' });
  return { dir, cert, key, spki: createHash('sha256').update(spkiDer).digest('base64') };
}

// A wschat with TLS on a free TCP port and HTTP/3 on the same UDP port
// number (as a browser expects from Alt-Svc), one certificate for both.
export async function startH3Server({ args = [], cert = makeCert(), ...opts } = {}) {
  let port;
  do { port = await freePort(); } while (!(await udpFree(port)));
  const srv = await startServer({ args: [...tlsArgs(port, cert.cert, cert.key), '--h3-port', String(port),
    ...args], ...opts });
  srv.h3port = srv.tlsPort = port;
  srv.cert = cert;
  return srv;
}

function udpFree(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.on('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// Runs gtlsclient against paths; returns [{stream, status, headers, body}]
// in request order, plus the client's raw log.
export function gtlsclient(port, paths, { args = [], timeoutMs = 15000 } = {}) {
  const dl = mkdtempSync(path.join(tmpdir(), 'wschat-h3dl-'));
  const urls = paths.map((p) => `https://localhost:${port}${p}`);
  return new Promise((resolve, reject) => {
    const p = spawn('gtlsclient', ['--exit-on-all-streams-close', '--no-quic-dump', '--download', dl,
      '--timeout=10s', ...args, '127.0.0.1', String(port), ...urls], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    p.stdout.on('data', (d) => { log += d; });
    p.stderr.on('data', (d) => { log += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      const res = paths.map((pth, i) => {
        const id = '0x' + (i * 4).toString(16);
        const headers = {};
        for (const m of log.matchAll(new RegExp(`^http: stream ${id} \\[([^:\\]]*|:[a-z]+): (.*)\\]$`, 'gm')))
          headers[m[1]] = m[2];
        const file = path.join(dl, path.basename(pth.split('?')[0]) || 'index.html');
        return { stream: id, status: Number(headers[':status']) || 0, headers,
                 body: existsSync(file) ? readFileSync(file) : null };
      });
      resolve({ code, log, res });
    });
  });
}

export function sendDatagrams(port, datagrams) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    let i = 0;
    const next = () => {
      if (i === datagrams.length) { s.close(); resolve(); return; }
      s.send(datagrams[i++], port, '127.0.0.1', (err) => (err ? reject(err) : setImmediate(next)));
    };
    next();
  });
}

// A UDP relay in front of serverPort on 127.0.0.1, for loss tests: a client
// sends to relay.port; while relay.blackout is set, datagrams are dropped
// both ways instead of forwarded, and the server's are recorded (arrival
// time in ms, size) in relay.dropped. relay.onServerDatagram(), when set,
// is called for each datagram from the server before the blackout check.
export async function udpRelay(serverPort) {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  const relay = { port: 0, blackout: false, dropped: [], onServerDatagram: null, client: null };
  front.on('message', (m, from) => {
    relay.client = from;
    if (!relay.blackout) back.send(m, serverPort, '127.0.0.1');
  });
  back.on('message', (m) => {
    relay.onServerDatagram?.();
    if (relay.blackout) { relay.dropped.push({ t: performance.now(), len: m.length }); return; }
    if (relay.client) front.send(m, relay.client.port, relay.client.address);
  });
  await new Promise((r) => front.bind(0, '127.0.0.1', r));
  await new Promise((r) => back.bind(0, '127.0.0.1', r));
  relay.port = front.address().port;
  relay.close = () => { front.close(); back.close(); };
  return relay;
}

// A QUIC v1 Initial packet header with random connection IDs and a random
// (undecryptable) payload, padded to `size` bytes.
export function junkInitial(size = 1200) {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (Math.random() * 256) | 0;
  b[0] = 0xc3;                      // long header, fixed bit, Initial, 4-byte pn
  b.writeUInt32BE(1, 1);            // version 1
  b[5] = 8;                         // dcid len
  b[14] = 8;                        // scid len
  b[23] = 0;                        // token length
  b.writeUInt16BE(0x4000 | (size - 26), 24); // length (2-byte varint)
  return b;
}

// Our own WebSocket-over-HTTP/3 client (tools/h3ws): every path is one
// WebSocket on one QUIC connection. Events: {ws, kind: 'open'|'fail'|'msg'|
// 'close'|'binary', text, status, code}.
export function h3wsBinary() {
  const dir = process.env.WSCHAT_BUILD_DIR ?? path.resolve(path.dirname(process.env.WSCHAT_BIN ?? 'build-asan/wschat'));
  return path.join(dir, 'tools/h3ws/h3ws');
}

export class H3WS {
  constructor(port, paths, { origin, headers = [], stall, timeout = 60 } = {}) {
    const args = ['--timeout', String(timeout)];
    if (origin) args.push('--origin', origin);
    for (const h of headers) args.push('--header', h);
    if (stall !== undefined) args.push('--stall', String(stall));
    this.proc = spawn(h3wsBinary(), [...args, '127.0.0.1', String(port), ...paths], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.events = [];
    this.waiters = [];
    this.log = '';
    let buf = '';
    this.proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.log += line + '\n';
        const m = line.match(/^(\d+) (\w+) ?(.*)$/);
        if (!m) continue;
        const ev = { ws: Number(m[1]), kind: m[2], rest: m[3] };
        if (ev.kind === 'msg') { ev.text = m[3]; try { ev.json = JSON.parse(m[3]); } catch { /* not JSON */ } }
        if (ev.kind === 'fail') { const f = m[3].match(/^(\d+) (.*)$/); ev.status = Number(f[1]); ev.why = f[2]; }
        if (ev.kind === 'close') { const f = m[3].match(/^(\d+) ?(.*)$/); ev.code = Number(f[1]); ev.reason = f[2]; }
        this.events.push(ev);
        this.waiters = this.waiters.filter((w) => !w(ev));
      }
    });
    this.proc.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  // Resolves with the first event (past or future) matching pred.
  waitFor(pred, ms = 20000, what = 'event') {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timeout waiting for ${what}; log:\n${this.log.slice(-3000)}`)), ms);
      this.waiters.push((ev) => { if (!pred(ev)) return false; clearTimeout(t); resolve(ev); return true; });
    });
  }

  send(ws, text) { this.proc.stdin.write(`${ws} ${typeof text === 'string' ? text : JSON.stringify(text)}\n`); }
  close(ws) { this.proc.stdin.write(`${ws} close\n`); }
  reset(ws) { this.proc.stdin.write(`${ws} reset\n`); }
  kill() { this.proc.kill('SIGKILL'); return this.exited; }
}
