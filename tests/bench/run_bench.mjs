// Helpers for the wschat-bench tests (tests/integration/bench_*.test.mjs):
// locate the binary, run it, parse its RESULT line, start the faulty server.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

export function benchBinary() {
  const candidates = [];
  if (process.env.WSCHAT_BUILD_DIR) candidates.push(path.join(process.env.WSCHAT_BUILD_DIR, 'tools/wschat-bench/wschat-bench'));
  for (const d of ['build-asan', 'build']) candidates.push(path.join(root, d, 'tools/wschat-bench/wschat-bench'));
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`wschat-bench not found (tried ${candidates.join(', ')})`);
}

// Runs wschat-bench; resolves { code, stdout, stderr, result } where result
// is the RESULT line's key=value pairs.
export function runBench(args, { timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(benchBinary(), args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1' },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`wschat-bench timed out\n${stderr}`)); }, timeoutMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT ')) ?? '';
      const result = {};
      for (const kv of line.split(' ').slice(1)) {
        const i = kv.indexOf('=');
        if (i > 0) result[kv.slice(0, i)] = kv.slice(i + 1);
      }
      resolve({ code: code ?? signal, stdout, stderr, result, line });
    });
  });
}

// Starts tests/bench/faulty_server.mjs in MODE on a free port.
export function startFaulty(mode, faultAt = 20) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(here, 'faulty_server.mjs'), '0', mode, String(faultAt)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), url: `ws://127.0.0.1:${m[1]}`, stop: () => new Promise((r) => { p.on('exit', r); p.kill(); }) });
    });
    p.on('exit', (code) => reject(new Error(`faulty server exited ${code}`)));
  });
}
