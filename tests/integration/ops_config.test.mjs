// Issue 14 items 2, 5, 6 (logs): one option table behind the flags, the
// environment, the config file, --help, the man page and the example file;
// precedence flags > environment > file > defaults; errors that name the
// file and line; --check-config; SIGHUP reload; --version; --log-format json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverBinary, startServer } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = serverBinary();
const dir = mkdtempSync(path.join(tmpdir(), 'wschat-config-'));
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WSCHAT_')));

function run(args, env = {}) {
  const r = spawnSync(bin, args, { env: { ...cleanEnv, ASAN_OPTIONS: 'detect_leaks=1', ...env }, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
function conf(name, text) {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}
function settings(out) {
  return Object.fromEntries(out.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(' = ')));
}

test('--help names every option with its env variable, key and default, and the precedence', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.out.replace(/\s+/g, ' '), /highest first: command-line flags, the environment .*the config file .*built-in defaults/);
  for (const [flag, env, key, def] of [
    ['--port N', 'WSCHAT_PORT', 'port', '8000'], ['--max-text BYTES', 'WSCHAT_MAX_TEXT', 'max-text', '4096'],
    ['--rate-limit N', 'WSCHAT_RATE_LIMIT', 'rate-limit', '0'], ['--log-format FORMAT', 'WSCHAT_LOG_FORMAT', 'log-format', 'text'],
  ]) {
    assert.ok(r.out.includes(flag), flag);
    assert.match(r.out.replace(/\s+/g, ' '), new RegExp(`default ${def}; env ${env}; key ${key}`));
  }
});

test('every default --help shows is the value the server runs with', () => {
  const blocks = run(['--help']).out.split(/\n(?= {2}--)/).slice(1); // one per option
  const s = settings(run(['--check-config']).out);
  let checked = 0;
  for (const b of blocks) {
    const name = b.match(/^ {2}--([a-z0-9-]+)/)[1];
    const d = b.replace(/\s+/g, ' ').match(/\(default ([^;)]+); env /);
    if (!d) continue;
    const def = d[1];
    if (!(name in s)) continue;
    assert.equal(s[name], def, `--${name}: --help says default ${def}, the server runs with ${s[name]}`);
    checked++;
  }
  assert.ok(checked >= 20, `${checked} defaults checked`);
});

test('precedence: flags > environment > file > defaults', () => {
  const f = conf('prec.conf', 'max-text = 100\nrate-limit = 3\n');
  assert.equal(settings(run(['--check-config']).out)['max-text'], '4096');
  assert.equal(settings(run(['--check-config', '--config', f]).out)['max-text'], '100');
  assert.equal(settings(run(['--check-config', '--config', f], { WSCHAT_MAX_TEXT: '200' }).out)['max-text'], '200');
  const all = run(['--check-config', '--config', f, '--max-text', '300'], { WSCHAT_MAX_TEXT: '200' });
  assert.equal(all.code, 0, all.err);
  const s = settings(all.out);
  assert.equal(s['max-text'], '300');
  assert.equal(s['rate-limit'], '3'); // from the file, untouched by the others
  assert.match(all.out, new RegExp(`configuration valid \\(file ${f}\\)`));
  // WSCHAT_CONFIG names the file too
  assert.equal(settings(run(['--check-config'], { WSCHAT_CONFIG: f }).out)['max-text'], '100');
  // a list given on the command line replaces the file's, not extends it
  const lf = conf('list.conf', 'allow-origin = http://a.test, http://b.test\n');
  assert.equal(settings(run(['--check-config', '--config', lf]).out)['allow-origin'], 'http://a.test, http://b.test');
  assert.equal(settings(run(['--check-config', '--config', lf, '--allow-origin', 'http://c.test']).out)['allow-origin'], 'http://c.test');
});

test('config file errors name the file and the line; exit status 2', () => {
  const cases = [
    ['port = 9000\n\n# comment\nprot = 1\n', /:4: unknown key 'prot'/],
    ['port = 70000\n', /:1: bad value '70000' for port \(an integer from 0 to 65535\)/],
    ['echo = maybe\n', /:1: bad value 'maybe' for echo \(true or false\)/],
    ['port = 1\nport = 2\n', /:2: port set twice/],
    ['just words\n', /:1: expected 'key = value'/],
    ['config = /x\n', /:1: unknown key 'config' \(command line only\)/],
    ['log-level = loud\n', /:1: bad value 'loud' for log-level \(debug, info, warn or error\)/],
  ];
  for (const [text, re] of cases) {
    const f = conf('bad.conf', text);
    for (const args of [['--config', f, '--check-config'], ['--config', f, '--port', '1']]) {
      const r = run(args);
      assert.equal(r.code, 2, `${text}: ${r.err}`);
      assert.match(r.err, new RegExp(`^wschat: ${f.replace(/[.]/g, '\\.')}${re.source}`), r.err);
    }
  }
  assert.match(run(['--config', path.join(dir, 'missing.conf')]).err, /missing\.conf: cannot open: No such file/);
  assert.match(run(['--bogus']).err, /unknown option --bogus/);
  assert.match(run([], { WSCHAT_PORT: 'x' }).err, /environment WSCHAT_PORT: bad value 'x' for port/);
  // comments, quotes, k/m suffixes
  const ok = run(['--check-config', '--config', conf('ok.conf', 'db = "/tmp/a b#c.db"  # quoted\nsend-queue = 2m\nfsync = yes\n')]);
  assert.equal(ok.code, 0, ok.err);
  const s = settings(ok.out);
  assert.equal(s.db, '/tmp/a b#c.db');
  assert.equal(s['send-queue'], String(2 * 1024 * 1024));
  assert.equal(s.fsync, 'true');
});

