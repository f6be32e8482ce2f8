// Node `ws` peer for wschat-bench (../../docs/BENCHMARKS.md).
//   node node_ws.mjs PORT              ws:// (a plain http server)
//   node node_ws.mjs PORT CERT KEY     wss:// (a Node https server, as the ws
//                                      README shows for "External HTTP/S server")
// The benchmark contract: /ws/ROOM broadcasts every message to every client
// in ROOM (sender included), /echo echoes. Written the way the ws README
// shows a broadcast ("Server broadcast"), with the clients grouped by room.
import { readFileSync } from 'node:fs';
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { WebSocketServer, WebSocket } from 'ws';

const [port, cert, key] = [Number(process.argv[2] || 8000), process.argv[3], process.argv[4]];
const server = cert ? createHttps({ cert: readFileSync(cert), key: readFileSync(key) }) : createHttp();
const wss = new WebSocketServer({ server });
const rooms = new Map(); // room name -> Set of sockets

wss.on('connection', function connection(ws, req) {
  ws.on('error', console.error);
  const url = new URL(req.url, 'http://localhost');

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

server.listen(port, () => console.log(`node ws peer listening on :${port}${cert ? ' (https)' : ''}`));
