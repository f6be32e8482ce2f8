// The RFC 6455 §4.2 opening handshake on GET /echo, byte for byte: 101 with
// the right Sec-WebSocket-Accept; 400 for malformed upgrades; 426 (+
// Sec-WebSocket-Version: 13) for a wrong or missing version; 403 for a
// foreign Origin; subprotocol selection; the handshake timeout.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { HttpConn, request } from '../lib/rawhttp.mjs';
import { RawWS, OP, text, upgradeRequest, acceptFor, sleep } from '../lib/rawws.mjs';
import { openWs } from '../lib/wsclient.mjs';

const T = { timeout: 60000 };
let srv;

before(async () => { srv = await startServer({ args: ['--echo'] }); });
after(async () => {
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-4000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

const upgrade = (port, opts) => request(port, upgradeRequest(port, opts));

function assertTextError(res, status) {
  assert.equal(res.status, status, `status (body ${JSON.stringify(res.text)})`);
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  assert.match(res.text, /^[^\r\n]+\n?$/, `one-line body, got ${JSON.stringify(res.text)}`);
  assert.equal(Number(res.headers['content-length'] ?? res.body.length), res.body.length);
  assert.equal(res.headers['sec-websocket-accept'], undefined, 'no accept header on a refusal');
}

// A handshake that must succeed; returns the response.
async function expect101(port, opts = {}) {
  const key = opts.key ?? 'dGhlIHNhbXBsZSBub25jZQ==';
  const c = await HttpConn.open(port);
  try {
    await c.write(upgradeRequest(port, { ...opts, key }));
    const res = await c.readResponse({ head: true });
    assert.equal(res.status, 101, `expected 101, got ${res.status} ${res.reason}`);
    assert.equal(res.version, '1.1');
    assert.equal((res.headers.upgrade ?? '').toLowerCase(), 'websocket');
    assert.ok((res.headers.connection ?? '').toLowerCase().split(/\s*,\s*/).includes('upgrade'), `Connection: ${res.headers.connection}`);
    assert.equal(res.headers['sec-websocket-accept'], acceptFor(key));
    return res;
  } finally {
    c.destroy();
  }
}

describe('handshake: accepted', () => {
  test('RFC 6455 sample key -> 101 with Sec-WebSocket-Accept s3pPLMBiTxaQ9kYGzzhZRbK+xOo=', T, async () => {
    const res = await expect101(srv.port, { key: 'dGhlIHNhbXBsZSBub25jZQ==' });
    assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(res.headers['sec-websocket-protocol'], undefined, 'no subprotocol when none was offered');
    assert.equal(res.headers['sec-websocket-extensions'], undefined, 'no extension when none was offered');
  });
  test('an unknown extension offered is not accepted', T, async () => {
    const res = await expect101(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'x-unknown-ext; foo=1' } });
    assert.doesNotMatch(res.headers['sec-websocket-extensions'] ?? '', /x-unknown-ext/);
  });
  test('header names and token values are case-insensitive', T, async () => {
    const port = srv.port;
    const key = 'x3JJHMbDL1EzLkh9GBhXDw==';
    const raw = `GET /echo HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nupgrade: WebSocket\r\nCONNECTION: UPGRADE\r\n`
      + `sec-websocket-key: ${key}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n`;
    const res = await request(port, raw, { head: true });
    assert.equal(res.status, 101);
    assert.equal(res.headers['sec-websocket-accept'], acceptFor(key));
  });
  test('Connection: keep-alive, Upgrade (Firefox) -> 101', T, async () => {
    await expect101(srv.port, { headers: { Connection: 'keep-alive, Upgrade' } });
  });
  test('Connection: Upgrade,keep-alive and Upgrade: websocket, h2c (token lists, odd spacing) -> 101', T, async () => {
    await expect101(srv.port, { headers: { Connection: 'Upgrade,keep-alive', Upgrade: 'websocket, h2c' } });
  });
  test('Sec-WebSocket-Key with surrounding whitespace -> accept computed from the trimmed key', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(upgradeRequest(srv.port, { headers: { 'Sec-WebSocket-Key': '  dGhlIHNhbXBsZSBub25jZQ==\t' } }));
      const res = await c.readResponse({ head: true });
      assert.equal(res.status, 101);
      assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    } finally { c.destroy(); }
  });
  test('a query string on /echo -> 101', T, () => expect101(srv.port, { path: '/echo?client=test&x=1' }));
  test('Connection split over two header lines (keep-alive / Upgrade) -> 101', T, async () => {
    await expect101(srv.port, { headers: { Connection: ['keep-alive', 'Upgrade'] } });
  });
  test('frames in the same write as the request are not lost', T, async () => {
    const ws = await RawWS.connect(srv.port, { path: '/echo', extra: Buffer.concat([text('early 1'), text('early 2')]) });
    try {
      await ws.expectMessage(OP.TEXT, 'early 1');
      await ws.expectMessage(OP.TEXT, 'early 2');
      await ws.closeClean();
    } finally { ws.destroy(); }
  });
  test('upgrade request and a frame sent one byte per write -> 101, then the echo', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      const bytes = Buffer.concat([Buffer.from(upgradeRequest(srv.port, { key: 'dGhlIHNhbXBsZSBub25jZQ==' })), text('trickled')]);
      for (const b of bytes) await c.write(Buffer.from([b]));
      const res = await c.readResponse({ head: true });
      assert.equal(res.status, 101);
      assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      const ws = new RawWS(c.socket, c.reader, res);
      await ws.expectMessage(OP.TEXT, 'trickled');
      await ws.closeClean();
    } finally { c.destroy(); }
  });
  test('plain GET, upgrade and a frame pipelined in one write -> 200, 101, echo', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(Buffer.concat([
        Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n${upgradeRequest(srv.port)}`), text('pipelined')]));
      assert.equal((await c.readResponse()).status, 200);
      const res = await c.readResponse({ head: true });
      assert.equal(res.status, 101);
      const ws = new RawWS(c.socket, c.reader, res);
      await ws.expectMessage(OP.TEXT, 'pipelined');
      await ws.closeClean();
    } finally { c.destroy(); }
  });
  test('the independent client (ws) connects and echoes', T, async () => {
    const c = await openWs(srv.url('/echo'));
    c.ws.send('ok');
    assert.equal((await c.next('message')).data.toString(), 'ok');
    c.ws.close(1000);
    assert.equal((await c.closed).code, 1000);
  });
});

describe('handshake: subprotocol', () => {
  test('wschat.v1 offered -> selected', T, async () => {
    const res = await expect101(srv.port, { headers: { 'Sec-WebSocket-Protocol': 'wschat.v1' } });
    assert.equal(res.headers['sec-websocket-protocol'], 'wschat.v1');
  });
  test('"chat, wschat.v1" offered -> wschat.v1 selected', T, async () => {
    const res = await expect101(srv.port, { headers: { 'Sec-WebSocket-Protocol': 'chat, wschat.v1' } });
    assert.equal(res.headers['sec-websocket-protocol'], 'wschat.v1');
  });
  test('subprotocols over two header lines ("chat" / "wschat.v1") -> wschat.v1 selected', T, async () => {
    const res = await expect101(srv.port, { headers: { 'Sec-WebSocket-Protocol': ['chat', 'wschat.v1'] } });
    assert.equal(res.headers['sec-websocket-protocol'], 'wschat.v1');
  });
  test('only unknown subprotocols offered -> 101 without Sec-WebSocket-Protocol', T, async () => {
    const res = await expect101(srv.port, { headers: { 'Sec-WebSocket-Protocol': 'chat, superchat' } });
    assert.equal(res.headers['sec-websocket-protocol'], undefined);
  });
  test('the ws client asking for wschat.v1 gets it', T, async () => {
    const c = await openWs(srv.url('/echo'), {}, ['wschat.v1']);
    assert.equal(c.ws.protocol, 'wschat.v1');
    c.ws.close(1000);
    await c.closed;
  });
});

describe('handshake: 400 for malformed upgrades', () => {
  const cases = [
    ['no Sec-WebSocket-Key', { headers: { 'Sec-WebSocket-Key': null } }],
    ['empty Sec-WebSocket-Key', { headers: { 'Sec-WebSocket-Key': '' } }],
    ['key of 15 bytes', { key: Buffer.alloc(15, 1).toString('base64') }],
    ['key of 17 bytes', { key: Buffer.alloc(17, 1).toString('base64') }],
    ['key of 16 bytes without base64 padding', { key: Buffer.alloc(16, 1).toString('base64').replace(/=+$/, '') }],
    ['key that is not base64', { key: '!!!!!!!!!!!!!!!!!!!!!!==' }],
    ['two different Sec-WebSocket-Key headers', { headers: { 'Sec-WebSocket-Key': ['dGhlIHNhbXBsZSBub25jZQ==', 'x3JJHMbDL1EzLkh9GBhXDw=='] } }],
    ['no Upgrade header', { headers: { Upgrade: null } }],
    ['Upgrade: h2c (no websocket token)', { headers: { Upgrade: 'h2c' } }],
    ['Upgrade: websockets (not the token)', { headers: { Upgrade: 'websockets' } }],
    ['no Connection header', { headers: { Connection: null } }],
    ['Connection: keep-alive (no upgrade token)', { headers: { Connection: 'keep-alive' } }],
    ['Connection: upgraded (not the token)', { headers: { Connection: 'upgraded' } }],
    ['no Host header', { headers: { Host: null } }],
    ['HTTP/1.0', { version: 'HTTP/1.0' }],
  ];
  for (const [name, opts] of cases) {
    test(`${name} -> 400 with a one-line text body`, T, async () => {
      const res = await upgrade(srv.port, opts);
      assertTextError(res, 400);
    });
  }
  test('POST with upgrade headers -> 400 or 405', T, async () => {
    const res = await upgrade(srv.port, { method: 'POST' });
    assert.ok(res.status === 400 || res.status === 405, `got ${res.status}`);
    assertTextError(res, res.status);
    if (res.status === 405) assert.match(res.headers.allow ?? '', /\bGET\b/, '405 must carry Allow');
  });
  test('a refused upgrade is not switched: frames after it are not echoed', T, async () => {
    const c = await HttpConn.open(srv.port);
    try {
      await c.write(upgradeRequest(srv.port, { headers: { 'Sec-WebSocket-Key': null } }));
      const res = await c.readResponse();
      assertTextError(res, 400);
      await c.write(text('not a websocket'));
      const rest = await c.expectClosed(10000).catch(() => c.reader.takeAll());
      assert.ok(!rest.includes(Buffer.from('not a websocket')), 'bytes echoed on a refused upgrade');
    } finally { c.destroy(); }
  });
});

describe('handshake: 426 for the version', () => {
  for (const [name, v] of [['missing', null], ['8', '8'], ['12', '12'], ['14', '14'], ['garbage', 'thirteen']]) {
    test(`Sec-WebSocket-Version ${name} -> 426 with Sec-WebSocket-Version: 13`, T, async () => {
      const res = await upgrade(srv.port, { headers: { 'Sec-WebSocket-Version': v } });
      assertTextError(res, 426);
      assert.equal(res.headers['sec-websocket-version'], '13');
    });
  }
});

describe('handshake: Origin', () => {
  test('no Origin (non-browser client) -> 101', T, () => expect101(srv.port));
  test('Origin equal to the Host -> 101', T, () => expect101(srv.port, { headers: { Origin: `http://127.0.0.1:${srv.port}` } }));
  test('Origin with https and the Host (scheme-less match) -> 101', T, () => expect101(srv.port, { headers: { Origin: `https://127.0.0.1:${srv.port}` } }));
  test('Origin localhost with Host localhost -> 101', T, () => expect101(srv.port, {
    headers: { Host: `localhost:${srv.port}`, Origin: `http://localhost:${srv.port}` },
  }));
  const foreign = (p) => [
    ['a foreign site', 'http://evil.example'],
    ['the same host on another port', `http://127.0.0.1:${p + 1}`],
    ['a suffix attack on the host', `http://127.0.0.1:${p}.evil.example`],
    ['a host that merely starts the same', `http://127.0.0.10:${p}`],
    ['"null" (sandboxed page)', 'null'],
    ['userinfo trick', `http://127.0.0.1:${p}@evil.example`],
    ['the host in the path', `http://evil.example/127.0.0.1:${p}`],
    ['the host in the fragment', `http://evil.example#127.0.0.1:${p}`],
    ['two origins in one header', `http://evil.example, http://127.0.0.1:${p}`],
  ];
  test('foreign Origins -> 403 with a one-line text body', T, async () => {
    for (const [name, origin] of foreign(srv.port)) {
      const res = await upgrade(srv.port, { headers: { Origin: origin } });
      assert.equal(res.status, 403, `${name} (${origin}): got ${res.status}`);
      assertTextError(res, 403);
    }
  });
  test('the ws client with a foreign origin is refused with 403', T, async () => {
    await assert.rejects(openWs(srv.url('/echo'), { origin: 'http://evil.example' }), /unexpected response 403/);
  });

  test('--allow-origin: the listed origin and the Host pass, others get 403', T, async () => {
    const s = await startServer({ args: ['--echo', '--allow-origin', 'https://app.example', '--allow-origin', 'http://other.example:8080'] });
    try {
      await expect101(s.port, { headers: { Origin: 'https://app.example' } });
      await expect101(s.port, { headers: { Origin: 'http://other.example:8080' } });
      await expect101(s.port, { headers: { Origin: `http://127.0.0.1:${s.port}` } });
      for (const o of ['http://app.example', 'https://app.example.evil', 'https://evil.app.example', 'http://other.example', 'http://evil.example']) {
        const res = await upgrade(s.port, { headers: { Origin: o } });
        assert.equal(res.status, 403, `${o}: got ${res.status}`);
      }
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });
  test('--allow-origin "*": any Origin passes', T, async () => {
    const s = await startServer({ args: ['--echo', '--allow-origin', '*'] });
    try {
      await expect101(s.port, { headers: { Origin: 'http://evil.example' } });
      await expect101(s.port, { headers: { Origin: 'null' } });
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });
});

describe('handshake: timeout (--handshake-timeout 1)', () => {
  let hs;
  before(async () => { hs = await startServer({ args: ['--echo', '--handshake-timeout', '1'] }); });
  after(async () => { if (hs) assert.equal(await hs.stop(), 0, hs.log.slice(-3000)); });

  test('a connection that sends nothing is closed', T, async () => {
    const c = await HttpConn.open(hs.port);
    try {
      const t0 = Date.now();
      const extra = await c.expectClosed(15000);
      assert.equal(extra.length, 0, `unexpected bytes: ${extra.toString()}`);
      assert.ok(Date.now() - t0 >= 500, 'closed before the timeout');
    } finally { c.destroy(); }
  });
  test('a request that never completes is closed (optionally with 408)', T, async () => {
    const c = await HttpConn.open(hs.port);
    try {
      await c.write(`GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${hs.port}\r\nUpgrade: websocket\r\n`);
      const t0 = Date.now();
      const extra = await c.expectClosed(15000);
      if (extra.length) assert.match(extra.toString('latin1'), /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - t0 >= 500, 'closed before the timeout');
    } finally { c.destroy(); }
  });
  test('a request trickling in one byte every 200 ms is still cut at the timeout', T, async () => {
    const c = await HttpConn.open(hs.port);
    try {
      const req = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`;
      const t0 = Date.now();
      for (const ch of req) {
        if (c.reader.ended) break;
        await c.write(ch);
        await sleep(200);
        assert.ok(Date.now() - t0 < 15000, 'slowloris connection kept open for 15 s');
      }
      assert.ok(c.reader.ended, 'slowloris request was served or kept open');
    } finally { c.destroy(); }
  });
  test('an upgraded connection is not affected by the handshake timeout', T, async () => {
    const ws = await RawWS.connect(hs.port, { path: '/echo' });
    try {
      await sleep(2500);
      await ws.send(text('still open'));
      await ws.expectMessage(OP.TEXT, 'still open');
      await ws.closeClean();
    } finally { ws.destroy(); }
  });
});
