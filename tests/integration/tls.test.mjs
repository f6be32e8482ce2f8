// The TLS listener (--tls-port): everything the plain port serves, over
// TLS 1.2 and 1.3 with ALPN; certificate reload on SIGHUP without dropping
// connections; clear startup errors; and hostile clients (garbage, plain
// HTTP, a stalled handshake) closed without harm to the others.
// Certificates are made by the test (openssl CLI) in its own directory.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort, serverBinary } from '../lib/server.mjs';
import { openWs, sendAsync } from '../lib/wsclient.mjs';
import { Chat } from '../lib/chat.mjs';
import { makeCert, fingerprint, tlsArgs } from '../lib/tls.mjs';

const T = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const insecure = { rejectUnauthorized: false };
let srv, dir, tlsPort, cert, key;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'wschat-tls-'));
  ({ cert, key } = makeCert(dir));
  tlsPort = await freePort();
  srv = await startServer({ dir, args: ['--echo', '--handshake-timeout', '1', ...tlsArgs(tlsPort, cert, key)] });
});
after(async () => {
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, `exit code after SIGTERM\n${srv.log.slice(-4000)}`);
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

const wss = (p) => `wss://127.0.0.1:${tlsPort}${p}`;

function get(p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port: tlsPort, path: p, agent: false, ...insecure, ...opts }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks),
        protocol: res.socket.getProtocol?.() }));
    });
    req.on('error', reject);
  });
}

// A raw TLS connection; resolves once the handshake is done.
function tlsConnect(opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'localhost', ...insecure, ...opts });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

// A plain TCP socket; resolves with what it received once the server closed it.
function rawExchange(bytes, { keepOpenMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(tlsPort, '127.0.0.1');
    const got = [];
    const t0 = Date.now();
    s.on('connect', () => { if (bytes.length) s.write(bytes); });
    s.on('data', (d) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve({ data: Buffer.concat(got), ms: Date.now() - t0 }));
    if (keepOpenMs) setTimeout(() => { s.destroy(); reject(new Error('server did not close the connection')); }, keepOpenMs);
  });
}

async function echoRoundTrip(payload) {
  const c = await openWs(wss('/echo'), insecure);
  try {
    await sendAsync(c.ws, payload, { binary: Buffer.isBuffer(payload) });
    const m = await c.next('message', 30000);
    assert.ok(m.data.equals(Buffer.isBuffer(payload) ? payload : Buffer.from(payload)), 'echo differs');
  } finally {
    c.ws.close();
  }
}

