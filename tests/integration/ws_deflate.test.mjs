// permessage-deflate (RFC 7692) on /echo and the chat endpoints:
//   N  negotiation: what is accepted, what is declined (never refused)
//   R  receiving: compressed messages, fragmented, RSV1 rules, bad data,
//      the 10 MB bomb against the message limit (RSS stays flat)
//   C  chat: a broadcast is compressed once and shared; plain members get
//      the plain frame; short messages go plain (--deflate-min)
//   12.* / 13.*  after Autobahn|Testsuite: compressed echoes of many sizes
//      and kinds (12), under every parameter combination a client may
//      offer (13), with Node `ws` as the independent client both ways
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import { startServer } from '../lib/server.mjs';
import { RawWS, OP, frame, text, binary, cont, ping, sleep } from '../lib/rawws.mjs';
import { openWs, WebSocket } from '../lib/wsclient.mjs';
import { Chat } from '../lib/chat.mjs';

const T = { timeout: 120000 };
const PMD = 'permessage-deflate';
let srv;    // --echo, deflate on (default threshold)
let lim;    // --echo --max-message 1 MiB, --deflate-min 0
let off;    // --echo --no-deflate

before(async () => {
  // No heartbeat pings in the middle of a case (the cases are long under ASan).
  srv = await startServer({ args: ['--echo', '--ping-interval', '0'] });
  // ASan's quarantine keeps freed memory resident on purpose; R.11 measures
  // RSS, so this server returns freed memory at once.
  lim = await startServer({ args: ['--echo', '--ping-interval', '0', '--max-message', String(1 << 20), '--deflate-min', '0'],
    env: { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:quarantine_size_mb=0' } });
  off = await startServer({ args: ['--echo', '--ping-interval', '0', '--no-deflate'] });
});
after(async () => {
  for (const s of [srv, lim, off]) {
    if (!s) continue;
    const code = await s.stop();
    assert.equal(code, 0, `exit code after SIGTERM\n${s.log.slice(-4000)}`);
    assert.doesNotMatch(s.log, /AddressSanitizer|LeakSanitizer|runtime error:/, s.log.slice(-4000));
  }
});

// Compresses one message the way a client does (no context takeover):
// raw deflate, sync flush, the 00 00 ff ff tail removed.
function deflate(data, opts = {}) {
  const z = zlib.deflateRawSync(Buffer.isBuffer(data) ? data : Buffer.from(data), { finishFlush: zlib.constants.Z_SYNC_FLUSH, ...opts });
  assert.ok(z.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff])));
  return z.subarray(0, -4);
}

async function connect(server, offer = PMD, path = '/echo') {
  return RawWS.connect(server.port, { path, headers: offer === null ? {} : { 'Sec-WebSocket-Extensions': offer } });
}

async function metric(server, name) {
  const body = await fetch(server.http('/metrics')).then((r) => r.text());
  const m = body.match(new RegExp(`^${name} (\\d+)`, 'm'));
  assert.ok(m, `metric ${name} missing`);
  return Number(m[1]);
}

function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

