// The HTTP/1.1 front, over raw sockets: status codes and one-line
// text/plain bodies, keep-alive and pipelining, the 8 KiB head limit (431),
// the body limit (413), /healthz, /metrics (Prometheus text format), the
// embedded static files.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { HttpConn, request } from '../lib/rawhttp.mjs';
import { RawWS, OP, text } from '../lib/rawws.mjs';

const T = { timeout: 60000 };
let srv;

before(async () => { srv = await startServer({ args: ['--echo'] }); });
after(async () => {
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-4000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

const get = (path, extra = '') => request(srv.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n${extra}\r\n`);

function assertTextBody(res, status) {
  assert.equal(res.status, status, `status (body ${JSON.stringify(res.text)})`);
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  assert.match(res.text, /^[^\r\n]+\n?$/, `one-line body, got ${JSON.stringify(res.text)}`);
  assert.ok('content-length' in res.headers || res.chunked, 'body length must be delimited');
}

describe('http: routes and statuses', () => {
  test('GET /healthz -> 200, one-line text/plain', T, async () => {
    const res = await get('/healthz');
    assertTextBody(res, 200);
    assert.equal(res.version, '1.1');
  });
  for (const path of ['/healthz', '/metrics', '/']) {
    test(`HEAD ${path} -> 200, the GET headers, no body`, T, async () => {
      const c = await HttpConn.open(srv.port);
      try {
        await c.write(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const h = await c.readResponse({ head: true });
        assert.equal(h.status, 200);
        // no body bytes may follow: the next response must start right away
        await c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const g = await c.readResponse();
        assert.equal(g.status, 200);
        assert.equal(h.headers['content-type'], g.headers['content-type']);
      } finally { c.destroy(); }
    });
  }
  test('GET /no/such/path -> 404, one-line text/plain', T, async () => {
    assertTextBody(await get('/no/such/path'), 404);
  });
  test('GET /echo on a server without --echo -> 404', T, async () => {
    const s = await startServer({ args: [] });
    try {
      const res = await request(s.port, `GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      assertTextBody(res, 404);
    } finally { assert.equal(await s.stop(), 0); }
  });
  for (const [method, path] of [['POST', '/healthz'], ['DELETE', '/metrics'], ['PUT', '/healthz']]) {
    test(`${method} ${path} -> 405 with Allow`, T, async () => {
      const res = await request(srv.port, `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
      assertTextBody(res, 405);
      assert.match(res.headers.allow ?? '', /\bGET\b/, 'a 405 must list the allowed methods (RFC 9110 §15.5.6)');
    });
  }
  test('garbage instead of a request -> 400, one-line text/plain', T, async () => {
    const res = await request(srv.port, 'HELLO THERE\r\n\r\n');
    assertTextBody(res, 400);
  });
  test('HTTP/1.1 request without Host -> 400 (RFC 9112 §3.2)', T, async () => {
    assertTextBody(await request(srv.port, 'GET /healthz HTTP/1.1\r\n\r\n'), 400);
  });
  test('Content-Length together with Transfer-Encoding (smuggling) -> 400', T, async () => {
    const res = await request(srv.port, 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assertTextBody(res, 400);
  });
  test('two different Content-Length headers -> 400', T, async () => {
    const res = await request(srv.port, 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
    assertTextBody(res, 400);
  });
  test('a header line without a colon -> 400', T, async () => {
    assertTextBody(await request(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n'), 400);
  });
  test('GET /healthz?probe=1 (query string) -> 200', T, async () => {
    assert.equal((await get('/healthz?probe=1')).status, 200);
  });
  test('a NUL byte in the request line -> 400', T, async () => {
    const res = await request(srv.port, 'GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n');
    assertTextBody(res, 400);
  });
});

describe('http: keep-alive', () => {
  test('two GETs, one after the other, on one connection', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      for (let i = 0; i < 2; i++) {
        await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
        const r = await c.readResponse();
        assert.equal(r.status, 200, `request ${i + 1}`);
        assert.doesNotMatch(r.headers.connection ?? '', /close/i);
      }
    } finally { c.destroy(); }
  });
  test('three pipelined requests in one write -> three responses in order', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
      const a = await c.readResponse();
      assert.equal(a.status, 200);
      const m = await c.readResponse();
      assert.equal(m.status, 200);
      assert.match(m.text, /^# (HELP|TYPE) /m);
      const b = await c.readResponse();
      assert.equal(b.status, 200);
      assert.equal(b.text, a.text);
    } finally { c.destroy(); }
  });
  test('after a 404 the connection either stays usable or is closed with "Connection: close"', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /nope HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r = await c.readResponse();
      assert.equal(r.status, 404);
      if (/\bclose\b/i.test(r.headers.connection ?? '')) {
        assert.equal((await c.expectClosed()).length, 0);
      } else {
        await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.equal((await c.readResponse()).status, 200);
      }
    } finally { c.destroy(); }
  });
  test('Connection: close -> response, then the server closes', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const r = await c.readResponse();
      assert.equal(r.status, 200);
      assert.match(r.headers.connection ?? '', /close/i);
      assert.equal((await c.expectClosed()).length, 0);
    } finally { c.destroy(); }
  });
  test('HTTP/1.0 without keep-alive -> response, then the server closes', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /healthz HTTP/1.0\r\n\r\n`);
      const r = await c.readResponse();
      assert.equal(r.status, 200);
      assert.equal((await c.expectClosed()).length, 0);
    } finally { c.destroy(); }
  });
  test('a request split into single bytes is still served', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      for (const ch of `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`) await c.write(ch);
      assert.equal((await c.readResponse()).status, 200);
    } finally { c.destroy(); }
  });
  test('a WebSocket upgrade after a plain request on the same connection', T, async () => {
    // keep-alive GET, then the upgrade on the same socket: the server must
    // switch protocols at the right byte.
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal((await c.readResponse()).status, 200);
      await c.write(`GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      const r = await c.readResponse({ head: true });
      assert.equal(r.status, 101);
      const ws = new RawWS(c.socket, c.reader, r);
      await ws.send(text('after keep-alive'));
      await ws.expectMessage(OP.TEXT, 'after keep-alive');
      await ws.closeClean();
    } finally { c.destroy(); }
  });
});

describe('http: limits', () => {
  test('request line over 8 KiB -> 431', T, async () => {
    const res = await request(srv.port, `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertTextBody(res, 431);
  });
  test('one header over 8 KiB -> 431', T, async () => {
    const res = await request(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(9000)}\r\n\r\n`);
    assertTextBody(res, 431);
  });
  test('many small headers adding up to over 8 KiB -> 431', T, async () => {
    let h = '';
    for (let i = 0; i < 300; i++) h += `X-H${i}: ${'c'.repeat(30)}\r\n`;
    const res = await request(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${h}\r\n`);
    assertTextBody(res, 431);
  });
  test('a head of ~7 KiB (under the limit) -> 200', T, async () => {
    const res = await get('/healthz', `X-Fill: ${'d'.repeat(7000)}\r\n`);
    assert.equal(res.status, 200);
  });
  test('an endless header line (no CRLF ever) -> 431, without waiting for the end', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ${'e'.repeat(20000)}`);
      const r = await c.readResponse();
      assertTextBody(r, 431);
    } finally { c.destroy(); }
  });
  test('Content-Length over the body limit -> 413 before the body is sent', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n`);
      const r = await c.readResponse();
      assertTextBody(r, 413);
    } finally { c.destroy(); }
  });
  test('a chunked body growing over the limit -> 413', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = `10000\r\n${'f'.repeat(0x10000)}\r\n`;
      let r;
      for (let i = 0; i < 40 && !r; i++) {
        if (!(await c.write(chunk))) break;
        if (c.reader.len > 0 || c.reader.ended) break;
      }
      r = await c.readResponse();
      assertTextBody(r, 413);
    } finally { c.destroy(); }
  });
  test('the server is healthy after the limit tests', T, async () => {
    assert.equal((await get('/healthz')).status, 200);
  });
});

