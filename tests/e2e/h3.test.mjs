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
import { appStarted, joinStarted, say, waitMessage, eventually, noProblems, newPage } from './helpers.mjs';

let srv, browser, netlog;

async function metric(name) {
  const text = await (await fetch(srv.http('/metrics'))).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// Records every request the page makes and how it ended (status and protocol,
// or the failure), for the failure message.
function watchRequests(page) {
  const seen = [];
  const t0 = Date.now();
  const at = () => `+${Date.now() - t0}ms`;
  page.on('request', (r) => seen.push(`${at()} -> ${r.method()} ${r.url()}`));
  page.on('requestfailed', (r) => seen.push(`${at()} FAILED ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => seen.push(`${at()} <- ${r.status()} ${r.url()}`));
  page.on('console', (m) => seen.push(`${at()} console.${m.type()}: ${m.text()}`));
  page.on('load', () => seen.push(`${at()} load`));
  return seen;
}

// What the page fetched and how each fetch ended, and the server's side,
// so a failure on a CI machine says where the page got stuck.
function failureContext(page, seen) {
  return `\n-- page requests:\n${seen.join('\n')}\n-- page problems: ${page.problems.join('; ')}` +
    `\n-- server log (tail):\n${srv.log.slice(-6000)}`;
}

// Loads the page over HTTP/3 until its script has started. Once, in CI,
// Chromium's load event came without the page's script having run (a Join
// click was then a plain form submission, refused by the CSP, and
// Playwright waited on it for ever); it was not reproduced in 270 loads
// under heavy load here. Should it happen, the test says so with the
// page's requests and the server's log, and loads the page once more: the
// chat over HTTP/3 is what this test proves. A second failure fails it.
async function openOverH3(page, site, room, seen, t) {
  await page.goto(site.http(`/#${room}`));
  try {
    await appStarted(page, 5000); // the load event has come: it has run, or it will not
    return;
  } catch (e) {
    t.diagnostic(`the page's script did not start on the first load; loading again${failureContext(page, seen)}`);
  }
  seen.length = 0;
  page.problems.length = 0; // reported above
  await page.reload(); // (a goto to the same URL with its #room would not load it again)
  try {
    await appStarted(page);
  } catch (e) {
    e.message += failureContext(page, seen);
    throw e;
  }
}

before(async () => {
  srv = await startH3Server({ args: ['--log-level', 'debug'] }); // debug: QUIC connection errors in srv.log
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
  it('loads the page over h3 and chats on a WebSocket over h3 (RFC 9220)', { timeout: 120000 }, async (t) => {
    const site = { http: (p) => `https://localhost:${srv.h3port}${p}` };
    const node = await Chat.open(srv.url('/ws/quic?name=nodeclient'));
    await node.next('welcome');
    const page = await newPage(browser);
    const seen = watchRequests(page);
    await openOverH3(page, site, 'quic', seen, t);
    try {
      await joinStarted(page, { name: 'chromium', room: 'quic' });
    } catch (e) {
      e.message += failureContext(page, seen);
      throw e;
    }
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
