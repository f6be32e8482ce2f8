// The strict RFC 6455 conformance cases of ws_conformance.test.mjs, each on
// a WebSocket carried by an HTTP/2 stream (RFC 8441 extended CONNECT from
// Node's http2 client) instead of a TCP connection after 101.
process.env.WSCHAT_WS_CARRIER = 'h2';
await import('./ws_conformance.test.mjs');
