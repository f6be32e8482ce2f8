// A deliberately faulty benchmark-contract server, to prove that wschat-bench
// notices when a server gets delivery wrong (tests/integration/bench_*).
//
//   node faulty_server.mjs PORT MODE [N]
//
// It implements /ws/ROOM (broadcast to the room, sender included) and /echo,
// correctly except for one fault at the N-th message (default 20) of each
// room, or of each /echo connection:
//   none     no fault (the control case)
//   drop     one recipient (not the sender) never gets message N
//   dup      one recipient gets message N twice
//   reorder  one recipient gets message N after the sender's next message
// Prints "listening PORT" on stdout when ready (PORT 0 picks a free port).
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 0);
const mode = process.argv[3] || 'none';
const faultAt = Number(process.argv[4] || 20);
if (!['none', 'drop', 'dup', 'reorder'].includes(mode)) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

const wss = new WebSocketServer({ port, host: '127.0.0.1' });
const rooms = new Map(); // name -> { members: Set, count, held: null | {victim, sender, data} }

function deliver(victim, data, sender, state) {
  // Called for the faulty recipient only; returns nothing.
  if (state.held && state.held.sender === sender) {
    victim.send(data);
    victim.send(state.held.data); // the held message, now out of order
    state.held = null;
    return;
  }
  victim.send(data);
}

function route(state, sender, data, recipients) {
  state.count++;
  const faulty = mode !== 'none' && state.count === faultAt;
  let victim = null;
  if (faulty) {
    for (const r of recipients) if (r !== sender) { victim = r; break; }
    if (!victim) victim = sender;
  }
  for (const r of recipients) {
    if (r.readyState !== 1) continue;
    if (r === victim) {
      if (mode === 'drop') continue;
      if (mode === 'dup') { r.send(data); r.send(data); continue; }
      if (mode === 'reorder') { state.held = { victim: r, sender, data }; continue; }
    }
    if (state.held && state.held.victim === r) deliver(r, data, sender, state);
    else r.send(data);
  }
}

wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/echo') {
    const state = { count: 0, held: null };
    const self = [ws];
    ws.on('message', (data) => route(state, ws, data.toString(), self));
    return;
  }
  const m = /^\/ws\/([A-Za-z0-9._-]{1,64})$/.exec(path);
  if (!m) { ws.close(1008, 'bad path'); return; }
  let room = rooms.get(m[1]);
  if (!room) rooms.set(m[1], (room = { members: new Set(), count: 0, held: null }));
  room.members.add(ws);
  ws.on('message', (data) => route(room, ws, data.toString(), room.members));
  ws.on('close', () => room.members.delete(ws));
});

wss.on('listening', () => console.log(`listening ${wss.address().port}`));
