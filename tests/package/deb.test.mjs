// Issue 14 item 4: the Debian package, installed into a fresh root with
// dpkg -x and run the way wschat.service runs it (systemd is not PID 1 on
// the machines the tests run on): ExecStartPre's --check-config, then
// ExecStart as an unprivileged user, with a NOTIFY_SOCKET, in a state
// directory; then chat through it with the installed wschat-cli and a Node
// client, reload with SIGHUP, stop with SIGTERM.
//
//   make test-deb     (builds build-deb/wschat_*_amd64.deb, then runs this)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, chownSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../lib/server.mjs';
import { Chat } from '../lib/chat.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const debDir = path.join(root, 'build-deb');
const version = readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8').match(/project\(wschat VERSION ([0-9.]+)/)[1];
const deb = path.join(debDir, `wschat_${version}_amd64.deb`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test(`wschat_${version}_amd64.deb holds the binaries, unit, config, man pages and dashboard`, () => {
  assert.ok(existsSync(deb), `${deb} missing: make deb`);
  const fields = execFileSync('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Depends'], { encoding: 'utf8' });
  assert.match(fields, /^Package: wschat$/m);
  assert.match(fields, new RegExp(`^Version: ${version.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(fields, /^Architecture: amd64$/m);
  for (const lib of ['libuv1', 'libssl3', 'libjansson4', 'libsqlite3-0']) assert.match(fields, new RegExp(lib), lib);
  const files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
  for (const f of ['./usr/bin/wschat', './usr/bin/wschat-cli', './lib/systemd/system/wschat.service',
    './etc/wschat/wschat.conf', './usr/share/man/man1/wschat.1.gz', './usr/share/man/man1/wschat-cli.1.gz',
    './usr/share/doc/wschat/examples/wschat.conf.example', './usr/share/doc/wschat/examples/grafana-dashboard.json']) {
    assert.ok(files.includes(` ${f}\n`) || files.includes(` ${f} `), `${f} not in the package`);
  }
  const ctl = mkdtempSync(path.join(tmpdir(), 'wschat-ctl-'));
  execFileSync('dpkg-deb', ['-e', deb, ctl]);
  assert.match(readFileSync(path.join(ctl, 'conffiles'), 'utf8'), /^\/etc\/wschat\/wschat\.conf$/m);
  // debhelper's maintainer scripts enable and start the unit on a real system
  assert.match(readFileSync(path.join(ctl, 'postinst'), 'utf8'), /deb-systemd-helper .*wschat\.service/);
  // the Build-Depends cover every library scripts/install-deps.sh builds with
  const control = readFileSync(path.join(root, 'debian/control'), 'utf8');
  const deps = readFileSync(path.join(root, 'scripts/install-deps.sh'), 'utf8').match(/BUILD_PKGS=\(([^)]*)\)/)[1];
  for (const p of deps.split(/\s+/).filter((x) => x.endsWith('-dev'))) assert.ok(control.includes(p), `debian/control lacks ${p}`);
});

test('installed in a fresh root and run as wschat.service runs it: ready, chats, reloads, stops', async () => {
  const fresh = mkdtempSync(path.join(tmpdir(), 'wschat-root-'));
  execFileSync('dpkg', ['-x', deb, fresh]);
  const bin = path.join(fresh, 'usr/bin/wschat');
  const cli = path.join(fresh, 'usr/bin/wschat-cli');
  const conf = path.join(fresh, 'etc/wschat/wschat.conf');
  // the packaged binary names the packaged config as its default
  const v = execFileSync(bin, ['--version'], { encoding: 'utf8' });
  assert.match(v, new RegExp(`^wschat ${version.replace(/\./g, '\\.')}\\n`));
  assert.match(v, /default config \/etc\/wschat\/wschat\.conf/);
  // man pages render without roff warnings
  for (const page of ['wschat.1.gz', 'wschat-cli.1.gz']) {
    const text = execFileSync('sh', ['-c', `zcat '${path.join(fresh, 'usr/share/man/man1', page)}' | groff -man -Tutf8 -ww -z 2>&1`], { encoding: 'utf8' });
    assert.equal(text, '', `${page}: ${text}`);
  }
  // The unit's commands, with /etc and /usr/bin mapped into the fresh root.
  const unit = readFileSync(path.join(fresh, 'lib/systemd/system/wschat.service'), 'utf8');
  const mapped = (cmd) => cmd.replaceAll('/usr/bin/', `${fresh}/usr/bin/`).replaceAll('/etc/wschat/', `${fresh}/etc/wschat/`).split(' ');
  const pre = mapped(unit.match(/^ExecStartPre=(.*)$/m)[1]);
  const start = mapped(unit.match(/^ExecStart=(.*)$/m)[1]);
  assert.equal(start[0], bin);
  // DynamicUser: an unprivileged uid; StateDirectory: /var/lib/wschat, its own
  const state = mkdtempSync(path.join(tmpdir(), 'wschat-state-'));
  const uid = 61234;
  chownSync(state, uid, uid);
  const port = await freePort();
  // the installed config's db is /var/lib/wschat/wschat.db: point the state there through the environment
  const env = { PATH: '/usr/bin:/bin', WSCHAT_PORT: String(port), WSCHAT_HOST: '127.0.0.1', WSCHAT_DB: path.join(state, 'wschat.db') };
  const asUnit = (argv) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--no-new-privs', ...argv];
  const check = spawnSync(asUnit(pre)[0], asUnit(pre).slice(1), { env, encoding: 'utf8', cwd: state });
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stdout, new RegExp(`configuration valid \\(file ${conf.replace(/[.]/g, '\\.')}\\)`));
  // NOTIFY_SOCKET: a datagram socket the unprivileged server can write to
  const nsDir = mkdtempSync(path.join(tmpdir(), 'wschat-ns-'));
  chmodSync(nsDir, 0o755); // the service's user must reach the socket, as systemd's is reachable
  const notify = path.join(nsDir, 'notify');
  const sock = spawn('socat', ['-u', `UNIX-RECV:${notify},unlink-early,mode=777`, '-'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let notes = '';
  sock.stdout.on('data', (d) => { notes += d; });
  await sleep(300);
  const a = asUnit(start);
  const proc = spawn(a[0], a.slice(1), { env: { ...env, NOTIFY_SOCKET: notify }, cwd: state, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  try {
    for (let i = 0; i < 200 && !/READY=1/.test(notes); i++) await sleep(50);
    assert.match(notes, /^READY=1/, `no READY=1; log:\n${log}`);
    // chat: the installed wschat-cli sends, a Node client watches
    const watch = await Chat.open(`ws://127.0.0.1:${port}/ws?room=general&name=watch`);
    await watch.until((m) => m.type === 'joined');
    const r = spawnSync(cli, [`ws://127.0.0.1:${port}`, '--room', 'general', '--name', 'pkg'], { input: 'from the package\n', encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    const m = await watch.until((x) => x.type === 'message');
    assert.deepEqual([m.from, m.text], ['pkg', 'from the package']);
    // the history lives in the state directory, owned by the service's user
    assert.ok(existsSync(path.join(state, 'wschat.db')));
    // ExecReload: SIGHUP
    proc.kill('SIGHUP');
    for (let i = 0; i < 100 && !/RELOADING=1[\s\S]*READY=1$/.test(notes); i++) await sleep(50);
    assert.match(notes, /RELOADING=1\nMONOTONIC_USEC=\d+READY=1$/);
    assert.match(log, /reload done ok=yes/);
    // graceful stop: SIGTERM, 1001 to clients, exit 0
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, log);
    assert.equal((await watch.closed).code, 1001);
    assert.match(notes, /STOPPING=1$/);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    sock.kill();
  }
});