describe('N negotiation', () => {
  const accepted = [
    [PMD, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
    [`${PMD}; client_max_window_bits`, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
    [`${PMD}; client_max_window_bits=10; client_no_context_takeover`, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
    [`${PMD}; server_no_context_takeover`, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
    [`${PMD}; server_max_window_bits=10`, `${PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10`],
    [`${PMD}; server_max_window_bits="9"`, `${PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9`],
    [`x-webkit-deflate-frame, ${PMD}; client_max_window_bits`, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
    // The first offer is declined (bad value); the second is taken.
    [`${PMD}; server_max_window_bits=16, ${PMD}; client_max_window_bits`, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
    [`Permessage-Deflate ; Client_Max_Window_Bits`, `${PMD}; server_no_context_takeover; client_no_context_takeover`],
  ];
  for (const [offer, want] of accepted) {
    test(`N.accept ${JSON.stringify(offer)}`, T, async () => {
      const ws = await connect(srv, offer);
      assert.equal(ws.response.headers['sec-websocket-extensions'], want);
      ws.destroy();
    });
  }
  const declined = [
    `${PMD}; server_max_window_bits=16`, `${PMD}; server_max_window_bits=7`, `${PMD}; server_max_window_bits=08`,
    `${PMD}; server_max_window_bits`, `${PMD}; client_max_window_bits=0`, `${PMD}; client_max_window_bits=100`,
    `${PMD}; client_no_context_takeover=1`, `${PMD}; server_no_context_takeover; server_no_context_takeover`,
    `${PMD}; unknown_param`, `${PMD}; server_max_window_bits="1"0"`, `${PMD}; server_max_window_bits="10`,
    `${PMD};; client_max_window_bits`, `${PMD} client_max_window_bits`, `x-webkit-deflate-frame`, `, ,`, `=`,
  ];
  for (const offer of declined) {
    test(`N.decline ${JSON.stringify(offer)} -> 101 without the extension`, T, async () => {
      const ws = await connect(srv, offer);
      assert.equal(ws.response.headers['sec-websocket-extensions'], undefined);
      assert.equal(ws.deflate, false);
      await ws.send(text('still works'));
      await ws.expectMessage(OP.TEXT, 'still works');
      ws.destroy();
    });
  }
  test('N.off --no-deflate: never negotiated', T, async () => {
    const ws = await connect(off, PMD);
    assert.equal(ws.response.headers['sec-websocket-extensions'], undefined);
    ws.destroy();
  });
  test('N.none no offer: no extension; RSV1 is then 1002', T, async () => {
    const ws = await connect(srv, null);
    assert.equal(ws.response.headers['sec-websocket-extensions'], undefined);
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate('hi') }));
    await ws.expectFail(1002);
    ws.destroy();
  });
});

describe('R receiving compressed messages', () => {
  test('R.1 compressed text and binary, sizes 0..1 MiB -> echoed (compressed when it helps)', T, async () => {
    const ws = await connect(lim);
    for (const n of [0, 1, 100, 125, 126, 4096, 65535, 65536, 300000, 1 << 20]) {
      const data = Buffer.from('chat message number '.repeat(Math.ceil(n / 20) + 1)).subarray(0, n);
      await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate(data) }));
      const ev = await ws.expect('message');
      assert.ok(ev.data.equals(data), `text ${n}`);
      if (n >= 100) assert.ok(ev.compressed && ev.wireBytes < n, `echo of ${n} bytes compressed (${ev.wireBytes})`);
      const bin = Buffer.alloc(n, 0x5a);
      await ws.send(frame({ opcode: OP.BINARY, rsv: 4, payload: deflate(bin) }));
      const eb = await ws.expect('message');
      assert.equal(eb.opcode, OP.BINARY);
      assert.ok(eb.data.equals(bin), `binary ${n}`);
    }
    await ws.closeClean();
  });

  test('R.2 uncompressed messages still allowed after negotiation', T, async () => {
    const ws = await connect(srv);
    await ws.send(text('plain one'));
    await ws.expectMessage(OP.TEXT, 'plain one');
    await ws.closeClean();
  });

  test('R.3 a compressed message in 3 fragments (RSV1 on the first only), a ping between -> echo', T, async () => {
    const ws = await connect(srv);
    const msg = 'fragmented and compressed '.repeat(50);
    const z = deflate(msg);
    const a = Math.floor(z.length / 3);
    await ws.sendAll([
      frame({ opcode: OP.TEXT, rsv: 4, fin: false, payload: z.subarray(0, a) }),
      ping('p'),
      cont(z.subarray(a, 2 * a), { fin: false }),
      cont(z.subarray(2 * a)),
    ]);
    await ws.expectPong('p');
    await ws.expectMessage(OP.TEXT, msg);
    await ws.closeClean();
  });

  test('R.4 a compressed message chopped into 1-byte writes -> echo', T, async () => {
    const ws = await connect(srv);
    const msg = 'byte by byte '.repeat(40);
    await ws.sendChopped(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate(msg) }), 1, 0);
    await ws.expectMessage(OP.TEXT, msg);
    await ws.closeClean();
  });

  test('R.5 a final (BFINAL) deflate block instead of a sync flush is accepted', T, async () => {
    const ws = await connect(srv);
    const msg = 'ends with a final block';
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: zlib.deflateRawSync(Buffer.from(msg)) }));
    await ws.expectMessage(OP.TEXT, msg);
    await ws.closeClean();
  });

  test('R.6 RSV1 on a continuation frame -> 1002', T, async () => {
    const ws = await connect(srv);
    const z = deflate('abcabcabc');
    await ws.sendAll([frame({ opcode: OP.TEXT, rsv: 4, fin: false, payload: z.subarray(0, 2) }), cont(z.subarray(2), { rsv: 4 })]);
    await ws.expectFail(1002);
    ws.destroy();
  });

  test('R.7 RSV1 on a ping -> 1002', T, async () => {
    const ws = await connect(srv);
    await ws.send(ping('x', { rsv: 4 }));
    await ws.expectFail(1002);
    ws.destroy();
  });

  test('R.8 RSV2/RSV3 stay forbidden with deflate -> 1002', T, async () => {
    const ws = await connect(srv);
    await ws.send(frame({ opcode: OP.TEXT, rsv: 2, payload: 'x' }));
    await ws.expectFail(1002);
    ws.destroy();
  });

  test('R.9 data that is not deflate -> 1007', T, async () => {
    const ws = await connect(srv);
    await ws.send(frame({ opcode: OP.BINARY, rsv: 4, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x12]) }));
    await ws.expectFail(1007);
    ws.destroy();
  });

  test('R.10 compressed text that inflates to invalid UTF-8 -> 1007', T, async () => {
    const ws = await connect(srv);
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate(Buffer.from([0x61, 0xed, 0xa0, 0x80])) }));
    await ws.expectFail(1007);
    ws.destroy();
  });

  test('R.11 10 MB of zeros compressed to a few KB -> 1009 at the 1 MiB limit; RSS stays flat over 30 bombs', T, async () => {
    const bomb = deflate(Buffer.alloc(10 * 1000 * 1000), { level: 9 });
    assert.ok(bomb.length < 20000, `bomb is ${bomb.length} bytes`);
    const one = async () => {
      const ws = await connect(lim);
      await ws.send(frame({ opcode: OP.BINARY, rsv: 4, payload: bomb }));
      const ev = await ws.expectFail(1009);
      ws.destroy();
      return ev;
    };
    await one();
    await one();
    const before = rssKiB(lim.proc.pid);
    for (let i = 0; i < 30; i++) await one();
    const afterKiB = rssKiB(lim.proc.pid);
    // Nothing is inflated past 1 MiB + 1 byte; 30 bombs of 10 MB each
    // would show as hundreds of MiB if they were.
    assert.ok(afterKiB - before < 8 * 1024, `RSS grew ${afterKiB - before} KiB (before ${before}, after ${afterKiB})`);
    // The server still echoes.
    const ws = await connect(lim);
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate('alive') }));
    await ws.expectMessage(OP.TEXT, 'alive');
    await ws.closeClean();
  });

  test('R.12 a message exactly at the limit inflates; one byte more is 1009', T, async () => {
    const ws = await connect(lim);
    const exact = Buffer.alloc(1 << 20, 0x61);
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate(exact) }));
    const ev = await ws.expect('message');
    assert.equal(ev.data.length, exact.length);
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate(Buffer.alloc((1 << 20) + 1, 0x61)) }));
    await ws.expectFail(1009);
    ws.destroy();
  });

  test('R.13 server_max_window_bits=9: messages over 512 bytes come back plain, smaller ones compressed', T, async () => {
    const ws = await connect(lim, `${PMD}; server_max_window_bits=9`);
    const small = 'w'.repeat(500), big = 'w'.repeat(600);
    await ws.send(text(small));
    const a = await ws.expect('message');
    assert.ok(a.compressed && a.data.toString() === small);
    await ws.send(text(big));
    const b = await ws.expect('message');
    assert.ok(!b.compressed && b.data.toString() === big);
    await ws.closeClean();
  });
});