describe('tls: serves what the plain port serves', () => {
  test('GET /healthz, /, /metrics over https', T, async () => {
    const h = await get('/healthz');
    assert.equal(h.status, 200);
    const page = await get('/');
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<html/i);
    const plain = await fetch(srv.http('/')).then((r) => r.text());
    assert.equal(page.body.toString(), plain, 'the same page on both ports');
    const m = await get('/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body.toString(), /wschat_tls_handshakes_total [1-9]/);
  });

  test('the HTTP session transport over https: welcome, then a poll', T, async () => {
    const body = JSON.stringify({ name: 'tlspoller' });
    const res = await new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: tlsPort, path: '/http/session', method: 'POST', agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, ...insecure }, (r) => {
        let b = '';
        r.on('data', (d) => { b += d; });
        r.on('end', () => resolve({ status: r.statusCode, body: b }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(res.status, 200, res.body);
    const welcome = JSON.parse(res.body);
    assert.equal(welcome.type, 'welcome');
    assert.equal(welcome.name, 'tlspoller');
    const poll = await get(`/http/poll?session=${welcome.session}&ack=0`);
    assert.equal(poll.status, 200);
    assert.ok(Array.isArray(JSON.parse(poll.body.toString())), poll.body.toString());
  });

  test('TLS 1.3 and TLS 1.2 both work', T, async () => {
    const s13 = await tlsConnect({ minVersion: 'TLSv1.3' });
    assert.equal(s13.getProtocol(), 'TLSv1.3');
    s13.destroy();
    const s12 = await tlsConnect({ maxVersion: 'TLSv1.2' });
    assert.equal(s12.getProtocol(), 'TLSv1.2');
    s12.destroy();
    await assert.rejects(tlsConnect({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), 'TLS 1.1 is refused');
  });

  test('ALPN selects h2 when offered, else http/1.1; a client without ALPN still gets HTTP/1.1', T, async () => {
    const h = await tlsConnect({ ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(h.alpnProtocol, 'h2');
    h.destroy();
    const s = await tlsConnect({ ALPNProtocols: ['http/1.1'] });
    assert.equal(s.alpnProtocol, 'http/1.1');
    s.destroy();
    const n = await tlsConnect({});
    assert.equal(n.alpnProtocol, false);
    n.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const body = await new Promise((r) => { let b = ''; n.on('data', (d) => { b += d; }); n.on('end', () => r(b)); });
    assert.match(body, /^HTTP\/1\.1 200/);
  });

  test('wss /echo: text, 1 MiB binary (many records), many messages in one flush', T, async () => {
    await echoRoundTrip('hello over tls');
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 9)) & 0xff;
    await echoRoundTrip(big);
    const c = await openWs(wss('/echo'), insecure);
    for (let i = 0; i < 500; i++) c.ws.send(`m${i}`);
    for (let i = 0; i < 500; i++) assert.equal((await c.next('message')).data.toString(), `m${i}`);
    c.ws.close();
  });

  test('wss chat: two clients in a room over TLS', T, async () => {
    const a = await Chat.open(wss('/ws/tlsroom?name=alice'), insecure);
    const b = await Chat.open(wss('/ws/tlsroom?name=bob'), insecure);
    await a.next('welcome');
    await b.next('welcome');
    a.send({ type: 'send', room: 'tlsroom', text: 'hi over tls', ref: 1 });
    const m = await b.until((x) => x.type === 'message' && x.text === 'hi over tls');
    assert.equal(m.from, 'alice');
    await a.close();
    await b.close();
  });
});

describe('tls: hostile clients are closed without harm to others', () => {
  test('garbage bytes: closed at once, others unaffected', T, async () => {
    const other = await openWs(wss('/echo'), insecure);
    const r = await rawExchange(Buffer.from('\x16\x03\x01\x00\x05garbage garbage garbage', 'latin1'), { keepOpenMs: 5000 });
    assert.ok(r.ms < 3000, `closed after ${r.ms} ms`);
    other.ws.send('still here');
    assert.equal((await other.next('message')).data.toString(), 'still here');
    other.ws.close();
  });

  test('a plain HTTP request on the TLS port gets 400 with a one-line reason', T, async () => {
    const r = await rawExchange(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'), { keepOpenMs: 5000 });
    const text = r.data.toString();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /this port speaks TLS/);
  });

  test('a handshake stalled half-way is closed by the handshake timeout; others go on', T, async () => {
    // The first bytes of a ClientHello, then nothing.
    const other = await openWs(wss('/echo'), insecure);
    const stalled = rawExchange(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), { keepOpenMs: 8000 });
    await sleep(300);
    other.ws.send('during the stall');
    assert.equal((await other.next('message')).data.toString(), 'during the stall');
    const r = await stalled;
    assert.ok(r.ms >= 900 && r.ms < 4000, `closed after ${r.ms} ms (handshake timeout 1 s)`);
    other.ws.send('after');
    assert.equal((await other.next('message')).data.toString(), 'after');
    other.ws.close();
    // A TCP connection that sends nothing at all is closed the same way.
    const silent = await rawExchange(Buffer.alloc(0), { keepOpenMs: 8000 });
    assert.ok(silent.ms >= 900 && silent.ms < 4000, `silent closed after ${silent.ms} ms`);
  });

  test('a client that sends close_notify then FIN is closed cleanly', T, async () => {
    const s = await tlsConnect({});
    const closed = new Promise((r) => s.on('close', r));
    s.end();
    await closed;
    const h = await get('/healthz');
    assert.equal(h.status, 200);
  });
});

describe('tls: certificate reload on SIGHUP', () => {
  test('new connections get the new certificate, open ones keep going; a bad reload keeps the old', T, async () => {
    const before1 = await tlsConnect({});
    assert.equal(before1.getPeerX509Certificate().fingerprint256, fingerprint(cert));
    before1.destroy();
    const open = await openWs(wss('/echo'), insecure);

    const next = makeCert(dir, 'next');
    copyFileSync(next.cert, cert);
    copyFileSync(next.key, key);
    srv.proc.kill('SIGHUP');
    await sleep(500);
    assert.match(srv.log, /TLS certificate reloaded/);
    const after1 = await tlsConnect({});
    assert.equal(after1.getPeerX509Certificate().fingerprint256, fingerprint(next.cert));
    after1.destroy();
    open.ws.send('across the reload');
    assert.equal((await open.next('message')).data.toString(), 'across the reload');

    // A broken key on disk: the reload fails, the server keeps the last good one.
    writeFileSync(key, 'not a key\n');
    srv.proc.kill('SIGHUP');
    await sleep(500);
    assert.match(srv.log, /TLS reload failed/);
    const after2 = await tlsConnect({});
    assert.equal(after2.getPeerX509Certificate().fingerprint256, fingerprint(next.cert));
    after2.destroy();
    open.ws.send('still');
    assert.equal((await open.next('message')).data.toString(), 'still');
    open.ws.close();
    copyFileSync(next.key, key);
  });
});

describe('tls: startup errors', () => {
  const run = (args) => spawnSync(serverBinary(), ['--host', '127.0.0.1', '--port', '0', '--db', ':memory:', ...args],
    { encoding: 'utf8', timeout: 20000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });

  test('a missing certificate file: exit 1 and a clear message', T, async () => {
    const d = mkdtempSync(path.join(tmpdir(), 'wschat-tls-bad-'));
    const { key: k } = makeCert(d);
    const r = run(tlsArgs(await freePort(), path.join(d, 'missing.pem'), k));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot load TLS certificate .*missing\.pem/);
  });

  test('a key that does not match the certificate: exit 1 and a clear message', T, async () => {
    const d = mkdtempSync(path.join(tmpdir(), 'wschat-tls-bad-'));
    const a = makeCert(d, 'a');
    const b = makeCert(d, 'b');
    const r = run(tlsArgs(await freePort(), a.cert, b.key));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /TLS key does not match the certificate/);
  });

  test('--tls-port without a certificate: usage error (exit 2)', T, async () => {
    const r = run(['--tls-port', String(await freePort())]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /TLS needs all three/);
  });
});
