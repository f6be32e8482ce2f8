// Starts a real wschat process for a test and stops it afterwards.
//
//   const srv = await startServer({ args: ['--echo'] });
//   srv.url('/ws')  -> 'ws://127.0.0.1:PORT/ws'
//   await srv.stop();          // SIGTERM, waits for exit, returns the exit code
//   await srv.kill9();         // SIGKILL (crash test)
//
// The binary is $WSCHAT_BIN (set by CTest), else build-asan/wschat or
// build/wschat. Each server gets a free port and, unless args name --db, a
// fresh SQLite file in a temp directory (srv.dir), kept across restart().
// A server a failed test left running is killed when node exits (CTest
// runs node with --test-force-exit), so a failure is reported at once
// instead of holding the file open until CTest's timeout.
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const running = new Set();
// 'exit' and not a test hook: the files' own after() hooks stop their
// servers first and check the exit codes.
process.on('exit', () => { for (const proc of running) proc.kill('SIGKILL'); });

// Kills `proc` (a spawned server: wschat, redis-server, a client helper)
// when node exits, if it is still running then.
export function killAtEnd(proc) {
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  return proc;
}

export function serverBinary() {
  if (process.env.WSCHAT_BIN) return process.env.WSCHAT_BIN;
  for (const p of ['build-asan/wschat', 'build/wschat']) {
    const full = path.join(root, p);
    if (existsSync(full)) return full;
  }
  throw new Error('wschat binary not found: set WSCHAT_BIN or run make');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForHealth(port, proc, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`wschat exited early with ${proc.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('wschat did not become healthy');
}

export async function startServer({ args = [], port, dir, env = {}, quiet = true } = {}) {
  dir = dir ?? mkdtempSync(path.join(tmpdir(), 'wschat-test-'));
  port = port ?? (await freePort());
  const full = ['--host', '127.0.0.1', '--port', String(port), ...args];
  if (!args.includes('--db')) full.push('--db', path.join(dir, 'wschat.db'));
  const proc = spawn(serverBinary(), full, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (d) => { log += d; if (log.length > 200000) log = log.slice(-100000); if (!quiet) process.stderr.write(d); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  killAtEnd(proc);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  await waitForHealth(port, proc, 15000);
  const srv = {
    port, dir, proc, args,
    get log() { return log; },
    url: (p = '/') => `ws://127.0.0.1:${port}${p}`,
    http: (p = '/') => `http://127.0.0.1:${port}${p}`,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    async kill9() { return srv.stop('SIGKILL'); },
    async restart(extra = {}) {
      await srv.stop();
      return startServer({ args, port, dir, env, quiet, ...extra });
    },
  };
  return srv;
}