describe('C chat: compressed once, shared', () => {
  test('C.1 a 1 KiB broadcast to 5 deflate members and 2 plain ones: built once, 5 compressed, 2 plain', T, async () => {
    const room = 'zroom';
    const members = [];
    for (let i = 0; i < 7; i++) {
      const ws = await connect(srv, i < 5 ? PMD : null, `/ws/${room}?name=m${i}`);
      members.push(ws);
      await ws.expect('message');   // welcome
    }
    // Everyone has seen everyone's presence before we count.
    await sleep(300);
    const builtBefore = await metric(srv, 'wschat_ws_deflate_built_total');
    const sentBefore = await metric(srv, 'wschat_ws_deflate_sent_total');
    const words = 'the quick brown fox jumps over the lazy dog while chatting about permessage deflate ';
    const textMsg = words.repeat(13).slice(0, 1024);
    await members[0].send(text(JSON.stringify({ type: 'send', room, text: textMsg, ref: 1 })));
    for (let i = 0; i < 7; i++) {
      for (;;) {
        const ev = await members[i].expect('message');
        const m = JSON.parse(ev.data.toString());
        if (m.type !== 'message') continue;
        assert.equal(m.text, textMsg);
        assert.equal(ev.compressed, i < 5, `member ${i} compressed=${ev.compressed}`);
        if (i < 5) assert.ok(ev.wireBytes < ev.data.length / 2, `compressed to ${ev.wireBytes} of ${ev.data.length}`);
        break;
      }
    }
    assert.equal(await metric(srv, 'wschat_ws_deflate_built_total') - builtBefore, 1, 'the broadcast was compressed once');
    assert.equal(await metric(srv, 'wschat_ws_deflate_sent_total') - sentBefore, 5, 'and sent to the 5 deflate members');
    for (const ws of members) ws.destroy();
  });

  test('C.2 a chat client sending compressed messages is understood; short events go plain', T, async () => {
    const ws = await connect(srv, PMD, '/ws/zroom2?name=zed');
    const welcome = await ws.expect('message');
    if (welcome.data.length < 256) assert.equal(welcome.compressed, false, 'under --deflate-min: plain');
    await ws.send(frame({ opcode: OP.TEXT, rsv: 4, payload: deflate(JSON.stringify({ type: 'send', room: 'zroom2', text: 'hi', ref: 'r1' })) }));
    for (;;) {
      const ev = await ws.expect('message');
      const m = JSON.parse(ev.data.toString());
      if (m.type === 'ack') { assert.equal(m.ref, 'r1'); assert.equal(ev.compressed, false, 'a short ack goes plain'); break; }
    }
    ws.destroy();
  });
});

