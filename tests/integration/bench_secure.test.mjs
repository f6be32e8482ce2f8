// wschat-bench over wss:// and with --deflate against the real wschat:
// every delivery verified (correctness only; no timing asserted), and
// deflate really shrinks what crosses the wire (its WIRE line).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort } from '../lib/server.mjs';
import { makeCert, tlsArgs } from '../lib/tls.mjs';
import { runBench } from '../bench/run_bench.mjs';

let srv, tlsPort;
before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wschat-bench-tls-'));
  const { cert, key } = makeCert(dir);
  tlsPort = await freePort();
  srv = await startServer({ dir, args: ['--echo', ...tlsArgs(tlsPort, cert, key)] });
});
after(async () => { await srv?.stop(); });

const short = ['--duration', '1', '--warmup', '0.3', '--drain-timeout', '10', '--join-timeout', '20'];
const wire = (r) => Number(/wire_in_bytes_per_delivery=([\d.]+)/.exec(r.stdout)[1]);

test('fanout over wss: 1 room x 6, every delivery verified', async () => {
  const r = await runBench(['fanout', '--url', `wss://127.0.0.1:${tlsPort}`, '--rooms', '1', '--conns', '6', ...short]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result.errors, '0');
  assert.equal(r.result.lost, '0');
  assert.ok(Number(r.result.deliveries) > 0, r.line);
});

test('echo over wss with --deflate: every echo verified', async () => {
  const r = await runBench(['echo', '--url', `wss://127.0.0.1:${tlsPort}`, '--conns', '3', '--inflight', '4', '--size', '2000',
    '--chat-text', '--deflate', ...short]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result.errors, '0');
});

test('fanout of 1 KiB chat text: --deflate reads fewer bytes per delivery than without', async () => {
  const args = ['fanout', '--url', srv.url(''), '--rooms', '1', '--conns', '5', '--size', '1024', '--chat-text', ...short];
  const plain = await runBench(args);
  const z = await runBench([...args, '--deflate']);
  for (const r of [plain, z]) {
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.result.errors, '0');
    assert.equal(r.result.corrupt, '0');
  }
  assert.ok(wire(z) < wire(plain) * 0.8, `deflate ${wire(z)} B/delivery vs plain ${wire(plain)}`);
});
