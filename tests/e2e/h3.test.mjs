// Chromium chats over HTTP/3: Debian's chromium with WebSockets over HTTP/3
// enabled (EnableWebsocketsOverHttp3) and QUIC forced for the test origin
// loads the page over h3 and opens its chat WebSocket with extended CONNECT
// (RFC 9220). Shown from both sides: the page's navigation protocol, the
// server's WebSockets-by-carrier gauge, and Chromium's NetLog with the
// `:protocol: websocket` request. A Node `ws` client on HTTP/1.1 is in the
// same room.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startH3Server } from '../lib/h3.mjs';
import { Chat } from '../lib/chat.mjs';
import { join, say, waitMessage, eventually, noProblems, newPage } from './helpers.mjs';

let srv, browser, netlog;

async function metric(name) {
  const text = await (await fetch(srv.http('/metrics'))).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

before(async () => {
  srv = await startH3Server();
  netlog = path.join(mkdtempSync(path.join(tmpdir(), 'wschat-netlog-')), 'netlog.json');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-quic',
      '--enable-features=EnableWebsocketsOverHttp3',
      `--origin-to-force-quic-on=localhost:${srv.h3port}`,
      `--ignore-certificate-errors-spki-list=${srv.cert.spki}`,
      '--host-resolver-rules=MAP localhost 127.0.0.1',
      `--log-net-log=${netlog}`, '--net-log-capture-mode=Everything'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (!srv) return;
  const code = await srv.stop();
  assert.equal(code, 0, srv.log.slice(-4000));
  assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-4000));
});

describe('Chromium over HTTP/3', () => {
  it('loads the page over h3 and chats on a WebSocket over h3 (RFC 9220)', { timeout: 120000 }, async () => {
    const site = { http: (p) => `https://localhost:${srv.h3port}${p}` };
    const node = await Chat.open(srv.url('/ws/quic?name=nodeclient'));
    await node.next('welcome');
    const page = await newPage(browser);
    await join(page, site, { name: 'chromium', room: 'quic' });
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h3');
    // the server sees the browser's WebSocket on an HTTP/3 stream
    await eventually(async () => assert.equal(await metric('wschat_websockets_by_carrier{carrier="h3"}'), 1));
    assert.equal(await metric('wschat_websockets_by_carrier{carrier="http1"}'), 1); // the Node client
    await say(page, 'hello from chromium over QUIC');
    const m = await node.until((x) => x.type === 'message');
    assert.equal(m.text, 'hello from chromium over QUIC');
    assert.equal(m.from, 'chromium');
    node.send({ type: 'send', room: 'quic', text: 'hello back over HTTP/1.1' });
    await waitMessage(page, 'hello back over HTTP/1.1');
    noProblems(assert, page);
    await page.context().close();
    node.ws.close();
    await eventually(async () => assert.equal(await metric('wschat_websockets_by_carrier{carrier="h3"}'), 0));
    // Chromium's own record: the extended CONNECT went out over HTTP/3
    await browser.close();
    browser = null;
    const log = readFileSync(netlog, 'utf8');
    assert.match(log, /":protocol: websocket"/);
    assert.match(log, /":method: CONNECT"/);
  });
});
