// HTTP/3 (QUIC) front: the page, assets, /healthz and /metrics over h3,
// answered to Debian's ngtcp2 example client (gtlsclient — not our code);
// QUIC behaviour: connection migration, key update, Retry, the connection
// limit, and garbage / truncated / flooded Initial datagrams doing no harm
// to other clients.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startH3Server, gtlsclient, sendDatagrams, junkInitial, makeCert } from '../lib/h3.mjs';

const T = { timeout: 120000 };
const cert = makeCert();

async function metric(srv, name) {
  const text = await (await fetch(srv.http('/metrics'))).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function stopClean(srv) {
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-4000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
}

describe('h3 front', () => {
  let srv;
  before(async () => { srv = await startH3Server({ cert }); });
  after(async () => { if (srv) await stopClean(srv); });

  test('page, asset, healthz and metrics over HTTP/3, same bytes as HTTP/1.1', T, async () => {
    const { res, log } = await gtlsclient(srv.h3port, ['/', '/static/app.js', '/healthz', '/metrics']);
    assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200], log.slice(-3000));
    const page = Buffer.from(await (await fetch(srv.http('/'))).arrayBuffer());
    assert.ok(res[0].body.equals(page), 'index.html over h3 equals HTTP/1.1');
    const js = Buffer.from(await (await fetch(srv.http('/static/app.js'))).arrayBuffer());
    assert.ok(res[1].body.equals(js), 'app.js over h3 equals HTTP/1.1');
    assert.equal(res[0].headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res[1].headers['content-length'], String(js.length));
    assert.equal(res[2].body.toString(), 'ok\n');
    assert.match(res[3].body.toString(), /^wschat_h3_connections 1$/m);
  });

  test('HTTPS responses advertise HTTP/3 (Alt-Svc) over HTTP/1.1 and HTTP/2, plain HTTP ones do not', T, async () => {
    const https = await import('node:https');
    const alt = await new Promise((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: srv.tlsPort, path: '/healthz', rejectUnauthorized: false, agent: false },
        (res) => { res.resume(); resolve(res.headers['alt-svc']); }).on('error', reject);
    });
    assert.equal(alt, `h3=":${srv.h3port}"; ma=86400`);
    assert.equal((await fetch(srv.http('/healthz'))).headers.get('alt-svc'), null);
    // Over HTTP/2 (ALPN h2, what a browser on https negotiates) too; not over h2c.
    const http2 = await import('node:http2');
    const h2alt = async (url, opts) => {
      const session = http2.connect(url, opts);
      try {
        return await new Promise((resolve, reject) => {
          const req = session.request({ ':path': '/healthz' });
          req.on('response', (h) => { req.resume(); resolve(h['alt-svc'] ?? null); });
          req.on('error', reject);
          req.end();
        });
      } finally {
        session.close();
      }
    };
    assert.equal(await h2alt(`https://127.0.0.1:${srv.tlsPort}`, { rejectUnauthorized: false }), `h3=":${srv.h3port}"; ma=86400`);
    assert.equal(await h2alt(`http://127.0.0.1:${srv.port}`), null);
  });

  test('errors: 404, 405 and WebSocket paths without extended CONNECT', T, async () => {
    const { res } = await gtlsclient(srv.h3port, ['/nope', '/ws']);
    assert.equal(res[0].status, 404);
    assert.equal(res[0].body.toString(), 'not found\n');
    assert.equal(res[1].status, 405);
    // The same routes as HTTP/1.1 and HTTP/2 (transport/routes): the 405s say what is allowed.
    assert.equal(res[1].headers.allow, 'CONNECT');
    assert.equal(res[1].body.toString(), 'WebSocket endpoints over HTTP/3 take extended CONNECT (RFC 9220)\n');
    const { res: post } = await gtlsclient(srv.h3port, ['/healthz'], { args: ['-m', 'POST'] });
    assert.equal(post[0].status, 405);
    assert.equal(post[0].headers.allow, 'GET, HEAD');
  });

  test('migration (NAT rebinding, new local address) and key update keep the connection', T, async () => {
    for (const args of [['--nat-rebinding', '--delay-stream=300ms', '--change-local-addr=100ms'],
      ['--key-update=100ms', '--delay-stream=300ms']]) {
      const { res, log } = await gtlsclient(srv.h3port, ['/healthz'], { args });
      assert.equal(res[0].status, 200, `${args}: ${log.slice(-2000)}`);
    }
  });

  test('stateless reset for a packet of an unknown connection; nothing back for an undecryptable Initial', T, async () => {
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    const replies = [];
    sock.on('message', (m) => replies.push(m));
    await new Promise((r) => sock.bind(0, '127.0.0.1', r));
    const short = Buffer.alloc(80, 7);
    short[0] = 0x40; // short header, fixed bit; 16 bytes of "connection ID" nobody owns
    sock.send(short, srv.h3port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(replies.length, 1, 'one stateless reset');
    assert.ok(replies[0].length < short.length, 'shorter than what provoked it (no reset loops)');
    assert.equal(replies[0][0] & 0xc0, 0x40, 'looks like a short-header packet');
    replies.length = 0;
    sock.send(junkInitial(1200), srv.h3port, '127.0.0.1'); // a valid header, a payload no key opens
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(replies.length, 0, 'no bytes for an unauthenticated Initial: nothing to amplify');
    sock.close();
  });

  test('garbage, truncated Initials and a flood of Initials do no harm to a real client', T, async () => {
    const dropped0 = await metric(srv, 'wschat_h3_datagrams_dropped_total');
    const junk = [];
    for (let i = 0; i < 200; i++) junk.push(Buffer.from(`garbage ${i} ${'x'.repeat(i % 50)}`));
    for (let i = 0; i < 200; i++) junk.push(junkInitial(1200).subarray(0, 20 + (i % 60)));
    for (let i = 0; i < 2000; i++) junk.push(junkInitial(1200));
    // a short-header packet for a connection that does not exist
    for (let i = 0; i < 20; i++) { const b = Buffer.alloc(60, i); b[0] = 0x40; junk.push(b); }
    const flood = sendDatagrams(srv.h3port, junk);
    const during = await gtlsclient(srv.h3port, ['/healthz']);
    await flood;
    assert.equal(during.res[0].status, 200, during.log.slice(-2000));
    const after = await gtlsclient(srv.h3port, ['/healthz']);
    assert.equal(after.res[0].status, 200);
    // Counted as dropped by us: those the kernel delivered (a busy machine's UDP receive buffer
    // drops some of a 2.4 MB burst before we see it).
    const dropped = await metric(srv, 'wschat_h3_datagrams_dropped_total') - dropped0;
    assert.ok(dropped >= 200, `dropped ${dropped}`);
    // the junk holds no connection
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(await metric(srv, 'wschat_h3_connections') <= 1);
    assert.equal((await fetch(srv.http('/healthz'))).status, 200);
  });
});

