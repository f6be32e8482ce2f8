/* wschat — the browser client.
 *
 * Speaks protocol v1 (docs/PROTOCOL.md) over one WebSocket to /ws.
 * - Rendering: user data only ever goes through textContent / attributes,
 *   never innerHTML.
 * - Messages are kept per room by id: each id is shown once, in id order.
 * - Reconnect: exponential backoff with full jitter; the new connection
 *   reclaims the name with ?session=TOKEN and rejoins with since=<highest id
 *   seen>&epoch=<epoch>, so nothing is missed or shown twice. When the server
 *   says recovered:false the list is rebuilt from the replayed window and
 *   older pages come from `history`.
 * - Messages typed while disconnected wait in an outbox and are sent once the
 *   room is rejoined and its replay is complete (a message whose ack was lost
 *   is matched against the replay first, so it is not sent twice).
 * - Transport: WebSocket, long polling or polling every N s (the control in
 *   the top bar, or ?transport=websocket|longpoll|poll&interval=N). The HTTP
 *   ones come from transports.js with the WebSocket's shape, so everything
 *   below is the same for all three; the bar shows what each one costs.
 */
(function () {
  'use strict';

  const SUBPROTOCOL = 'wschat.v1';
  // The server passes on one typing event per member and room every 2 s;
  // a little margin keeps ours from arriving early and being dropped.
  const TYPING_SEND_EVERY = 2200;   // ms between our typing events
  const TYPING_SHOW_FOR = 3000;     // ms a typing indicator lasts
  const BACKOFF_BASE = 500;         // ms
  const BACKOFF_MAX = 10000;        // ms
  const PING_EVERY = 25000;         // ms
  const PONG_TIMEOUT = 10000;       // ms
  const JOIN_TIMEOUT = 20000;       // ms from connecting to joined, else retry
  const HISTORY_PAGE = 50;
  const MAX_TEXT_BYTES = 4096;
  const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
  const STORE_SESSION = 'wschat.session';
  const STORE_NAME = 'wschat.name';

  const T = window.WschatTransports;
  const TRANSPORTS = ['websocket', 'longpoll', 'polling'];
  const POLL_INTERVAL_DEFAULT = 2;   // s

  const $ = (id) => document.getElementById(id);
  const el = {
    app: $('app'), status: $('status'), roomName: $('room-name'), me: $('me'),
    membersToggle: $('members-toggle'), membersToggleCount: $('members-toggle-count'),
    notice: $('notice'), noticeText: $('notice-text'), noticeClose: $('notice-close'),
    joinForm: $('join-form'), nameInput: $('name-input'), roomInput: $('room-input'),
    joinButton: $('join-button'), joinCancel: $('join-cancel'), joinError: $('join-error'),
    list: $('message-list'), historyTop: $('history-top'), loadOlder: $('load-older'),
    historyState: $('history-state'), empty: $('empty-state'), jump: $('jump'),
    typing: $('typing-indicator'), composer: $('composer'), input: $('message-input'),
    send: $('send-button'), dmTarget: $('dm-target'), dmTargetName: $('dm-target-name'),
    dmCancel: $('dm-cancel'), sidebar: $('sidebar'), memberList: $('member-list'),
    memberCount: $('member-count'), scrim: $('scrim'),
    transport: $('transport'), pollInterval: $('poll-interval'), transportStats: $('transport-stats'),
  };

  // ---------------------------------------------------------------- storage
  function store(kind) {
    try { return window[kind]; } catch { return null; }
  }
  function getItem(kind, k) { try { return store(kind)?.getItem(k) ?? null; } catch { return null; } }
  function setItem(kind, k, v) { try { store(kind)?.setItem(k, v); } catch { /* private mode */ } }
  function removeItem(kind, k) { try { store(kind)?.removeItem(k); } catch { /* ignore */ } }

  // ------------------------------------------------------------------ state
  const state = {
    ws: null,
    status: 'offline',
    wanted: null,            // {name, room}: what the user asked for
    myName: null,
    session: getItem('sessionStorage', STORE_SESSION),
    room: null,              // the room we are in (or joining)
    joined: false,           // joined answered for state.room on this connection
    epoch: null,
    lastId: null,            // highest id seen live or in replay (resume point)
    minId: null,             // smallest id shown (history paging)
    byId: new Map(),         // id -> element
    more: true,              // older history may exist
    historyPending: false,
    replayUntil: 0,          // replay complete once an id >= this is seen
    replayDone: true,
    outbox: [],              // {ref, kind:'room'|'dm', room|to, text, el, sentOn}
    refSeq: 0,
    members: new Map(),      // name -> li
    memberCount: 0,
    typers: new Map(),       // name -> expiry timer
    lastTypingSent: 0,
    dmTo: null,
    attempt: 0,
    reconnectTimer: 0,
    pingTimer: 0,
    pongTimer: 0,
    connSeq: 0,
    stopped: false,          // no reconnect (replaced by another tab)
    transport: 'websocket',  // websocket | longpoll | polling
    pollInterval: POLL_INTERVAL_DEFAULT,
  };

  // ---------------------------------------------------------------- helpers
  function setStatus(s) {
    state.status = s;
    el.status.dataset.state = s;
    el.app.dataset.online = s === 'online' ? '1' : '0';
    el.status.textContent = s;
    el.status.title = {
      online: 'Connected', connecting: 'Connecting…',
      reconnecting: 'Connection lost — reconnecting…', offline: 'Not connected',
    }[s] || s;
  }

  let noticeTimer = 0;
  function notice(text, level = 'error', ms = 8000) {
    el.noticeText.textContent = text;
    el.notice.dataset.level = level;
    el.notice.hidden = false;
    clearTimeout(noticeTimer);
    if (ms) noticeTimer = setTimeout(() => { el.notice.hidden = true; }, ms);
  }

  function utf8Len(s) { return new TextEncoder().encode(s).length; }

  function fmtTime(ts) {
    const d = new Date(ts);
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // Unread count in the tab title while the page is hidden.
  let unread = 0;
  function setTitle() {
    const base = state.room ? `#${state.room} · wschat` : 'wschat';
    document.title = unread ? `(${unread}) ${base}` : base;
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && unread) { unread = 0; setTitle(); }
  });

  function hueOf(name) {
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }
  function initials(name) {
    const chars = Array.from(String(name).replace(/^guest-/, ''));
    return (chars[0] || '?').toUpperCase();
  }
  function sameName(a, b) {
    // Names compare case-insensitively for ASCII letters (PROTOCOL.md).
    if (a == null || b == null) return false;
    const low = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
    return low(a) === low(b);
  }
  function isMe(name) { return sameName(name, state.myName); }

  function nearBottom() {
    const l = el.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }
  function scrollToBottom() { el.list.scrollTop = el.list.scrollHeight; el.jump.hidden = true; }

  // ------------------------------------------------------------ connection
  function wsUrl() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams();
    // A session token reclaims our name (even from a stale connection of
    // ours); without one, ask for the name. If the token is no longer known
    // (the server restarted), welcome brings another name and onWelcome asks
    // for ours with hello before joining.
    if (state.session) q.set('session', state.session);
    else if (state.wanted?.name) q.set('name', state.wanted.name);
    return `${proto}//${location.host}/ws?${q}`;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    if (state.ws) return;
    state.stopped = false;
    setStatus(state.attempt === 0 && !state.everOnline ? 'connecting' : 'reconnecting');
    const seq = ++state.connSeq;
    let ws;
    try {
      if (state.transport === 'websocket') {
        const url = wsUrl();
        ws = new WebSocket(url, SUBPROTOCOL);
        T.countWsHandshake(url, SUBPROTOCOL);
      } else {
        ws = new T.HttpSocket(state.transport === 'polling' ? 'poll' : 'longpoll', state.pollInterval * 1000,
          { session: state.session, name: state.wanted?.name });
      }
    } catch (e) {
      notice(`Cannot connect: ${e.message}`);
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.joined = false;
    state.joinSent = false;
    state.helloPending = false;
    state.helloTried = false;
    ws.onopen = () => {
      if (seq !== state.connSeq) return;
      // What the handshake negotiated (permessage-deflate), for diagnostics.
      document.getElementById('status').dataset.extensions = ws.extensions;
      startHeartbeat();
    };
    // A connection that hangs before it is usable is given up and retried.
    clearTimeout(state.joinTimer);
    state.joinTimer = setTimeout(() => {
      if (seq !== state.connSeq || state.joined) return;
      dropSocket();
      onDisconnected({ code: 1006 });
    }, JOIN_TIMEOUT);
    const kind = state.transport;
    ws.onmessage = (ev) => {
      if (seq !== state.connSeq) return;
      if (kind === 'websocket') T.countWs('in', ev.data);
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      // latency of live messages: arrival minus the server's ts
      if (m && m.type === 'message' && state.joined && state.replayDone && typeof m.ts === 'number' &&
          !state.byId.has(m.id)) T.recordLatency(kind, Math.max(0, Date.now() - m.ts));
      if (m && typeof m === 'object' && typeof m.type === 'string') handle(m);
    };
    ws.onclose = (ev) => {
      if (seq !== state.connSeq) return;
      onDisconnected(ev);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  function send(obj) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    const text = JSON.stringify(obj);
    ws.send(text);
    if (state.transport === 'websocket') T.countWs('out', text);
    return true;
  }

  function startHeartbeat() {
    stopHeartbeat();
    state.pingTimer = setInterval(() => {
      if (!send({ type: 'ping', ref: 'hb' })) return;
      clearTimeout(state.pongTimer);
      state.pongTimer = setTimeout(() => {
        // No pong: the connection is half-open. Drop it and reconnect.
        if (state.ws) try { state.ws.close(4000, 'heartbeat timeout'); } catch { /* ignore */ }
        dropSocket();
        onDisconnected({ code: 1006 });
      }, PONG_TIMEOUT);
    }, PING_EVERY);
  }
  function stopHeartbeat() {
    clearInterval(state.pingTimer);
    clearTimeout(state.pongTimer);
    state.pingTimer = state.pongTimer = 0;
  }

  function dropSocket() {
    const ws = state.ws;
    state.ws = null;
    state.connSeq++;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch { /* ignore */ }
    }
  }

  function onDisconnected(ev) {
    stopHeartbeat();
    state.ws = null;
    state.joined = false;
    state.joinSent = false;
    clearTimeout(state.replayTimer);
    clearTypers();
    if (ev.code === 4001) {
      // Our session was taken over (the same user opened another tab).
      state.stopped = true;
      setStatus('offline');
      notice('This chat was opened in another window. Reload to continue here.', 'info', 0);
      return;
    }
    if (!state.wanted) { setStatus('offline'); return; }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (state.stopped || state.reconnectTimer) return;
    setStatus('reconnecting');
    const cap = Math.min(BACKOFF_MAX, BACKOFF_BASE * 2 ** state.attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);   // "equal jitter"
    state.attempt++;
    state.reconnectTimer = setTimeout(() => {
      state.reconnectTimer = 0;
      connect();
    }, delay);
  }

  window.addEventListener('online', () => {
    if (state.reconnectTimer) { clearTimeout(state.reconnectTimer); state.reconnectTimer = 0; connect(); }
  });

  // --------------------------------------------------------------- protocol
  function handle(m) {
    switch (m.type) {
      case 'welcome': return onWelcome(m);
      case 'joined': return onJoined(m);
      case 'left': return;
      case 'message': return onMessage(m, 'live');
      case 'ack': return onAck(m);
      case 'presence': return onPresence(m);
      case 'typing': return onTyping(m);
      case 'dm': return onDm(m);
      case 'history': return onHistory(m);
      case 'pong': clearTimeout(state.pongTimer); return;
      case 'error': return onError(m);
      default: return;
    }
  }

  function onWelcome(m) {
    const prev = state.myName;
    state.myName = m.name;
    if (m.session) {
      state.session = m.session;
      setItem('sessionStorage', STORE_SESSION, m.session);
    }
    setItem('sessionStorage', STORE_NAME, m.name);
    if (!String(m.name).startsWith('guest-')) setItem('localStorage', STORE_NAME, m.name);
    el.me.textContent = m.name;
    el.me.hidden = false;
    el.me.title = `You are ${m.name} — click to change name or room`;
    if (prev && !sameName(prev, m.name) && state.joined) renderMembers();
    if (state.helloPending) {
      state.helloPending = false;
    } else if (!state.joined && state.wanted?.name && !sameName(m.name, state.wanted.name) && !state.helloTried) {
      // Not the name we want (an expired session token): ask for it first,
      // so the room never sees us under a passing guest name.
      state.helloTried = true;
      state.helloPending = true;
      send({ type: 'hello', name: state.wanted.name });
      return;
    }
    // The connection is ready: join (or rejoin) the room.
    if (state.room && !state.joined && !state.joinSent) sendJoin();
  }

  function sendJoin() {
    const j = { type: 'join', room: state.room };
    if (state.lastId != null && state.epoch != null) {
      j.since = state.lastId;
      j.epoch = state.epoch;
    }
    state.joinSent = true;
    send(j);
  }

  function onJoined(m) {
    if (m.room !== state.room) return;
    state.joinSent = false;
    state.joined = true;
    state.attempt = 0;
    state.everOnline = true;
    setStatus('online');
    const resumed = state.lastId != null;
    if (resumed && (m.recovered === false || (state.epoch != null && m.epoch !== state.epoch))) {
      // History could not be resumed: rebuild from the replayed window.
      clearMessages();
    }
    state.epoch = m.epoch ?? null;
    const lastId = typeof m.last_id === 'number' ? m.last_id : 0;
    if (state.lastId == null) state.lastId = 0;
    // The replay runs up to last_id; once we have that, resend the outbox.
    state.replayUntil = lastId;
    state.replayDone = lastId <= state.lastId;
    clearTimeout(state.replayTimer);
    if (!state.replayDone) {
      // Should a replayed message never come, do not hold the outbox forever.
      state.replayTimer = setTimeout(() => { state.replayDone = true; flushOutbox(); }, 5000);
    }
    state.members.clear();
    el.memberList.replaceChildren();
    for (const n of m.members || []) addMember(n);
    state.memberCount = (m.members || []).length;
    renderCount();
    updateEmpty();
    if (state.replayDone) flushOutbox();
  }

  function clearMessages() {
    for (const node of Array.from(el.list.children)) {
      if (node === el.historyTop || node === el.empty) continue;
      // Pending messages survive (they are re-added at the bottom).
      if (node.classList.contains('pending')) continue;
      node.remove();
    }
    state.byId.clear();
    state.lastId = null;
    state.minId = null;
    state.more = true;
    state.historyPending = false;
    el.historyState.textContent = '';
    updateOlderButton();
  }

  function onMessage(m, how) {
    if (m.room !== state.room || typeof m.id !== 'number') return;
    if (how !== 'history') {
      if (state.lastId == null || m.id > state.lastId) state.lastId = m.id;
      if (!state.replayDone && m.id >= state.replayUntil) {
        state.replayDone = true;
        clearTimeout(state.replayTimer);
        queueMicrotask(flushOutbox);
      }
      removeTyper(m.from);
    }
    if (state.byId.has(m.id)) return;   // shown already (dedupe by id)
    // A message of ours whose ack was lost (connection dropped) comes back in
    // the replay: adopt the pending element instead of sending it again.
    if (isMe(m.from)) {
      const p = state.outbox.find((o) => o.kind === 'room' && o.room === m.room && o.sentOn && o.text === m.text);
      if (p) {
        state.outbox.splice(state.outbox.indexOf(p), 1);
        p.el.remove();
      }
    }
    const stick = nearBottom();
    const node = renderMessage(m);
    insertById(node, m.id);
    if (state.minId == null || m.id < state.minId) state.minId = m.id;
    updateEmpty();
    if (how === 'history') return;
    if (document.hidden && !isMe(m.from)) { unread++; setTitle(); }
    if (stick || isMe(m.from)) scrollToBottom();
    else el.jump.hidden = false;
  }

  function onAck(m) {
    const i = state.outbox.findIndex((o) => String(o.ref) === String(m.ref));
    if (i < 0) return;
    const o = state.outbox[i];
    state.outbox.splice(i, 1);
    if (o.kind === 'dm') {
      o.el.classList.remove('pending');
      setMsgState(o.el, 'delivered');
      return;
    }
    // A room message: the ack carries its id; its own copy follows. Drop
    // the placeholder when the copy is shown; if it is shown already, now.
    if (typeof m.id === 'number' && state.byId.has(m.id)) { o.el.remove(); return; }
    o.el.classList.remove('pending');
    setMsgState(o.el, '✓');
    o.el.querySelector('.msg-state').title = 'Stored by the server';
    if (typeof m.id === 'number') {
      o.el.dataset.id = String(m.id);
      o.el.remove();
      insertById(o.el, m.id);
      if (state.minId == null || m.id < state.minId) state.minId = m.id;
    }
  }

  function onPresence(m) {
    if (m.room !== state.room) return;
    if (m.event === 'join') addMember(m.name);
    else if (m.event === 'leave') { removeMember(m.name); removeTyper(m.name); }
    else if (m.event === 'rename') {
      removeMember(m.old);
      removeTyper(m.old);
      addMember(m.name);
      if (state.dmTo && sameName(state.dmTo, m.old)) setDm(m.name);
    }
    state.memberCount = typeof m.count === 'number' ? m.count : state.members.size;
    renderCount();
  }

  function onTyping(m) {
    if (m.room !== state.room || isMe(m.name)) return;
    const t = state.typers.get(m.name);
    if (t) clearTimeout(t);
    state.typers.set(m.name, setTimeout(() => removeTyper(m.name), TYPING_SHOW_FOR));
    renderTyping();
  }

  function onDm(m) {
    const out = isMe(m.from);
    // Our own DMs are shown when sent (and marked on ack); should the server
    // echo one back, it is not shown twice.
    if (out && !isMe(m.to)) return;
    const node = renderDm({ from: m.from, to: m.to, text: m.text, ts: m.ts, out });
    const stick = nearBottom();
    el.list.appendChild(node);
    updateEmpty();
    if (document.hidden && !out) { unread++; setTitle(); }
    if (stick) scrollToBottom(); else el.jump.hidden = false;
  }

  function onHistory(m) {
    if (m.room !== state.room) return;
    state.historyPending = false;
    const msgs = Array.isArray(m.messages) ? m.messages : [];
    const before = el.list.scrollHeight;
    const top = el.list.scrollTop;
    const fresh = msgs.filter((x) => typeof x.id === 'number' && !state.byId.has(x.id));
    if (fresh.length && state.minId != null && fresh.every((x, i) => x.id < state.minId && (i === 0 || x.id > fresh[i - 1].id))) {
      // The usual page: all older than what is shown, ascending. One insert.
      const frag = document.createDocumentFragment();
      for (const x of fresh) {
        const node = renderMessage({ ...x, room: m.room });
        state.byId.set(x.id, node);
        frag.appendChild(node);
      }
      const firstOld = state.byId.get(state.minId);
      let ref = el.historyTop.nextElementSibling;
      if (ref === el.empty) ref = ref.nextElementSibling;
      el.list.insertBefore(frag, ref);
      for (const x of fresh) fixupNeighbours(state.byId.get(x.id));
      if (firstOld) fixupNeighbours(firstOld);
      state.minId = fresh[0].id;
    } else {
      for (const msg of msgs) onMessage({ ...msg, room: m.room }, 'history');
    }
    state.more = !!m.more && msgs.length > 0;
    // Keep the view where it was while older messages appear above it.
    el.list.scrollTop = top + (el.list.scrollHeight - before);
    el.historyState.textContent = state.more ? '' : (state.byId.size ? 'Beginning of #' + state.room : '');
    updateOlderButton();
  }

  function onError(m) {
    const code = m.code || 'error';
    const text = m.message || code;
    if (m.ref != null) {
      const o = state.outbox.find((x) => String(x.ref) === String(m.ref));
      if (o) {
        state.outbox.splice(state.outbox.indexOf(o), 1);
        o.el.classList.remove('pending');
        o.el.classList.add('failed');
        setMsgState(o.el, (code === 'rate_limited' ? 'not sent — slow down' : `not sent — ${code.replace(/_/g, ' ')}`) + ' · click to retry');
        o.el.title = 'Click to send again';
        o.el.addEventListener('click', () => retry(o), { once: true });
      }
    }
    switch (code) {
      case 'name_taken':
      case 'bad_name': {
        const asked = state.wanted?.name ?? '';
        let after;
        if (state.helloPending) {
          // The name we asked for after a reconnect is not to be had: stay
          // with the name we were given and join.
          state.helloPending = false;
          after = ` You are ${state.myName} for now — click your name to change it.`;
          if (state.room && !state.joined && !state.joinSent) sendJoin();
        } else if (state.myName) {
          // A rename on a live connection was refused: keep the name we have.
          after = ` You are still ${state.myName}.`;
          if (state.wanted) state.wanted.name = state.myName;
        } else {
          after = ' You join as a guest — click your name to change it.';
        }
        notice(code === 'name_taken'
          ? `The name “${asked}” is taken.${after}`
          : `The name “${asked}” is not allowed (${text}).${after}`);
        el.joinError.textContent = code === 'name_taken' ? 'That name is taken — pick another.' : 'That name is not allowed.';
        el.joinError.dataset.code = code;
        return;
      }
      case 'bad_room':
        el.joinError.textContent = 'Room names are 1–64 letters, digits, “-”, “_” or “.”.';
        notice(`Bad room name: ${text}`);
        return;
      case 'not_member':
        // We lost membership (e.g. the server restarted between frames): rejoin.
        if (state.room && state.joined) { state.joined = false; sendJoin(); }
        notice(text, 'info', 4000);
        return;
      case 'no_such_user':
        notice(`${text} — they may have left.`);
        return;
      default:
        notice(`${code.replace(/_/g, ' ')}: ${text}`);
    }
  }

  // ------------------------------------------------------------- rendering
  function renderMessage(m) {
    const mine = isMe(m.from);
    const node = document.createElement('div');
    node.className = 'msg' + (mine ? ' mine' : '');
    node.setAttribute('data-testid', 'message');
    node.dataset.id = String(m.id);
    node.dataset.kind = 'room';
    node.dataset.from = m.from;
    node.dataset.ts = String(m.ts ?? '');
    node.appendChild(renderMeta(m.from, m.ts));
    const text = document.createElement('div');
    text.className = 'msg-text';
    text.setAttribute('data-testid', 'message-text');
    text.textContent = m.text;
    node.appendChild(text);
    return node;
  }

  function renderMeta(from, ts, badge) {
    const meta = document.createElement('div');
    meta.className = 'msg-meta';
    if (badge) {
      const b = document.createElement('span');
      b.className = 'dm-badge';
      b.textContent = badge;
      meta.appendChild(b);
    }
    const who = document.createElement('span');
    who.className = 'msg-from';
    who.setAttribute('data-testid', 'message-from');
    who.textContent = from;
    who.style.color = `hsl(${hueOf(from)} 55% 45%)`;
    meta.appendChild(who);
    const time = document.createElement('time');
    time.className = 'msg-time';
    if (ts) {
      time.textContent = fmtTime(ts);
      time.dateTime = new Date(ts).toISOString();
      time.title = new Date(ts).toLocaleString();
    }
    meta.appendChild(time);
    const st = document.createElement('span');
    st.className = 'msg-state';
    meta.appendChild(st);
    return meta;
  }

  function setMsgState(node, text) {
    const st = node.querySelector('.msg-state');
    if (st) st.textContent = text;
  }

  function renderDm({ from, to, text, ts, out }) {
    const node = document.createElement('div');
    node.className = 'msg dm' + (out ? ' mine' : '');
    node.setAttribute('data-testid', 'message');
    node.dataset.kind = 'dm';
    node.dataset.from = from;
    node.dataset.to = to;
    const meta = renderMeta(out ? `to ${to}` : from, ts, 'private');
    if (out) meta.querySelector('.msg-from').style.display = 'inline';
    node.appendChild(meta);
    const t = document.createElement('div');
    t.className = 'msg-text';
    t.setAttribute('data-testid', 'message-text');
    t.textContent = text;
    node.appendChild(t);
    if (!out) {
      node.title = `Click to reply to ${from} privately`;
      node.addEventListener('click', () => {
        if (getSelection()?.toString()) return;
        setDm(from);
        el.input.focus();
      });
    }
    return node;
  }

  // Room messages are kept in id order; DMs and pending messages (no id
  // yet) stay where they were appended.
  function insertById(node, id) {
    state.byId.set(id, node);
    // Fast path: newer than everything shown.
    let after = null;
    for (let n = el.list.lastElementChild; n; n = n.previousElementSibling) {
      if (n === el.historyTop || n === el.empty) break;
      if (n.dataset.id == null || n.classList.contains('pending')) continue;
      const nid = Number(n.dataset.id);
      if (nid < id) { after = n; break; }
    }
    if (after) {
      // Put it right after the previous id, but after any DMs that followed
      // it (they arrived later than that message).
      // Pending placeholders stay below it.
      let ref = after.nextElementSibling;
      while (ref && ref.dataset.id == null && !ref.classList.contains('pending')) ref = ref.nextElementSibling;
      el.list.insertBefore(node, ref);
    } else {
      // Older than everything: first after the history header.
      let ref = el.historyTop.nextElementSibling;
      if (ref === el.empty) ref = ref.nextElementSibling;
      el.list.insertBefore(node, ref);
    }
    fixupNeighbours(node);
  }

  // Consecutive messages from the same sender within 5 minutes are grouped.
  function fixupNeighbours(node) {
    const apply = (n) => {
      if (!n || !n.classList.contains('msg')) return;
      const p = n.previousElementSibling;
      const cont = p && p.classList.contains('msg') && p.dataset.kind === n.dataset.kind &&
        p.dataset.from === n.dataset.from && p.dataset.to === n.dataset.to &&
        Math.abs(Number(n.dataset.ts || 0) - Number(p.dataset.ts || 0)) < 300000;
      n.classList.toggle('cont', !!cont);
    };
    apply(node);
    apply(node.nextElementSibling);
  }

  function updateEmpty() {
    const any = el.list.querySelector('.msg');
    el.empty.hidden = !!any || !state.joined;
  }

  function updateOlderButton() {
    el.loadOlder.hidden = !(state.more && state.byId.size > 0 && state.minId > 1);
  }

  function addMember(name) {
    if (name == null || findMember(name)) return;
    const li = document.createElement('li');
    li.className = 'member' + (isMe(name) ? ' is-me' : '');
    li.setAttribute('data-testid', 'member');
    li.dataset.name = name;
    const b = document.createElement('button');
    b.type = 'button';
    b.title = isMe(name) ? 'You' : `Send ${name} a direct message`;
    const av = document.createElement('span');
    av.className = 'avatar';
    av.textContent = initials(name);
    av.style.background = `hsl(${hueOf(name)} 55% 50%)`;
    const nm = document.createElement('span');
    nm.className = 'member-name';
    nm.textContent = name;
    b.append(av, nm);
    if (isMe(name)) {
      const you = document.createElement('span');
      you.className = 'member-you';
      you.textContent = '(you)';
      b.appendChild(you);
    }
    b.addEventListener('click', () => {
      if (isMe(li.dataset.name)) return;
      setDm(li.dataset.name);
      closeSidebar();
      el.input.focus();
    });
    li.appendChild(b);
    state.members.set(name, li);
    // Keep the list sorted: you first, then by name.
    const key = (n) => (isMe(n) ? '0' : '1') + n.toLowerCase();
    let ref = null;
    for (const other of el.memberList.children) {
      if (key(other.dataset.name) > key(name)) { ref = other; break; }
    }
    el.memberList.insertBefore(li, ref);
    if (state.dmTo && sameName(state.dmTo, name)) li.classList.add('selected');
  }
  function findMember(name) {
    for (const [n, li] of state.members) if (sameName(n, name)) return [n, li];
    return null;
  }
  function removeMember(name) {
    const f = findMember(name);
    if (!f) return;
    state.members.delete(f[0]);
    f[1].remove();
  }
  function renderMembers() {
    const names = Array.from(state.members.keys());
    state.members.clear();
    el.memberList.replaceChildren();
    for (const n of names) addMember(n);
  }
  function renderCount() {
    const n = state.memberCount || state.members.size;
    el.memberCount.textContent = String(n);
    el.membersToggleCount.textContent = String(n);
    el.membersToggle.title = `${n} member${n === 1 ? '' : 's'}`;
  }

  function removeTyper(name) {
    for (const [n, t] of state.typers) {
      if (sameName(n, name)) { clearTimeout(t); state.typers.delete(n); renderTyping(); }
    }
  }
  function clearTypers() {
    for (const t of state.typers.values()) clearTimeout(t);
    state.typers.clear();
    renderTyping();
  }
  function renderTyping() {
    const names = Array.from(state.typers.keys());
    let s = '';
    if (names.length === 1) s = `${names[0]} is typing…`;
    else if (names.length === 2) s = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) s = 'Several people are typing…';
    el.typing.textContent = s;
  }

  // ---------------------------------------------------------------- sending
  function nextRef() { return `c${Date.now().toString(36)}${(++state.refSeq).toString(36)}`; }

  function submitMessage() {
    const text = el.input.value;
    if (!text.trim()) return;
    if (!state.room) return;
    if (utf8Len(text) > MAX_TEXT_BYTES) {
      notice(`That message is too long (at most ${MAX_TEXT_BYTES} bytes).`);
      return;
    }
    const o = { ref: nextRef(), text, sentOn: 0 };
    if (state.dmTo) {
      o.kind = 'dm';
      o.to = state.dmTo;
      o.el = renderDm({ from: state.myName, to: o.to, text, ts: Date.now(), out: true });
    } else {
      o.kind = 'room';
      o.room = state.room;
      o.el = renderMessage({ id: 0, from: state.myName ?? state.wanted?.name ?? 'me', text, ts: Date.now() });
      delete o.el.dataset.id;
      o.el.classList.add('mine');
    }
    o.el.classList.add('pending');
    o.el.dataset.ref = o.ref;
    setMsgState(o.el, 'sending…');
    el.list.appendChild(o.el);
    fixupNeighbours(o.el);
    updateEmpty();
    scrollToBottom();
    state.outbox.push(o);
    el.input.value = '';
    autosize();
    if (state.joined && state.replayDone) transmit(o);
  }

  function retry(o) {
    o.ref = nextRef();
    o.sentOn = 0;
    o.el.classList.remove('failed');
    o.el.classList.add('pending');
    o.el.title = '';
    o.el.dataset.ref = o.ref;
    setMsgState(o.el, 'sending…');
    state.outbox.push(o);
    if (state.joined && state.replayDone) transmit(o);
  }

  function transmit(o) {
    const msg = o.kind === 'dm'
      ? { type: 'dm', to: o.to, text: o.text, ref: o.ref }
      : { type: 'send', room: o.room, text: o.text, ref: o.ref };
    if (send(msg)) o.sentOn = state.connSeq;
  }

  // After a (re)join and its replay: send what is still waiting. Messages
  // sent on an earlier connection and not acknowledged were not in the
  // replay (else they were adopted in onMessage), so they were not stored.
  function flushOutbox() {
    if (!state.joined) return;
    for (const o of state.outbox.slice()) {
      if (o.sentOn === state.connSeq) continue;
      if (o.kind === 'room' && o.room !== state.room) continue;
      transmit(o);
    }
  }

  function onInputTyping() {
    autosize();
    if (!state.joined || state.dmTo || !el.input.value) return;
    const now = Date.now();
    if (now - state.lastTypingSent >= TYPING_SEND_EVERY) {
      state.lastTypingSent = now;
      send({ type: 'typing', room: state.room });
    }
  }

  function autosize() {
    el.input.style.height = 'auto';
    el.input.style.height = Math.min(el.input.scrollHeight, 160) + 'px';
  }

  function setDm(name) {
    state.dmTo = name || null;
    for (const li of el.memberList.children) li.classList.toggle('selected', !!name && sameName(li.dataset.name, name));
    el.dmTarget.hidden = !name;
    el.composer.classList.toggle('dm-mode', !!name);
    el.dmTargetName.textContent = name || '';
    el.input.placeholder = name ? `Message ${name} privately` : `Message #${state.room ?? ''}`;
  }

  function requestOlder() {
    if (!state.joined || state.historyPending || !state.more || state.minId == null) return;
    if (state.minId <= 1) { state.more = false; updateOlderButton(); return; }
    state.historyPending = true;
    el.historyState.textContent = 'Loading…';
    send({ type: 'history', room: state.room, before: state.minId, limit: HISTORY_PAGE });
  }

  // ------------------------------------------------------------ join / UI
  function enterRoom(name, room) {
    const prevRoom = state.room;
    state.wanted = { name, room };
    if (name) setItem('localStorage', STORE_NAME, name);
    if (location.hash.slice(1) !== room) {
      history.replaceState(null, '', '#' + room);
    }
    el.roomName.textContent = room;
    unread = 0;
    el.app.dataset.view = 'chat';
    el.app.dataset.joining = '0';
    el.joinCancel.hidden = false;
    if (prevRoom !== room) {
      if (prevRoom && state.joined) send({ type: 'leave', room: prevRoom });
      state.room = room;
      state.joined = false;
      state.joinSent = false;
      state.epoch = null;
      state.members.clear();
      el.memberList.replaceChildren();
      state.memberCount = 0;
      renderCount();
      clearTypers();
      // Drop messages of the previous room (outbox entries too).
      for (const o of state.outbox) o.el.remove();
      state.outbox = [];
      clearMessages();
      for (const n of Array.from(el.list.querySelectorAll('.msg'))) n.remove();
      updateEmpty();
    }
    setTitle();
    setDm(null);
    if (!state.ws) {
      state.attempt = 0;
      connect();
      return;
    }
    if (name && !sameName(name, state.myName)) send({ type: 'hello', name });
    if (!state.joined && !state.joinSent && state.myName) sendJoin();
    el.input.focus();
  }

  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = el.nameInput.value.trim();
    const room = el.roomInput.value.trim().replace(/^#/, '') || 'general';
    el.joinError.textContent = '';
    delete el.joinError.dataset.code;
    if (!ROOM_RE.test(room)) {
      el.joinError.textContent = 'Room names are 1–64 letters, digits, “-”, “_” or “.”.';
      el.roomInput.focus();
      return;
    }
    if (Array.from(name).length > 32) {
      el.joinError.textContent = 'Names are at most 32 characters.';
      return;
    }
    if (/^guest-/i.test(name) && !sameName(name, state.myName)) {
      el.joinError.textContent = 'Names starting with “guest-” are reserved.';
      return;
    }
    enterRoom(name, room);
  });
  el.joinCancel.addEventListener('click', () => { el.app.dataset.joining = '0'; el.input.focus(); });
  el.me.addEventListener('click', () => {
    el.nameInput.value = state.myName && !state.myName.startsWith('guest-') ? state.myName : (state.wanted?.name ?? '');
    el.roomInput.value = state.room ?? '';
    el.joinButton.textContent = 'Save';
    el.app.dataset.joining = '1';
    el.nameInput.focus();
  });

  el.composer.addEventListener('submit', (e) => { e.preventDefault(); submitMessage(); el.input.focus(); });
  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submitMessage();
    } else if (e.key === 'Escape' && state.dmTo) {
      setDm(null);
    }
  });
  el.input.addEventListener('input', onInputTyping);
  el.dmCancel.addEventListener('click', () => { setDm(null); el.input.focus(); });
  el.noticeClose.addEventListener('click', () => { el.notice.hidden = true; });
  el.loadOlder.addEventListener('click', requestOlder);
  el.list.addEventListener('scroll', () => {
    if (el.list.scrollTop < 40) requestOlder();
    if (nearBottom()) el.jump.hidden = true;
  }, { passive: true });
  el.jump.addEventListener('click', scrollToBottom);

  function openSidebar() { el.app.classList.add('sidebar-open'); el.membersToggle.setAttribute('aria-expanded', 'true'); }
  function closeSidebar() { el.app.classList.remove('sidebar-open'); el.membersToggle.setAttribute('aria-expanded', 'false'); }
  el.membersToggle.addEventListener('click', () => {
    if (el.app.classList.contains('sidebar-open')) closeSidebar(); else openSidebar();
  });
  el.scrim.addEventListener('click', closeSidebar);

  window.addEventListener('hashchange', () => {
    const room = decodeURIComponent(location.hash.slice(1));
    if (!room || room === state.room || !ROOM_RE.test(room)) return;
    el.roomInput.value = room;
    if (state.wanted) enterRoom(state.wanted.name, room);
  });

  // -------------------------------------------------------------- transport
  function kb(n) { return n < 10240 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`; }
  function renderTransportStats() {
    const s = T.statsFor(state.transport);
    const p50 = T.percentile(s.latencies, 50);
    const p99 = T.percentile(s.latencies, 99);
    el.transportStats.textContent =
      `${s.requests} requests · ${s.empty} empty · sent ${kb(s.bytesOut)} · received ${kb(s.bytesIn)} · ` +
      `latency ${p50 == null ? '–' : `${p50} ms`} (p99 ${p99 == null ? '–' : `${p99} ms`}, ${s.messages} msgs)`;
    el.transportStats.dataset.requests = String(s.requests);
    el.transportStats.dataset.empty = String(s.empty);
    el.transportStats.dataset.bytesIn = String(s.bytesIn);
    el.transportStats.dataset.bytesOut = String(s.bytesOut);
    el.transportStats.dataset.messages = String(s.messages);
  }
  let statsFrame = 0;
  T.onChange(() => {
    if (statsFrame) return;
    statsFrame = requestAnimationFrame(() => { statsFrame = 0; renderTransportStats(); });
  });

  function setTransport(kind, interval) {
    if (!TRANSPORTS.includes(kind)) kind = 'websocket';
    const changed = kind !== state.transport || (kind === 'polling' && interval !== state.pollInterval);
    state.transport = kind;
    state.pollInterval = interval;
    el.transport.value = kind;
    el.pollInterval.value = String(interval);
    el.pollInterval.disabled = kind !== 'polling';
    const u = new URL(location.href);
    u.searchParams.set('transport', kind);
    if (kind === 'polling') u.searchParams.set('interval', String(interval));
    else u.searchParams.delete('interval');
    if (u.href !== location.href) history.replaceState(null, '', u.href);
    renderTransportStats();
    // Switch now: the new transport reclaims the session with its token.
    if (changed && state.ws) {
      dropSocket();
      stopHeartbeat();
      state.joined = false;
      state.joinSent = false;
      state.attempt = 0;
      connect();
    }
  }
  el.transport.addEventListener('change', () => setTransport(el.transport.value, state.pollInterval));
  el.pollInterval.addEventListener('change', () => {
    const n = Number(el.pollInterval.value);
    setTransport(state.transport, Number.isFinite(n) && n >= 0.1 && n <= 60 ? n : POLL_INTERVAL_DEFAULT);
  });

  // ---------------------------------------------------------------- startup
  (function init() {
    const params = new URLSearchParams(location.search);
    const asked = { ws: 'websocket', websocket: 'websocket', longpoll: 'longpoll', 'long-polling': 'longpoll',
      poll: 'polling', polling: 'polling' }[params.get('transport') || 'websocket'] || 'websocket';
    const iv = Number(params.get('interval'));
    setTransport(asked, Number.isFinite(iv) && iv >= 0.1 && iv <= 60 ? iv : POLL_INTERVAL_DEFAULT);
    const hashRoom = decodeURIComponent(location.hash.slice(1));
    const room = ROOM_RE.test(hashRoom) ? hashRoom : '';
    const sessionName = getItem('sessionStorage', STORE_NAME);
    const savedName = getItem('localStorage', STORE_NAME);
    el.nameInput.value = sessionName && !sessionName.startsWith('guest-') ? sessionName : (savedName ?? '');
    el.roomInput.value = room || 'general';
    setStatus('offline');
    // A reload (session token in this tab) or a shared link with a known
    // name joins at once; otherwise the form asks.
    if (room && state.session) {
      enterRoom(el.nameInput.value, room);
    } else {
      (el.nameInput.value ? el.joinButton : el.nameInput).focus();
    }
    // Started: the forms are ours now (a submit before this would be the
    // browser's own, which the page's CSP refuses). Tests wait for it.
    document.documentElement.dataset.app = 'ready';
  })();
})();
