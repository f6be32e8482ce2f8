// A flood of hostile TCP clients, run as its own process so that the test
// process does not hold every descriptor (each process may open 20,000).
//
//   node flood_client.mjs PORT MODE COUNT [INTERVAL_MS]
//     MODE loris: send a request head one byte at a time, one byte per
//                 socket every INTERVAL_MS (default 3000), never finishing
//     MODE idle:  connect and send nothing
//
// Prints one JSON line when all COUNT are connected ({"connected":N,
// "failed":F}), then, once every socket was closed by the server (or on
// SIGTERM), {"closed":N,"status":{"408":K,...},"elapsed_ms":T} and exits.
import net from 'node:net';

const [port, mode, countArg, intervalArg] = process.argv.slice(2);
const count = Number(countArg);
const interval = Number(intervalArg ?? 3000);
const HEAD = 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Slow: ' + 'a'.repeat(4000);
const BATCH = Number(process.env.FLOOD_BATCH ?? 250);   // in flight at once: the listen backlog must not overflow
// A fresh /16 of source addresses per process: no TIME_WAIT of an earlier run in the way.
const SRC_NET = 16 + Math.floor(Math.random() * 230);

const socks = [];
let connected = 0, failed = 0, closed = 0;
const status = {};
const t0 = Date.now();

function open() {
  return new Promise((resolve) => {
    // Many source addresses (127.0.0.0/8 is all loopback): the kernel's
    // search for a free source port stays short with 18,000 sockets open.
    const n = socks.length;
    const s = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: `127.${SRC_NET}.${1 + (n % 250)}.${1 + Math.floor(n / 250) % 250}` });
    s.sent = 0;
    s.head = '';
    let settled = false;
    const done = (ok) => { if (!settled) { settled = true; ok ? connected++ : failed++; resolve(); } };
    s.on('connect', () => done(true));
    s.on('data', (d) => { s.head += d.toString('latin1'); });
    s.on('error', () => done(false));
    s.on('close', () => {
      done(false);
      closed++;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(s.head);
      const k = m ? m[1] : 'none';
      status[k] = (status[k] ?? 0) + 1;
      if (closed === socks.length && reported) finish();
    });
    socks.push(s);
  });
}

let reported = false;
let ticker;
function finish() {
  clearInterval(ticker);
  process.stdout.write(JSON.stringify({ closed, status, elapsed_ms: Date.now() - t0 }) + '\n');
  process.exit(0);
}
process.on('SIGTERM', finish);

for (let i = 0; i < count; i += BATCH) {
  const batch = [];
  for (let j = i; j < Math.min(count, i + BATCH); j++) batch.push(open());
  await Promise.all(batch);
}
process.stdout.write(JSON.stringify({ connected, failed, connect_ms: Date.now() - t0 }) + "\n");
reported = true;
if (closed === socks.length) finish();

if (mode === 'loris') {
  // Every TICK ms, the next slice of sockets gets one byte each: each socket
  // sends a byte every `interval` ms.
  const TICK = 100;
  const slices = Math.max(1, Math.round(interval / TICK));
  let k = 0;
  ticker = setInterval(() => {
    for (let i = k % slices; i < socks.length; i += slices) {
      const s = socks[i];
      if (s.destroyed || !s.writable || s.sent >= HEAD.length) continue;
      s.write(HEAD[s.sent++]);
    }
    k++;
  }, TICK);
}