describe('http: /metrics', () => {
  test('Prometheus text exposition format', T, async () => {
    const res = await get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/plain(;|$)/);
    const body = res.text;
    assert.ok(body.endsWith('\n'), 'ends with a newline');
    const typed = new Map();
    let samples = 0;
    for (const line of body.split('\n').slice(0, -1)) {
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
        assert.ok(m || /^# /.test(line), `bad comment line ${JSON.stringify(line)}`);
        if (m && m[1] === 'TYPE') {
          assert.match(m[3], /^(counter|gauge|histogram|summary|untyped)$/, line);
          assert.ok(!typed.has(m[2]), `TYPE twice for ${m[2]}`);
          typed.set(m[2], m[3]);
        }
        continue;
      }
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([-+]?(?:[0-9.]+(?:[eE][-+]?\d+)?|Inf|NaN))( -?\d+)?$/.exec(line);
      assert.ok(m, `bad sample line ${JSON.stringify(line)}`);
      samples++;
      const fam = m[1].replace(/_(bucket|sum|count)$/, '');
      if (typed.get(m[1]) === 'counter' || typed.get(fam) === 'counter') assert.ok(Number(m[3]) >= 0, `negative counter ${line}`);
    }
    assert.ok(samples > 0, 'no samples');
  });
  test('open WebSockets show in the metrics (fresh server: 0 -> 3 -> 0)', T, async () => {
    const s = await startServer({ args: ['--echo'] });
    try {
      const read = async () => {
        const t = (await request(s.port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')).text;
        const m = /^wschat_websockets (\S+)$/m.exec(t);
        assert.ok(m, 'wschat_websockets gauge missing');
        return Number(m[1]);
      };
      const waitFor = async (want) => {
        const deadline = Date.now() + 10000;
        let now;
        while ((now = await read()) !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.equal(now, want);
      };
      await waitFor(0);
      const conns = [];
      for (let i = 0; i < 3; i++) conns.push(await RawWS.connect(s.port, { path: '/echo' }));
      await waitFor(3);
      for (const ws of conns) { await ws.closeClean(); ws.destroy(); }
      await waitFor(0);
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
    }
  });
});

describe('http: static files', () => {
  test('GET / -> 200 text/html with caching headers', T, async () => {
    const res = await get('/');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/html(; *charset=utf-8)?$/i);
    assert.ok(res.headers['cache-control'] || res.headers.etag || res.headers['last-modified'], 'no caching headers');
    assert.match(res.text, /<html/i);
  });
  test('GET /static/style.css -> text/css; /static/app.js -> JavaScript', T, async () => {
    const css = await get('/static/style.css');
    assert.equal(css.status, 200);
    assert.match(css.headers['content-type'] ?? '', /^text\/css/);
    const js = await get('/static/app.js');
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'] ?? '', /^(text|application)\/javascript/);
  });
  test('If-None-Match with the ETag -> 304 without a body', T, async () => {
    const first = await get('/static/style.css');
    const etag = first.headers.etag;
    if (!etag) return; // caching by Cache-Control/Last-Modified only
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(`GET /static/style.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: ${etag}\r\n\r\n`);
      const r = await c.readResponse({ head: true });
      assert.equal(r.status, 304);
      await c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal((await c.readResponse()).status, 200, 'a 304 must not carry a body');
    } finally { c.destroy(); }
  });
  test('GET /static/../../etc/passwd -> 404 (or 400), never a file outside web/', T, async () => {
    for (const p of ['/static/../../etc/passwd', '/static/%2e%2e/%2e%2e/etc/passwd', '/static/nope.js']) {
      const res = await get(p);
      assert.ok(res.status === 404 || res.status === 400, `${p}: got ${res.status}`);
      assert.doesNotMatch(res.text, /root:/);
    }
  });
});

describe('http: a client that pipelines without reading', () => {
  test('is closed once its responses pass --send-queue; the server stays healthy', { timeout: 60000 }, async () => {
    const net = await import('node:net');
    const s = await startServer({ args: ['--send-queue', '65536'] });
    try {
      const sock = net.connect(s.port, '127.0.0.1');
      await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
      sock.pause();                                   // do not read the responses
      sock.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000)));
      await new Promise((r) => setTimeout(r, 1000));
      let received = 0;
      const ended = new Promise((resolve) => { sock.on('end', () => resolve(true)); sock.on('close', () => resolve(true)); });
      sock.on('data', (d) => { received += d.length; });
      sock.on('error', () => {});
      sock.resume();
      const closed = await Promise.race([ended, new Promise((r) => setTimeout(() => r(false), 20000))]);
      assert.ok(closed, 'the connection was not closed');
      // 2,000 index pages would be far more than the limit plus one page.
      assert.ok(received < 2 * 1024 * 1024, `received ${received} bytes`);
      sock.destroy();
      const ok = await request(s.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(ok.status, 200);
    } finally {
      assert.equal(await s.stop(), 0, s.log.slice(-3000));
    }
  });
});
