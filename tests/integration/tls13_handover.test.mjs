// The TLS 1.3 handover (net/tls13_rec): after OpenSSL's handshake, wschat
// does the records itself and frees the SSL object. Shown here with real
// clients: Node's https/wss (TLS 1.3, every suite we enable), the client's
// first data arriving in the same read as its Finished (a proxy that holds
// the client's bytes and forwards them in one write), `openssl s_client`
// with its interactive `K` (KeyUpdate, update requested) mid-session, TLS
// 1.2 staying on OpenSSL, close_notify, and 1 MiB each way. The
// wschat_tls_handovers_total counter says which path a connection took.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort } from '../lib/server.mjs';
import { openWs, sendAsync } from '../lib/wsclient.mjs';
import { makeCert, tlsArgs } from '../lib/tls.mjs';

const T = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const insecure = { rejectUnauthorized: false };
let srv, dir, tlsPort;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'wschat-tls13-'));
  const { cert, key } = makeCert(dir);
  tlsPort = await freePort();
  srv = await startServer({ dir, args: ['--echo', ...tlsArgs(tlsPort, cert, key)] });
});
after(async () => {
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, `exit code after SIGTERM\n${srv.log.slice(-4000)}`);
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

// Counters from /metrics on the plain port (so reading them adds no TLS handshake).
async function counters() {
  const text = await fetch(srv.http('/metrics')).then((r) => r.text());
  const get = (name) => Number((text.match(new RegExp(`^${name} (\\d+)`, 'm')) || [])[1]);
  return { handshakes: get('wschat_tls_handshakes_total'), handovers: get('wschat_tls_handovers_total'),
    failures: get('wschat_tls_failures_total') };
}

async function echoOver(opts, payload) {
  const c = await openWs(`wss://127.0.0.1:${tlsPort}/echo`, { ...insecure, ...opts });
  try {
    const proto = c.ws._socket.getProtocol();
    await sendAsync(c.ws, payload, { binary: Buffer.isBuffer(payload) });
    const m = await c.next('message', 30000);
    assert.ok(m.data.equals(Buffer.isBuffer(payload) ? payload : Buffer.from(payload)), 'echo differs');
    return { proto, cipher: c.ws._socket.getCipher().standardName };
  } finally {
    c.ws.close();
  }
}

// Reads from a TLS socket until `re` matches what came.
function readUntil(sock, re, ms = 10000) {
  return new Promise((resolve, reject) => {
    let got = '';
    const t = setTimeout(() => reject(new Error(`timeout; got ${JSON.stringify(got)}`)), ms);
    const on = (d) => {
      got += d;
      if (re.test(got)) { clearTimeout(t); sock.off('data', on); resolve(got); }
    };
    sock.on('data', on);
  });
}

describe('tls13 handover', () => {
  test('wss /echo over TLS 1.3 with each suite: handed over, messages both ways', T, async () => {
    for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
      const before = await counters();
      const r = await echoOver({ minVersion: 'TLSv1.3', ciphers: suite }, `hello with ${suite}`);
      assert.equal(r.proto, 'TLSv1.3');
      assert.equal(r.cipher, suite);
      const after = await counters();
      assert.equal(after.handovers - before.handovers, 1, `one handover (${suite})`);
      assert.equal(after.failures, before.failures);
    }
  });

  test('1 MiB each way, and 500 small messages in one flush, after the handover', T, async () => {
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 29 + (i >> 10)) & 0xff;
    await echoOver({ minVersion: 'TLSv1.3' }, big);
    const c = await openWs(`wss://127.0.0.1:${tlsPort}/echo`, { ...insecure, minVersion: 'TLSv1.3' });
    for (let i = 0; i < 500; i++) c.ws.send(`m${i}`);
    for (let i = 0; i < 500; i++) assert.equal((await c.next('message')).data.toString(), `m${i}`);
    c.ws.close();
  });

  test("the client's first data in the same read as its Finished: read with seq 0", T, async () => {
    // A proxy that holds what the client sends for 150 ms and forwards it in
    // one write: the client's Finished and its request reach wschat together.
    const writes = [];
    const proxy = net.createServer((cs) => {
      const up = net.connect(tlsPort, '127.0.0.1');
      up.setNoDelay(true);
      let pending = [];
      let timer = null;
      cs.on('data', (d) => {
        pending.push(d);
        timer ??= setTimeout(() => {
          timer = null;
          const b = Buffer.concat(pending);
          pending = [];
          writes.push(b);
          up.write(b);
        }, 150);
      });
      up.on('data', (d) => cs.write(d));
      up.on('end', () => cs.end());
      cs.on('end', () => setTimeout(() => up.end(), 300));
      cs.on('error', () => up.destroy());
      up.on('error', () => cs.destroy());
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const before = await counters();
      const s = tls.connect({ host: '127.0.0.1', port: proxy.address().port, servername: 'localhost',
        minVersion: 'TLSv1.3', ...insecure });
      // Written before the handshake is done: Node sends it right after its Finished.
      s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      const body = await new Promise((resolve, reject) => {
        let b = '';
        s.on('data', (d) => { b += d; });
        s.on('end', () => resolve(b));
        s.on('error', reject);
      });
      assert.match(body, /^HTTP\/1\.1 200/);
      // The second forwarded write held the Finished (a handshake record
      // under encryption, type 0x17) AND the request: more than one record.
      assert.equal(writes.length, 2, 'ClientHello, then Finished + data');
      let recs = 0;
      for (let o = 0; o + 5 <= writes[1].length; o += 5 + writes[1].readUInt16BE(o + 3)) recs++;
      assert.ok(recs >= 2, `Finished and data in one write (${recs} records)`);
      const after = await counters();
      assert.equal(after.handovers - before.handovers, 1);
      assert.equal(after.failures, before.failures);
    } finally {
      proxy.close();
    }
  });

  test('openssl s_client: K (KeyUpdate, update requested) mid-session, then more requests', T, async () => {
    const before = await counters();
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-servername', 'localhost',
      '-tls1_3', '-alpn', 'http/1.1', '-crlf'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const waitOut = async (n, ms = 10000) => {
      const t0 = Date.now();
      while ((out.match(/HTTP\/1\.1 200/g) || []).length < n) {
        if (Date.now() - t0 > ms) throw new Error(`no response ${n}\nstdout: ${out}\nstderr: ${err}`);
        await sleep(50);
      }
    };
    try {
      const req = 'GET /healthz HTTP/1.1\nHost: localhost\n\n';
      await sleep(500);
      p.stdin.write(req);
      await waitOut(1);
      for (let i = 0; i < 3; i++) {
        p.stdin.write('K\n');   // alone in its read: s_client takes it as a command
        await sleep(300);
        p.stdin.write(req);
        await waitOut(2 + i);
      }
      assert.match(err, /KEYUPDATE/, 's_client sent its KeyUpdate');
    } finally {
      p.stdin.end();
      p.kill();
    }
    const after = await counters();
    assert.equal(after.handovers - before.handovers, 1);
    assert.equal(after.failures, before.failures, 'no TLS failure on the server');
  });

  test('TLS 1.2 (maxVersion) stays on OpenSSL and works', T, async () => {
    const before = await counters();
    const r = await echoOver({ maxVersion: 'TLSv1.2' }, 'over tls 1.2');
    assert.equal(r.proto, 'TLSv1.2');
    const after = await counters();
    assert.equal(after.handshakes - before.handshakes, 1);
    assert.equal(after.handovers, before.handovers, 'no handover for TLS 1.2');
  });

  test('close_notify after the handover: the server answers and closes cleanly', T, async () => {
    const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'localhost', minVersion: 'TLSv1.3', ...insecure });
    await new Promise((r, j) => { s.once('secureConnect', r); s.once('error', j); });
    s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await readUntil(s, /HTTP\/1\.1 200[\s\S]*\r\n\r\n/);
    const before = await counters();
    const ended = new Promise((r) => s.on('end', r));
    const closed = new Promise((r) => s.on('close', r));
    s.end();   // close_notify, then FIN
    await ended;   // the server's close_notify (or FIN) came back
    await closed;
    await sleep(100);
    const after = await counters();
    assert.equal(after.failures, before.failures, 'a clean close is no failure');
  });
});