describe('h3 limits', () => {
  test('idle timeout: a client that goes silent (SIGSTOP) is dropped, with its WebSocket', T, async () => {
    const { H3WS } = await import('../lib/h3.mjs');
    const srv = await startH3Server({ cert, args: ['--echo', '--h3-idle-timeout', '2', '--ping-interval', '0'] });
    try {
      const c = new H3WS(srv.h3port, ['/echo']);
      await c.waitFor((e) => e.kind === 'open');
      assert.equal(await metric(srv, 'wschat_h3_connections'), 1);
      c.proc.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await metric(srv, 'wschat_h3_connections'), 1, 'not before the timeout');
      const t0 = Date.now();
      while (await metric(srv, 'wschat_h3_connections') !== 0) {
        assert.ok(Date.now() - t0 < 10000, 'dropped within the idle timeout (2 s) and some slack');
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await metric(srv, 'wschat_websockets_by_carrier{carrier="h3"}'), 0);
      c.proc.kill('SIGKILL');
    } finally { await stopClean(srv); }
  });

  test('Retry: with --h3-retry-above 0 every client proves its address first', T, async () => {
    const srv = await startH3Server({ cert, args: ['--h3-retry-above', '0'] });
    try {
      const { res, log } = await gtlsclient(srv.h3port, ['/healthz'], { args: [] });
      assert.equal(res[0].status, 200, log.slice(-2000));
      assert.match(log, /Retry/i);
    } finally { await stopClean(srv); }
  });

  test('past --h3-max-connections a new client is refused (CONNECTION_REFUSED), others go on', T, async () => {
    const srv = await startH3Server({ cert, args: ['--h3-max-connections', '1'] });
    try {
      // the first client holds its connection for a while (a delayed stream)
      const first = gtlsclient(srv.h3port, ['/healthz'], { args: ['--delay-stream=1500ms'] });
      await new Promise((r) => setTimeout(r, 400));
      const second = await gtlsclient(srv.h3port, ['/healthz']);
      assert.equal(second.res[0].status, 0);
      assert.match(second.log, /CONNECTION_REFUSED|0x2\b|error_code=.*\(0x2\)|too many connections/i, second.log.slice(-2000));
      assert.equal((await first).res[0].status, 200);
      assert.ok(await metric(srv, 'wschat_h3_connections_refused_total') >= 1);
    } finally { await stopClean(srv); }
  });
});
