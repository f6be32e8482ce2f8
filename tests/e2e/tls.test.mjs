// Browser test over TLS: Chromium opens the page over https with the
// self-signed certificate the test makes (ignoreHTTPSErrors), its
// WebSocket goes over wss and negotiates permessage-deflate (the page's
// ws.extensions), and two people chat through it.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort } from '../lib/server.mjs';
import { makeCert, tlsArgs } from '../lib/tls.mjs';
import { T, launch, say, waitMessage, memberVisible, noProblems, waitOnline, testWithDiagnostics } from './helpers.mjs';

const ROOM = 'secure';

describe('web page over https and wss with permessage-deflate', { timeout: 110000 }, () => {
  let srv, browser, tlsPort, alice, bob;
  const it = testWithDiagnostics(() => ({ srv }));
  const https = (p) => `https://localhost:${tlsPort}${p}`;

  async function securePage() {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
    return page;
  }

  async function joinSecure(page, name) {
    await page.goto(https(`/#${ROOM}`));
    await page.getByTestId('name-input').fill(name);
    await page.getByTestId('room-input').fill(ROOM);
    await page.getByTestId('join-button').click();
    await waitOnline(page);
    await memberVisible(page, name);
  }

  before(async () => {
    tlsPort = await freePort();
    const { cert, key } = makeCert(mkdtempSync(path.join(tmpdir(), 'wschat-e2e-tls-')));
    srv = await startServer({ args: tlsArgs(tlsPort, cert, key) });
    browser = await launch();
    alice = await securePage();
    bob = await securePage();
  });

  after(async () => {
    await browser?.close();
    const code = await srv?.stop();
    if (code !== 0 && code !== null) process.stderr.write(srv.log);
  });

  it('the page loads over https and its WebSocket negotiates permessage-deflate over wss', async () => {
    await joinSecure(alice, 'alice');
    assert.equal(await alice.evaluate(() => location.protocol), 'https:');
    const ext = await alice.getByTestId('status').getAttribute('data-extensions');
    assert.match(ext, /^permessage-deflate/, `ws.extensions = ${JSON.stringify(ext)}`);
    assert.match(ext, /server_no_context_takeover/);
  });

  it('two people chat over TLS; a long message arrives compressed and intact', async () => {
    await joinSecure(bob, 'bob');
    await say(alice, 'hello over wss');
    await waitMessage(bob, 'hello over wss');
    const long = 'a long chat line that repeats itself, as chat lines do. '.repeat(18).trim();
    const before = await fetch(srv.http('/metrics')).then((r) => r.text());
    await say(bob, long);
    await waitMessage(alice, long);
    const after = await fetch(srv.http('/metrics')).then((r) => r.text());
    const n = (s, k) => Number(s.match(new RegExp(`^${k} (\\d+)`, 'm'))[1]);
    assert.ok(n(after, 'wschat_ws_deflate_sent_total') > n(before, 'wschat_ws_deflate_sent_total'), 'compressed frames were sent');
    noProblems(assert, alice, bob);
  }, T);
});