test('the example files in packaging/ are valid; the full one is exactly --help-config', () => {
  const example = readFileSync(path.join(root, 'packaging/wschat.conf.example'), 'utf8');
  assert.equal(example, run(['--help-config']).out, 'packaging/wschat.conf.example drifted: regenerate with wschat --help-config');
  for (const f of ['packaging/wschat.conf', 'packaging/wschat.conf.example']) {
    const r = run(['--check-config', '--config', path.join(root, f)]);
    assert.equal(r.code, 0, `${f}: ${r.err}`);
  }
  // every key of the example, uncommented at its default, is accepted
  const uncommented = example.split('\n').filter((l) => /^#[a-z0-9-]+ = /.test(l) && !/ = [A-Z]+$/.test(l)).map((l) => l.slice(1)).join('\n');
  const r = run(['--check-config', '--config', conf('uncommented.conf', uncommented + '\n')]);
  assert.equal(r.code, 0, r.err);
});

test('the man page comes from the same table as --help', () => {
  const help = run(['--help']).out;
  const man = run(['--help-man']).out;
  assert.match(man, /^\.TH WSCHAT 1 "" "wschat [0-9.]+" "User Commands"$/m);
  for (const sect of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'CONFIGURATION FILE', 'SIGNALS', 'SYSTEMD', 'FILES', 'EXIT STATUS']) {
    assert.match(man, new RegExp(`^\\.SH ${sect}$`, 'm'), sect);
  }
  const flags = [...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]);
  const manFlags = [...man.matchAll(/^\\fB\\-\\-([a-z0-9\\-]+)\\fR/gm)].map((m) => m[1].replace(/\\-/g, '-'));
  assert.ok(flags.length >= 20, `${flags.length} flags`);
  assert.deepEqual(manFlags, flags);
});

test('--version prints the version, the commit and the library versions', () => {
  const r = run(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.out, /^wschat \d+\.\d+\.\d+\ncommit [0-9a-f]{7,}(-dirty)?\n/);
  assert.match(r.out, /libuv \d+\.\d+\.\d+, OpenSSL \d+\.\d+\.\d+.*, SQLite \d+\.\d+\.\d+, jansson \d+\.\d+/);
});

async function waitFor(pred, what, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a running server takes its settings from the file; SIGHUP reloads what can be reloaded', async () => {
  const f = conf('live.conf', 'max-text = 10\nrate-limit = 0\nlog-level = info\n');
  const srv = await startServer({ args: ['--config', f], env: cleanEnvOverrides() });
  try {
    const c = await Chat.open(srv.url('/ws?room=r&name=ann'));
    await c.until((m) => m.type === 'joined');
    c.send({ type: 'send', room: 'r', text: '01234567890', ref: 1 });
    await c.until((m) => m.type === 'error' && m.code === 'too_large' && m.ref === 1);
    // reload: rate-limit 1/s (burst 2) and debug logs now; max-text needs a restart
    writeFileSync(f, 'max-text = 20\nrate-limit = 1\nlog-level = debug\n');
    srv.proc.kill('SIGHUP');
    await waitFor(() => /reload done ok=yes/.test(srv.log), 'reload');
    assert.match(srv.log, /setting reloaded key=rate-limit/);
    assert.match(srv.log, /setting reloaded key=log-level/);
    assert.match(srv.log, /setting changed, needs a restart key=max-text/);
    const c2 = await Chat.open(srv.url('/ws?room=r&name=bob'));
    await c2.until((m) => m.type === 'joined');
    for (let i = 0; i < 5; i++) c2.send({ type: 'send', room: 'r', text: 'x', ref: `b${i}` });
    await c2.until((m) => m.type === 'error' && m.code === 'rate_limited');
    // a broken file is refused and the server keeps serving
    writeFileSync(f, 'max-text = many\n');
    srv.proc.kill('SIGHUP');
    await waitFor(() => /reload failed, settings kept/.test(srv.log), 'reload failure');
    assert.match(srv.log, /live\.conf:1: bad value 'many' for max-text/);
    const r = await fetch(srv.http('/healthz'));
    assert.equal(r.status, 200);
    await c.close();
    await c2.close();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

function cleanEnvOverrides() {
  // startServer spreads process.env first; blank any WSCHAT_* a caller set
  return Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('WSCHAT_') && k !== 'WSCHAT_BIN' && k !== 'WSCHAT_BUILD_DIR').map((k) => [k, '']));
}

test('--log-format json: every line is one JSON object with ts, level, component, msg and the fields', async () => {
  const srv = await startServer({ args: ['--log-format', 'json'], env: cleanEnvOverrides() });
  const code = await srv.stop();
  assert.equal(code, 0);
  const lines = srv.log.split('\n').filter(Boolean);
  assert.ok(lines.length >= 3, srv.log);
  for (const l of lines) {
    const o = JSON.parse(l);
    assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level), l);
    assert.equal(typeof o.component, 'string');
    assert.equal(typeof o.msg, 'string');
  }
  const listening = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'listening');
  assert.ok(listening, srv.log);
  assert.equal(listening.component, 'main');
  assert.equal(listening.url, `http://127.0.0.1:${srv.port}/`);
  assert.ok(lines.map((l) => JSON.parse(l)).some((o) => o.msg === 'shutting down' && o.signal === '15'));
});
