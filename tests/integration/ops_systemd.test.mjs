// Issue 14 item 3: the systemd unit and the readiness protocol. sd_notify
// is checked against a real unix datagram socket (socat listening where
// NOTIFY_SOCKET points, as systemd would); the unit file passes
// `systemd-analyze verify` with the real binary at its ExecStart path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverBinary, startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function listen(address) {
  // socat prints each datagram's bytes; a datagram starts with a VAR=
  const from = address.startsWith('@') ? `ABSTRACT-RECV:${address.slice(1)}` : `UNIX-RECV:${address},unlink-early`;
  const p = spawn('socat', ['-u', from, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const l = { text: '', proc: p };
  p.stdout.on('data', (d) => { l.text += d; });
  return l;
}
async function waitText(l, re, what, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (re.test(l.text)) return;
    await sleep(20);
  }
  assert.fail(`never got ${what}: ${JSON.stringify(l.text)}`);
}

for (const kind of ['path', 'abstract']) {
  test(`sd_notify over a ${kind} NOTIFY_SOCKET: READY=1 once listening, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wschat-notify-'));
    const address = kind === 'path' ? path.join(dir, 'notify') : `@wschat-test-${process.pid}`;
    const l = listen(address);
    await sleep(300); // socat binds
    const srv = await startServer({ env: { NOTIFY_SOCKET: address } });
    try {
      await waitText(l, /^READY=1/, 'READY=1');
      // READY means it serves
      const c = await Chat.open(srv.url('/ws?room=r'));
      await c.until((m) => m.type === 'joined');
      srv.proc.kill('SIGHUP');
      await waitText(l, /^READY=1RELOADING=1\nMONOTONIC_USEC=\d+READY=1$/, 'RELOADING=1 then READY=1');
      const code = await srv.stop();
      assert.equal(code, 0);
      await waitText(l, /READY=1STOPPING=1$/, 'STOPPING=1');
      assert.equal(c.closeInfo?.code ?? (await c.closed).code, 1001);
    } finally {
      await srv.stop();
      l.proc.kill();
    }
  });
}

test('without NOTIFY_SOCKET nothing is sent and the server runs; a bad NOTIFY_SOCKET does not stop it', async () => {
  const srv = await startServer({ env: { NOTIFY_SOCKET: 'not-a-socket-path' } });
  const r = await fetch(srv.http('/healthz'));
  assert.equal(r.status, 200);
  assert.equal(await srv.stop(), 0);
});

test('packaging/wschat.service: systemd-analyze verify is clean with the binary at ExecStart', () => {
  const unit = readFileSync(path.join(root, 'packaging/wschat.service'), 'utf8');
  for (const k of ['Type=notify', 'DynamicUser=yes', 'ProtectSystem=strict', 'StateDirectory=wschat', 'LimitNOFILE=',
    'NoNewPrivileges=yes', 'ExecReload=/bin/kill -HUP $MAINPID', 'ExecStart=/usr/bin/wschat --config /etc/wschat/wschat.conf']) {
    assert.ok(unit.includes(k), k);
  }
  // the same unit, its binary path pointing at this build
  const dir = mkdtempSync(path.join(tmpdir(), 'wschat-unit-'));
  mkdirSync(path.join(dir, 'bin'));
  copyFileSync(serverBinary(), path.join(dir, 'bin/wschat'));
  const file = path.join(dir, 'wschat.service');
  writeFileSync(file, unit.replaceAll('/usr/bin/wschat', path.join(dir, 'bin/wschat')));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'systemd-analyze warned');
  // and verify does catch a broken unit (so the check above can fail)
  writeFileSync(file, unit.replaceAll('/usr/bin/wschat', path.join(dir, 'bin/wschat')).replace('Type=notify', 'Type=notifyy'));
  const bad = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
  assert.match(bad.stderr, /Failed to parse service type/);
});
