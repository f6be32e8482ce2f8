// Issue 14 item 1: wschat-cli against a real server. Interactive use runs
// in tmux (send-keys in, capture-pane out), with a Node `ws` client (bob)
// on the other side, and a server restart mid-session: the client
// reconnects, resumes with `since`, and shows every message exactly once.
// Scripted use: lines on a pipe are sent and acknowledged; --json prints
// protocol objects.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, freePort } from '../lib/server.mjs';
import { makeCert, tlsArgs } from '../lib/tls.mjs';
import { Chat } from '../lib/chat.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
function cliBinary() {
  for (const d of [process.env.WSCHAT_BUILD_DIR, path.join(root, 'build-asan'), path.join(root, 'build')]) {
    const p = d && path.join(d, 'tools/wschat-cli/wschat-cli');
    if (p && existsSync(p)) return p;
  }
  throw new Error('wschat-cli not built');
}
const cli = cliBinary();
const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', TZ: 'UTC' };
const sock = `wschat-cli-test-${process.pid}`;
const tmux = (...args) => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8', env });
after(() => { try { tmux('kill-server'); } catch { /* none left */ } });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pane = (name) => tmux('capture-pane', '-p', '-J', '-S', '-2000', '-t', name);
async function waitPane(name, re, what, ms = 15000) {
  const end = Date.now() + ms;
  let text = '';
  while (Date.now() < end) {
    text = pane(name);
    if (re.test(text)) return text;
    await sleep(100);
  }
  assert.fail(`pane never showed ${what ?? re}:\n${text}`);
}
const count = (text, re) => (text.match(new RegExp(re.source, 'gm')) ?? []).length;
function type(name, line) {
  tmux('send-keys', '-t', name, '-l', line);
  tmux('send-keys', '-t', name, 'Enter');
}

