// Node `ws` over https for wschat-bench's TLS rows (../../docs/BENCHMARKS.md).
//   node node_ws_https.mjs PORT CERT KEY
// The same broadcast loop as node_ws.mjs (the ws README's "Server
// broadcast"), on a Node https server, as the ws README shows for wss
// ("External HTTP/S server"). perMessageDeflate stays off (the ws default).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { WebSocketServer, WebSocket } from 'ws';

const [port, cert, key] = [Number(process.argv[2] || 8443), process.argv[3], process.argv[4]];
const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) });
const wss = new WebSocketServer({ server });
const rooms = new Map(); // room name -> Set of sockets

wss.on('connection', function connection(ws, req) {
  ws.on('error', console.error);
  const url = new URL(req.url, 'https://localhost');

  if (url.pathname === '/echo') {
    ws.on('message', function message(data, isBinary) {
      ws.send(data, { binary: isBinary });
    });
    return;
  }

  const m = /^\/ws\/([A-Za-z0-9._-]{1,64})$/.exec(url.pathname);
  if (!m) {
    ws.close(1008, 'unknown path');
    return;
  }
  const name = m[1];
  let room = rooms.get(name);
  if (!room) rooms.set(name, (room = new Set()));
  room.add(ws);

  ws.on('message', function message(data, isBinary) {
    room.forEach(function each(client) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });

  ws.on('close', function close() {
    room.delete(ws);
    if (room.size === 0) rooms.delete(name);
  });
});

server.listen(port, () => console.log(`node ws https peer listening on :${port}`));
