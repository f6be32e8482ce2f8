// Starts a real redis-server (Debian's) for a test and stops it afterwards.
//
//   const rd = await startRedis();            // temp dir, free port, AOF on
//   rd.url                                    // 'redis://127.0.0.1:PORT'
//   await rd.kill9(); await rd.restart();     // crash, then the same files and port
//   rd.pause(); rd.resume();                  // SIGSTOP / SIGCONT: up but silent
//   await rd.command('INFO', 'commandstats')  // one command over RESP, its reply text
//   await rd.stop();
//
// appendfsync is `always` unless given: an acknowledged write is on disk
// before Redis answers, so kill -9 of redis-server loses nothing acked.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { freePort, killAtEnd } from './server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Sends one command (RESP array of bulk strings) and returns the raw reply
// text once it stops growing for a moment (good enough for tests and INFO).
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    let timer;
    const done = () => { s.destroy(); resolve(buf); };
    s.on('data', (d) => { buf += d.toString('utf8'); clearTimeout(timer); timer = setTimeout(done, 30); });
    s.on('error', reject);
    s.setTimeout(3000, () => { s.destroy(); reject(new Error('redis command timed out')); });
    s.on('connect', () => {
      let out = `*${args.length}\r\n`;
      for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
      s.write(out);
    });
  });
}

export async function startRedis({ dir, port, fsync = 'always', quiet = true } = {}) {
  dir = dir ?? mkdtempSync(path.join(tmpdir(), 'wschat-redis-'));
  port = port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes',
    '--appendfsync', fsync, '--save', '', '--daemonize', 'no', '--protected-mode', 'no', '--logfile', ''];
  const proc = killAtEnd(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let log = '';
  const keep = (d) => { log += d; if (log.length > 100000) log = log.slice(-50000); if (!quiet) process.stderr.write(d); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited early: ${log}`);
    try {
      if ((await redisCommand(port, 'PING')).startsWith('+PONG')) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await sleep(50);
  }
  const rd = {
    port, dir, proc,
    url: `redis://127.0.0.1:${port}`,
    get log() { return log; },
    command: (...a) => redisCommand(port, ...a),
    pause() { proc.kill('SIGSTOP'); },
    resume() { proc.kill('SIGCONT'); },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGCONT'); proc.kill(signal); }
      return exited;
    },
    async kill9() { return rd.stop('SIGKILL'); },
    async restart(extra = {}) {
      await rd.stop();
      return startRedis({ dir, port, fsync, quiet, ...extra });
    },
  };
  return rd;
}
