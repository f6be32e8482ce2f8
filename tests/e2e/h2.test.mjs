// The web page over https with HTTP/2, and its WebSocket over that same
// HTTP/2 connection (RFC 8441), in Debian's Chromium. Proven from the
// server's side: /metrics counts the page's WebSockets under carrier "h2"
// (none under "http1"), and the server's log shows each WebSocket opened on
// a stream of a connection that had already carried the page's requests.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort } from '../lib/server.mjs';
import { makeCert, tlsArgs } from '../lib/tls.mjs';
import { h2session, get } from '../lib/h2ws.mjs';
import {
  launch, eventually, say, waitMessage, memberVisible, waitOnline, noProblems, testWithDiagnostics,
} from './helpers.mjs';

const ROOM = 'h2room';

describe('web page over HTTP/2: its WebSocket rides the same connection', { timeout: 120000 }, () => {
  let srv, browser, tlsPort;
  const it = testWithDiagnostics(() => ({ srv }));

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wschat-e2e-h2-'));
    const { cert, key } = makeCert(dir);
    // two free ports asked for one after the other may be the same one: retry
    for (let i = 0; !srv; i++) {
      tlsPort = await freePort();
      try { srv = await startServer({ dir, args: [...tlsArgs(tlsPort, cert, key), '--log-level', 'debug'] }); } catch (e) { if (i === 2) throw e; }
    }
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    const code = await srv?.stop();
    if (code !== 0 && code !== null) process.stderr.write(srv.log);
  });

  async function carriers() {
    const s = await h2session(tlsPort, { scheme: 'https', options: { rejectUnauthorized: false } });
    const m = (await get(s, '/metrics')).body;
    s.close();
    const val = (c) => Number(m.match(new RegExp(`wschat_websockets_by_carrier\\{carrier="${c}"\\} (\\d+)`))[1]);
    return { h2: val('h2'), http1: val('http1') };
  }

  async function openPage(name) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
    const resp = await page.goto(`https://127.0.0.1:${tlsPort}/#${ROOM}`);
    assert.equal(resp.status(), 200);
    await page.getByTestId('name-input').fill(name);
    await page.getByTestId('room-input').fill(ROOM);
    await page.getByTestId('join-button').click();
    await waitOnline(page);
    await memberVisible(page, name);
    return page;
  }

  it('two pages chat; both WebSockets are HTTP/2 streams on their page connections', async () => {
    const alice = await openPage('alice');
    const bob = await openPage('bob');
    await memberVisible(alice, 'bob');
    await say(alice, 'hello over h2');
    await waitMessage(bob, 'hello over h2');
    await say(bob, 'and back');
    await waitMessage(alice, 'and back');
    await eventually(async () => assert.deepEqual(await carriers(), { h2: 2, http1: 0 }));
    // each WebSocket went on a connection that had carried earlier streams
    // (the page and its assets): stream ids > 1, streams_before > 0, on TLS
    const opened = [...srv.log.matchAll(/h2 websocket on stream stream=(\d+) streams_before=(\d+) tls=1/g)];
    assert.equal(opened.length, 2, srv.log.slice(-3000));
    for (const [, stream, before] of opened) {
      assert.ok(Number(stream) > 1, `stream ${stream}`);
      assert.ok(Number(before) > 0, `streams before ${before}`);
    }
    noProblems(assert, alice, bob);
    await alice.context().close();
    await bob.context().close();
    await eventually(async () => assert.deepEqual(await carriers(), { h2: 0, http1: 0 }));
  });
});
