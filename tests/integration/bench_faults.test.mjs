// wschat-bench must notice a server that gets delivery wrong: against
// tests/bench/faulty_server.mjs (drops one message, duplicates one, reorders
// two), every run reports the fault and exits non-zero; the same server
// without a fault passes (so the failures are the faults', not the tool's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBench, startFaulty } from '../bench/run_bench.mjs';

const short = ['--duration', '1', '--warmup', '0.3', '--drain-timeout', '1', '--join-timeout', '10'];
const fanout = ['fanout', '--rooms', '2', '--conns', '5', '--size', '64', ...short];
const echo = ['echo', '--conns', '3', '--inflight', '4', '--size', '64', ...short];

const expectations = {
  drop: { key: 'lost', word: /FAULT lost: conn \d+ missed 1 of/ },
  dup: { key: 'duplicates', word: /FAULT duplicate: conn \d+ got message \d+ of conn \d+ twice/ },
  reorder: { key: 'reordered', word: /FAULT reordered: conn \d+ got message \d+ of conn \d+ after \d+/ },
};

for (const [name, args] of [['fanout', fanout], ['echo', echo]]) {
  test(`${name} against a correct server passes`, async () => {
    const srv = await startFaulty('none');
    try {
      const r = await runBench([...args, '--url', srv.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.result.errors, '0');
      assert.ok(Number(r.result.deliveries) > 0, r.line);
    } finally {
      await srv.stop();
    }
  });

  for (const [mode, exp] of Object.entries(expectations)) {
    test(`${name} reports a server that does "${mode}"`, async () => {
      const srv = await startFaulty(mode);
      try {
        const r = await runBench([...args, '--url', srv.url]);
        assert.equal(r.code, 1, `expected exit 1\n${r.stdout}\n${r.stderr}`);
        assert.match(r.stderr, exp.word);
        assert.ok(Number(r.result[exp.key]) >= 1, `${exp.key} not reported: ${r.line}`);
        assert.ok(Number(r.result.errors) >= 1, r.line);
        // only the injected kind of fault
        for (const other of ['lost', 'duplicates', 'reordered'])
          if (other !== exp.key) assert.equal(r.result[other], '0', `${other} in ${r.line}`);
      } finally {
        await srv.stop();
      }
    });
  }
}

test('a server that is not there is an error, not a pass', async () => {
  const r = await runBench(['echo', '--url', 'ws://127.0.0.1:1', '--conns', '2', ...short]);
  assert.notEqual(r.code, 0);
});