// --- Autobahn-style 12.* and 13.* with Node `ws` as the client ---------------

function payloadOf(kind, n, seed) {
  if (kind === 'text') {
    const words = ['hello', 'wschat', 'deflate', 'room', 'message', 'über', '€uro', '😀', 'a', 'the'];
    const parts = [];
    let x = seed, len = 0;
    while (len < n) { x = (x * 1103515245 + 12345) & 0x7fffffff; const w = words[x % words.length] + ' '; parts.push(w); len += Buffer.byteLength(w); }
    return Buffer.from(parts.join('')).subarray(0, n).toString('utf8').replace(/\uFFFD/g, 'x');
  }
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) & 0x7fffffff; b[i] = kind === 'random' ? x >> 16 : (x % 16) + 65; }
  return b;
}

async function echoMany(perMessageDeflate, sizes, kinds, count) {
  const c = await openWs(lim.url('/echo'), { perMessageDeflate });
  assert.match(c.ws.extensions, /permessage-deflate/);
  let seed = 1;
  for (const n of sizes) {
    for (const kind of kinds) {
      const msgs = [];
      for (let i = 0; i < count; i++) msgs.push(payloadOf(kind, n, seed++));
      for (const m of msgs) c.ws.send(m, { compress: true });
      for (const m of msgs) {
        const ev = await c.next('message', 60000);
        const want = Buffer.isBuffer(m) ? m : Buffer.from(m);
        assert.equal(ev.isBinary, Buffer.isBuffer(m));
        assert.ok(ev.data.equals(want), `echo of ${kind} ${n} bytes differs`);
      }
    }
  }
  c.ws.close(1000);
  assert.equal((await c.closed).code, 1000);
}

const SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];

describe('12 compressed echoes of many sizes and kinds (Node ws, perMessageDeflate)', () => {
  const kinds = { '12.1': ['text'], '12.2': ['binary'], '12.3': ['random'], '12.4': ['text', 'binary'], '12.5': ['random', 'text'] };
  for (const [id, ks] of Object.entries(kinds)) {
    test(`${id} ${ks.join('+')}: ${SIZES.length} sizes x 10 messages`, T, () =>
      echoMany({ threshold: 0 }, SIZES, ks, 10));
  }
});

describe('13 every parameter combination a client may offer', () => {
  const combos = {
    '13.1 default offer': {},
    '13.2 client_no_context_takeover': { clientNoContextTakeover: true },
    '13.3 client_max_window_bits=9': { clientMaxWindowBits: 9 },
    '13.4 client_max_window_bits=15': { clientMaxWindowBits: 15 },
    '13.5 client_no_context_takeover + client_max_window_bits=9': { clientNoContextTakeover: true, clientMaxWindowBits: 9 },
    '13.6 server_no_context_takeover': { serverNoContextTakeover: true },
    '13.7 server_max_window_bits=9': { serverMaxWindowBits: 9 },
    '13.8 server_max_window_bits=15 + client_max_window_bits=10': { serverMaxWindowBits: 15, clientMaxWindowBits: 10 },
    '13.9 everything': { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 },
  };
  for (const [id, opts] of Object.entries(combos)) {
    test(id, T, () => echoMany({ threshold: 0, ...opts }, [16, 256, 1024, 8192, 65536], ['text', 'random'], 5));
  }
  test('13.10 both ways: Node ws sends compressed and reads our compressed echo (bytes on the wire)', T, async () => {
    const c = await openWs(srv.url('/echo'), { perMessageDeflate: { threshold: 0 } });
    const big = 'compress me please '.repeat(500);   // 9500 bytes
    const sock = c.ws._socket;
    const w0 = sock.bytesWritten, r0 = sock.bytesRead;
    c.ws.send(big);
    const ev = await c.next('message');
    assert.equal(ev.data.toString(), big);
    assert.ok(sock.bytesWritten - w0 < 500, `client wrote ${sock.bytesWritten - w0} bytes for 9500`);
    assert.ok(sock.bytesRead - r0 < 500, `client read ${sock.bytesRead - r0} bytes for 9500`);
    c.ws.close();
  });
});
