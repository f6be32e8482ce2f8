// wschat-bench against the real wschat: a short fan-out and echo run must
// verify every delivery (correctness only; no timing is asserted here — speed
// is measured by `make bench`, docs/BENCHMARKS.md).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { runBench } from '../bench/run_bench.mjs';

let srv;
before(async () => { srv = await startServer({ args: ['--echo'] }); });
after(async () => { await srv?.stop(); });

const short = ['--duration', '1', '--warmup', '0.3', '--drain-timeout', '5', '--join-timeout', '20'];

test('fanout: 2 rooms x 5 connections, all publishing, every delivery verified', async () => {
  const r = await runBench(['fanout', '--url', srv.url(''), '--rooms', '2', '--conns', '5', '--window', '2',
    '--server-pid', String(srv.proc.pid), ...short]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result.errors, '0');
  assert.equal(r.result.lost, '0');
  assert.ok(Number(r.result.deliveries) > 0, r.line);
});

test('fanout: one publisher at a fixed rate (open loop)', async () => {
  const r = await runBench(['fanout', '--url', srv.url(''), '--rooms', '1', '--conns', '8', '--pubs', '1',
    '--rate', '200', ...short]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result.errors, '0');
  assert.ok(Number(r.result.deliveries) > 0, r.line);
});

test('echo: 4 connections x 8 in flight, every echo verified', async () => {
  const r = await runBench(['echo', '--url', srv.url(''), '--conns', '4', '--inflight', '8', '--size', '200', ...short]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result.errors, '0');
  assert.ok(Number(r.result.deliveries) > 0, r.line);
});

test('connect: 200 idle connections, RSS read from /proc', async () => {
  const r = await runBench(['connect', '--url', srv.url(''), '--conns', '200', '--rooms', '4', '--settle', '0.5',
    '--server-pid', String(srv.proc.pid)]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result.opened, '200');
  assert.ok(Number(r.result.rss_after_kb) > 0, r.line);
});
