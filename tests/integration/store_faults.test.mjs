// Store faults (docs/PROTOCOL.md "unavailable", README exit codes): the
// real SQLite store on a real file, made to fail by the operating system.
//
//   - Writes fail: the server's file size limit (RLIMIT_FSIZE) is lowered
//     to 1 byte with prlimit(1) while it runs, so every write SQLite makes
//     gets EFBIG — as on a full disk. `send` must answer `unavailable`
//     (never `ack`), nobody receives the message, and when the limit is
//     lifted the server stores again by itself; every acknowledged message
//     is in the history, also after a restart.
//   - The database cannot be used at start (not a database, truncated, a
//     directory): a one-line error naming the file and exit code 3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, truncateSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, serverBinary, freePort } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 120000 };

function setFileSizeLimit(pid, soft) {
  // soft limit only; the hard limit stays unlimited so it can be raised again
  execFileSync('prlimit', ['--pid', String(pid), `--fsize=${soft}:unlimited`]);
}

async function history(c, room) {
  c.send({ type: 'history', room, limit: 200 });
  const h = await c.next('history');
  return h.messages.map((m) => [m.id, m.text]);
}

test('disk writes fail: send gets unavailable (never ack), nothing acked is lost, the store recovers by itself', T, async () => {
  let srv = await startServer();
  const room = 'faults';
  try {
    const a = await Chat.open(srv.url(`/ws?room=${room}&name=writer`));
    await a.next('welcome');
    await a.next('joined');
    const b = await Chat.open(srv.url(`/ws?room=${room}&name=reader`));
    await b.next('welcome');
    await b.next('joined');
    await a.until((m) => m.type === 'presence');
    const acked = [];
    const sendOk = async (text) => {
      a.send({ type: 'send', room, text, ref: text });
      const ack = await a.next('ack');
      assert.equal(ack.ref, text);
      acked.push([ack.id, text]);
      const m = await a.next('message');
      assert.equal(m.id, ack.id);
    };
    for (let i = 0; i < 5; i++) await sendOk(`before${i}`);

    setFileSizeLimit(srv.proc.pid, 1);
    for (let i = 0; i < 5; i++) {
      a.send({ type: 'send', room, text: `lost${i}`, ref: `lost${i}` });
      const e = await a.next();
      assert.equal(e.type, 'error', e.raw);
      assert.equal(e.code, 'unavailable', e.raw);
      assert.equal(e.ref, `lost${i}`);
    }
    await a.quiet('no ack and no message for a send that was not stored');
    // reads still work while writes fail
    assert.deepEqual(await history(a, room), acked);

    setFileSizeLimit(srv.proc.pid, 'unlimited');
    for (let i = 0; i < 5; i++) await sendOk(`after${i}`);
    assert.ok(acked[5][0] > acked[4][0], 'ids keep increasing');
    assert.deepEqual(await history(a, room), acked, 'every acked message, none of the refused');
    // the other member saw exactly the acknowledged messages, in order
    const seen = (await b.sync()).filter((m) => m.type === 'message').map((m) => [m.id, m.text]);
    assert.deepEqual(seen, acked);
    assert.match(srv.log, /commit failed/);
    await a.close();
    await b.close();

    srv = await srv.restart();
    const c = await Chat.open(srv.url(`/ws?room=${room}&since=0`));
    await c.next('welcome');
    assert.equal((await c.next('joined')).recovered, true);
    const replay = (await c.sync()).filter((m) => m.type === 'message').map((m) => [m.id, m.text]);
    assert.deepEqual(replay, acked, 'after a restart: every acknowledged message');
    await c.close();
  } finally {
    const code = await srv.stop();
    assert.equal(code, 0, srv.log.slice(-3000));
    assert.doesNotMatch(srv.log, /AddressSanitizer|LeakSanitizer|runtime error:/, srv.log.slice(-3000));
  }
});

async function runUntilExit(db) {
  const port = await freePort();
  const p = spawn(serverBinary(), ['--host', '127.0.0.1', '--port', String(port), '--db', db],
    { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000, killSignal: 'SIGKILL' });
  let log = '';
  p.stdout.on('data', (d) => { log += d; });
  p.stderr.on('data', (d) => { log += d; });
  const code = await new Promise((resolve) => p.on('exit', (c, sig) => resolve(c ?? sig)));
  return { code, log };
}

test('an unusable database at start: a clear one-line error and exit code 3, not a crash', T, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wschat-badb-'));
  // a real database, then cut to its first page (the tables' pages are gone)
  const good = await startServer({ dir });
  const a = await Chat.open(good.url('/ws?room=r'));
  await a.next('welcome');
  await a.next('joined');
  for (let i = 0; i < 50; i++) a.send({ type: 'send', room: 'r', text: 'x'.repeat(500) });
  for (let acks = 0; acks < 50;) if ((await a.next()).type === 'ack') acks++;
  await a.close();
  assert.equal(await good.stop(), 0);
  const truncated = path.join(dir, 'wschat.db');
  assert.equal(existsSync(`${truncated}-wal`), false, 'a clean stop checkpoints the WAL');
  assert.ok(statSync(truncated).size > 8192);
  truncateSync(truncated, 4096);

  const garbage = path.join(dir, 'garbage.db');
  writeFileSync(garbage, 'this is not an SQLite database, only text pretending to be one.\n'.repeat(100));
  const directory = path.join(dir, 'a-directory.db');
  mkdirSync(directory);
  const missingDir = path.join(dir, 'no-such-dir', 'x.db');

  for (const db of [truncated, garbage, directory, missingDir]) {
    const { code, log } = await runUntilExit(db);
    assert.equal(code, 3, `${db}: ${log}`);
    assert.match(log, new RegExp(`error main cannot open history db=${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} err="[^"\n]+"`), log);
    assert.doesNotMatch(log, /AddressSanitizer|runtime error:|Segmentation/, log);
  }
});
