// Helpers of the cluster tests (nodes started with --redis):
//   await joinRoom(node, room, '&name=x')   // a WebSocket member: c.welcome, c.joined
//   await healthy(node, 200)                // waits until /healthz answers that status
import { Chat } from './chat.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function healthy(node, want = 200, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await fetch(node.http('/healthz'));
    const body = await r.text();
    if (r.status === want) return body;
    if (Date.now() > deadline) throw new Error(`healthz stayed ${r.status} ${body}`);
    await sleep(50);
  }
}

// Opens a client and waits for its welcome and (with a room) joined.
export async function joinRoom(node, room, q = '') {
  const c = await Chat.open(node.url(`/ws?room=${room}${q}`));
  c.welcome = await c.next('welcome');
  c.joined = await c.next('joined');
  return c;
}
