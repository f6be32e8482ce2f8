// WebSockets over HTTP/2 (RFC 8441) from Node's own `http2` client: the
// session and the extended CONNECT are Node's, the WebSocket framing on the
// stream is the `ws` package's (both written by others, not by us).
//
//   const s = await h2session(srv.port);            // h2c with prior knowledge
//   const { stream, headers } = await connectStream(s, '/echo');  // :status 200
//   const ws = wsOnStream(stream);                  // a client-role `ws` WebSocket
//   const c = await Chat.openH2(s, '/ws?room=r');   // see chat.mjs
//   await refusal(s, { ':path': '/nope' })           // -> { status, body } of a refused CONNECT
//
// connectStream rejects with an Error carrying `status` and `body` when the
// server answers with anything but 200.
import http2 from 'node:http2';
import WebSocket from 'ws';

export async function h2session(port, { host = '127.0.0.1', scheme = 'http', options = {} } = {}) {
  const s = http2.connect(`${scheme}://${host}:${port}`, options);
  s.on('error', () => {});
  s.authority = `${host}:${port}`;
  s.scheme = scheme;
  await new Promise((resolve, reject) => {
    s.once('remoteSettings', resolve);
    s.once('error', reject);
  });
  return s;
}

export function connectHeaders(session, path, headers = {}) {
  return {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':path': path,
    ':scheme': session.scheme ?? 'http',
    ':authority': session.authority,
    'sec-websocket-version': '13',
    ...headers,
  };
}

// Sends a request with exactly these headers; resolves with the response
// status and body when the server refuses, or the open stream on 200.
export function request(session, headers, { end = false } = {}) {
  return new Promise((resolve, reject) => {
    let stream;
    try {
      stream = session.request(headers, { endStream: end });
    } catch (e) { reject(e); return; }
    stream.on('error', reject);
    stream.once('response', (h) => {
      const status = h[':status'];
      if (status === 200 && headers[':method'] === 'CONNECT') { resolve({ status, headers: h, stream }); return; }
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => { body += d; });
      stream.on('end', () => resolve({ status, headers: h, body, stream }));
    });
  });
}

export async function connectStream(session, path, headers = {}) {
  const r = await request(session, connectHeaders(session, path, headers));
  if (r.status !== 200) throw Object.assign(new Error(`HTTP ${r.status} ${r.body}`), { status: r.status, body: r.body });
  return r;
}

// A `ws` WebSocket in the client role (masks what it sends) on an open stream.
export function wsOnStream(stream, { maxPayload = 100 * 1024 * 1024 } = {}) {
  const ws = new WebSocket(null, undefined, { autoPong: true, closeTimeout: 30000 });
  ws._isServer = false;
  ws.setSocket(stream, Buffer.alloc(0), { maxPayload, allowSynchronousEvents: true });
  return ws;
}

export function get(session, path, headers = {}) {
  return request(session, { ':path': path, ...headers }, { end: true });
}