test('interactive: history, messages, presence, typing, commands, and a server restart mid-session', async () => {
  let srv = await startServer();
  const pre = await Chat.open(srv.url('/ws?room=general&name=old'));
  await pre.until((m) => m.type === 'joined');
  pre.send({ type: 'send', room: 'general', text: 'before ann came', ref: 1 });
  await pre.until((m) => m.type === 'ack');
  await pre.close();

  tmux('new-session', '-d', '-s', 'ann', '-x', '200', '-y', '50',
    `ASAN_OPTIONS=detect_leaks=1 TZ=UTC ${cli} ws://127.0.0.1:${srv.port} --room general --name ann --reconnect-max 2; echo "cli exited $?"; sleep 30`);
  // recent history first
  await waitPane('ann', /joined #general as ann \(1 here\)/);
  await waitPane('ann', /^\[\d\d:\d\d\] old: before ann came$/m, 'history');

  const bob = await Chat.open(srv.url('/ws?room=general&name=bob'));
  await bob.until((m) => m.type === 'joined');
  await waitPane('ann', /^\[\d\d:\d\d\] \* bob joined \(2 here\)$/m, 'presence');
  bob.send({ type: 'send', room: 'general', text: 'hi', ref: 'b1' });
  await waitPane('ann', /^\[\d\d:\d\d\] bob: hi$/m, 'a message');
  bob.send({ type: 'typing', room: 'general' });
  await waitPane('ann', /^\[\d\d:\d\d\] \* bob is typing$/m, 'typing');

  // a typed line is sent
  type('ann', 'hello bob');
  const got = await bob.until((m) => m.type === 'message' && m.text === 'hello bob');
  assert.equal(got.from, 'ann');
  // commands
  type('ann', '/who');
  await waitPane('ann', /^\* #general \(2\): (ann, bob|bob, ann)$/m, '/who');
  type('ann', '/dm bob psst');
  const dm = await bob.until((m) => m.type === 'dm');
  assert.deepEqual([dm.from, dm.text], ['ann', 'psst']);
  bob.send({ type: 'dm', to: 'ann', text: 'back at you' });
  await waitPane('ann', /^\[\d\d:\d\d\] bob -> ann: back at you$/m, 'a dm');
  type('ann', '/history');
  await waitPane('ann', /--- earlier in #general ---[\s\S]*--- start of the room ---/, '/history');
  type('ann', '/join side');
  await waitPane('ann', /joined #side as ann \(1 here\)/);
  type('ann', 'in the side room');
  const side = await Chat.open(srv.url('/ws?room=side&name=carol'));
  await side.until((m) => m.type === 'message' && m.text === 'in the side room');
  bob.send({ type: 'send', room: 'general', text: 'two rooms now' });
  await waitPane('ann', /^\[\d\d:\d\d\] #general bob: two rooms now$/m, 'room tag with two rooms');
  type('ann', '/leave side');
  await waitPane('ann', /left #side/);
  await side.close();

  // --- the server restarts mid-session ---
  const before = pane('ann');
  assert.equal(count(before, /bob: hi$/), 1);
  await bob.close();
  await srv.stop();
  await waitPane('ann', /disconnected \(.*\); reconnecting in/, 'the disconnect notice');
  type('ann', 'typed while the server was down');
  await sleep(600);
  srv = await srv.restart();
  // messages stored before ann is back: she must get them through `since`
  const bob2 = await Chat.open(srv.url('/ws?room=general&name=bob'));
  await bob2.until((m) => m.type === 'joined');
  for (let i = 1; i <= 3; i++) bob2.send({ type: 'send', room: 'general', text: `missed ${i}`, ref: i });
  for (let i = 1; i <= 3; i++) await bob2.until((m) => m.type === 'ack' && m.ref === i);
  const text = await waitPane('ann', /rejoined #general after id \d+/, 'the resume');
  await waitPane('ann', /missed 3$/m, 'the missed messages');
  // the line typed while down is sent once, after the resume. ann may be
  // back before bob2's acks, so the line can arrive among them: look in
  // everything bob2 received, not only what until() has not skipped.
  await bob2.seen((m) => m.type === 'message' && m.text === 'typed while the server was down');
  bob2.send({ type: 'send', room: 'general', text: 'after the restart' });
  const final = await waitPane('ann', /bob: after the restart$/m);
  for (const line of ['bob: hi', 'bob: missed 1', 'bob: missed 2', 'bob: missed 3', 'ann: hello bob',
    'ann: typed while the server was down', 'old: before ann came', 'bob: after the restart']) {
    // history pages (/history) are framed by --- lines; count the live lines outside them
    const live = final.replace(/--- earlier in[\s\S]*?--- start of the room ---/g, '');
    assert.equal(count(live, new RegExp(`\\] ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)), 1, `${line} once:\n${final}`);
  }
  assert.ok(text.length > 0);
  // the server kept one copy of the line typed while down
  const hist = await Chat.open(srv.url('/ws?room=general&name=auditor'));
  const joined = await hist.until((m) => m.type === 'joined');
  await hist.sync();
  const typed = hist.all.filter((m) => m.type === 'message' && m.text === 'typed while the server was down');
  assert.equal(typed.length, 1, `stored ${typed.length} times`);
  assert.ok(joined.last_id > 0);
  type('ann', '/quit');
  await waitPane('ann', /cli exited 0/, 'exit 0');
  await hist.close();
  await bob2.close();
  assert.equal(await srv.stop(), 0);
});

function runCli(args, input) {
  return new Promise((resolve) => {
    const p = spawn(cli, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => resolve({ code, out, err }));
    p.stdin.end(input);
  });
}

test('scripted: a pipe sends each line and exits 0 after the acks; --json prints protocol objects', async () => {
  const srv = await startServer();
  try {
    const watcher = await Chat.open(srv.url('/ws?room=pipe&name=watch'));
    await watcher.until((m) => m.type === 'joined');
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}`);
    const r = await runCli([`ws://127.0.0.1:${srv.port}`, '--room', 'pipe', '--name', 'bot'], lines.join('\n') + '\n');
    assert.equal(r.code, 0, r.err);
    for (const l of lines) await watcher.until((m) => m.type === 'message' && m.text === l);
    // --json: every stdout line is one JSON object, the server's
    const j = await runCli([`ws://127.0.0.1:${srv.port}/`, '--room', 'pipe', '--name', 'bot2', '--json'], 'json line\n');
    assert.equal(j.code, 0, j.err);
    const objs = j.out.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(objs[0].type, 'welcome');
    assert.equal(objs.find((o) => o.type === 'joined').room, 'pipe');
    assert.equal(objs.filter((o) => o.type === 'message' && o.from === 'bot').length, 50, 'the recent history (50) replayed');
    assert.ok(objs.some((o) => o.type === 'ack'));
    // a refused message: exit 1 with the server's error
    const big = await runCli([`ws://127.0.0.1:${srv.port}`, '--room', 'pipe', '--name', 'bot3'], 'x'.repeat(5000) + '\n');
    assert.equal(big.code, 1);
    assert.match(big.err, /! too_large: /);
    // bad usage
    const bad = spawnSync(cli, ['http:/nope'], { env, encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /expected ws:\/\/HOST/);
    const refused = await runCli([`ws://127.0.0.1:${srv.port}/nowhere`, '--name', 'x'], '');
    assert.equal(refused.code, 1);
    assert.match(refused.err, /handshake refused: HTTP\/1.1 404/);
    // nobody listening: it retries, then gives up at --ack-timeout
    const nobody = await runCli([`ws://127.0.0.1:${await freePort()}`, '--ack-timeout', '2'], 'lost\n');
    assert.equal(nobody.code, 1);
    assert.match(nobody.err, /1 message\(s\) not acknowledged within 2 s/);
    await watcher.close();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

// wss://: a TLS terminator (Node's tls, a certificate made here with the
// openssl tool) in front of a real server; the client verifies the chain
// against --ca and the name against the host.
test('wss://: TLS with certificate verification (--ca), refused without it, --insecure', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wschat-cli-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'),
    '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const srv = await startServer();
  const front = tls.createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) }, (s) => {
    const up = net.connect(srv.port, '127.0.0.1');
    s.pipe(up);
    up.pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
  });
  await new Promise((r) => front.listen(0, '127.0.0.1', r));
  const port = front.address().port;
  try {
    const watcher = await Chat.open(srv.url('/ws?room=tls&name=watch'));
    await watcher.until((m) => m.type === 'joined');
    const ok = await runCli([`wss://localhost:${port}`, '--room', 'tls', '--name', 'sec', '--ca', path.join(dir, 'cert.pem')], 'over tls\n');
    assert.equal(ok.code, 0, ok.err);
    const m = await watcher.until((x) => x.type === 'message');
    assert.deepEqual([m.from, m.text], ['sec', 'over tls']);
    const refused = await runCli([`wss://localhost:${port}`, '--room', 'tls', '--name', 'sec2'], 'never\n');
    assert.equal(refused.code, 1);
    assert.match(refused.err, /certificate: self.signed certificate/);
    const insecure = await runCli([`wss://localhost:${port}`, '--room', 'tls', '--name', 'sec4', '--insecure'], 'insecure\n');
    assert.equal(insecure.code, 0, insecure.err);
    await watcher.until((x) => x.type === 'message' && x.text === 'insecure');
    await watcher.close();
  } finally {
    front.close();
    await srv.stop();
  }
});

test("wss:// to wschat's own TLS listener (--tls-port), with a server restart mid-session", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wschat-cli-tls2-'));
  const { cert, key } = makeCert(dir);
  const tlsPort = await freePort();
  let srv = await startServer({ args: tlsArgs(tlsPort, cert, key) });
  try {
    tmux('new-session', '-d', '-s', 'tlsann', '-x', '200', '-y', '50',
      `ASAN_OPTIONS=detect_leaks=1 TZ=UTC ${cli} wss://localhost:${tlsPort} --ca ${cert} --room sec --name ann --reconnect-max 2; echo "cli exited $?"; sleep 30`);
    await waitPane('tlsann', /joined #sec as ann \(1 here\)/);
    const bob = await Chat.open(srv.url('/ws?room=sec&name=bob'));
    await bob.until((m) => m.type === 'joined');
    type('tlsann', 'over wschat tls');
    await bob.until((m) => m.type === 'message' && m.text === 'over wschat tls');
    await bob.close();
    await srv.stop();
    await waitPane('tlsann', /disconnected/);
    srv = await srv.restart();
    const bob2 = await Chat.open(srv.url('/ws?room=sec&name=bob'));
    await bob2.until((m) => m.type === 'joined');
    bob2.send({ type: 'send', room: 'sec', text: 'while you were away', ref: 1 });
    await bob2.until((m) => m.type === 'ack');
    const text = await waitPane('tlsann', /bob: while you were away$/m);
    assert.match(text, /rejoined #sec after id \d+/);
    assert.equal(count(text, /\] ann: over wschat tls$/), 1);
    type('tlsann', '/quit');
    await waitPane('tlsann', /cli exited 0/);
    await bob2.close();
  } finally {
    await srv.stop();
  }
});

// --transport longpoll: the same chat over plain HTTP requests
// (POST /http/session, /http/send, GET /http/longpoll), across a restart.
test('--transport longpoll: history, messages both ways, and a server restart', async (t) => {
  let srv = await startServer();
  try {
    const probe = await fetch(srv.http('/http/session'), { method: 'POST', body: '{}' });
    if (probe.status === 404) {
      // HTTP sessions (POST /http/session) are not in this server build yet
      t.skip('the server has no HTTP sessions (404 for POST /http/session)');
      return;
    }
    assert.equal(probe.status, 200);
    const bob = await Chat.open(srv.url('/ws?room=lp&name=bob'));
    await bob.until((m) => m.type === 'joined');
    bob.send({ type: 'send', room: 'lp', text: 'before', ref: 0 });
    await bob.until((m) => m.type === 'ack');
    tmux('new-session', '-d', '-s', 'lpann', '-x', '200', '-y', '50',
      `ASAN_OPTIONS=detect_leaks=1 TZ=UTC ${cli} http://127.0.0.1:${srv.port} --transport longpoll --room lp --name ann --reconnect-max 2; echo "cli exited $?"; sleep 30`);
    await waitPane('lpann', /joined #lp as ann \(2 here\)/);
    await waitPane('lpann', /\] bob: before$/m, 'history');
    bob.send({ type: 'send', room: 'lp', text: 'to the poller', ref: 1 });
    await waitPane('lpann', /\] bob: to the poller$/m);
    type('lpann', 'from the poller');
    await bob.until((m) => m.type === 'message' && m.text === 'from the poller');
    await bob.close();
    await srv.stop();
    await waitPane('lpann', /disconnected/);
    srv = await srv.restart();
    const bob2 = await Chat.open(srv.url('/ws?room=lp&name=bob'));
    await bob2.until((m) => m.type === 'joined');
    bob2.send({ type: 'send', room: 'lp', text: 'after the restart', ref: 2 });
    await bob2.until((m) => m.type === 'ack');
    const text = await waitPane('lpann', /\] bob: after the restart$/m);
    assert.match(text, /rejoined #lp after id \d+/);
    for (const l of ['bob: before', 'bob: to the poller', 'ann: from the poller', 'bob: after the restart'])
      assert.equal(count(text, new RegExp(`\\] ${l}$`)), 1, `${l} once:\n${text}`);
    type('lpann', '/quit');
    await waitPane('lpann', /cli exited 0/);
    await bob2.close();
  } finally {
    await srv.stop();
  }
});

test('wschat-cli --help and its man page come from one table', () => {
  const help = spawnSync(cli, ['--help'], { env, encoding: 'utf8' }).stdout;
  const man = spawnSync(cli, ['--help-man'], { env, encoding: 'utf8' }).stdout;
  assert.match(man, /^\.TH WSCHAT\\-CLI 1 /m);
  for (const s of ['COMMANDS', 'RECONNECTING', 'SCRIPTS']) assert.match(man, new RegExp(`^\\.SH ${s}$`, 'm'));
  const flags = [...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]);
  const manFlags = [...man.matchAll(/^\\fB\\-\\-([a-z0-9\\-]+)\\fR/gm)].map((m) => m[1].replace(/\\-/g, '-'));
  assert.deepEqual(manFlags, flags);
  assert.ok(flags.includes('room') && flags.includes('json') && flags.includes('name'));
});
