// www/chat.js: the behaviour of the wsd browser chat page: one WebSocket to /chat?room=...
// on the host the page came from, the page's own JSON message format on top of the server's
// relay, the connection state and reconnection with backoff. It must never put received text
// into the page as markup (only textContent/attributes), never crash on a message it cannot
// parse, and never talk to any origin but its own.
'use strict';

(() => {
  const NAME_KEY = 'wsd-chat:name';
  const MAX_NAME = 32;
  const MAX_TEXT = 2000;
  const MAX_ROOM = 64;
  const MAX_FRAME = 64 * 1024; // bigger incoming messages are ignored unread
  const MAX_LINES = 500; // oldest timeline lines are dropped past this
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const HELLO_FALLBACK_MS = 400; // no welcome by then: announcements are off, say hello anyway
  const GREET_MAX_MEMBERS = 50; // above this, do not answer every join with our own hello
  const GROUP_MS = 2 * 60 * 1000; // consecutive messages of one sender within this are grouped

  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $('chat-app'),
    status: $('chat-status'),
    statusText: $('chat-status-text'),
    retry: $('chat-retry'),
    roomForm: $('chat-room-form'),
    room: $('chat-room'),
    messages: $('chat-messages'),
    empty: $('chat-empty'),
    members: $('chat-members'),
    memberCount: $('chat-member-count'),
    me: $('chat-me'),
    name: $('chat-name'),
    form: $('chat-form'),
    input: $('chat-input'),
    send: $('chat-send'),
  };

  // ---- small pure helpers -------------------------------------------------------------

  // Collapses whitespace, drops control characters and caps the length.
  function clean(value, max) {
    if (typeof value !== 'string') return '';
    return value
      .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, max);
  }

  function validId(v) {
    return Number.isSafeInteger(v) && v >= 0;
  }

  function hue(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function initial(text) {
    const first = Array.from(text.trim())[0];
    return first ? first.toUpperCase() : '?';
  }

  function timeOf(ts) {
    const now = Date.now();
    // A sender's clock is trusted only within a day of ours.
    const t = Number.isFinite(ts) && Math.abs(ts - now) < 864e5 ? ts : now;
    return new Date(t);
  }

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function storageGet(key) {
    try {
      return localStorage.getItem(key);
    } catch (_) {
      return null; // storage disabled: the name is simply not remembered
    }
  }

  function storageSet(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch (_) {
      /* storage disabled or full: keep the name for this page only */
    }
  }

  function randomId() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // ---- state ---------------------------------------------------------------------------

  const params = new URLSearchParams(location.search);
  const room = clean(params.get('room') || '', MAX_ROOM) || 'lobby';
  // Identifies this page's own messages and hellos even when the server sends no ids.
  const clientId = randomId();

  let name = clean(storageGet(NAME_KEY) || '', MAX_NAME);
  if (!name) {
    name = 'guest-' + String(Math.floor(1000 + Math.random() * 9000));
    storageSet(NAME_KEY, name);
  }

  let sock = null;
  let connSeq = 0; // server ids are only unique within one connection's lifetime
  let state = 'connecting';
  let myId = null; // from the server's welcome, null when announcements are off
  let memberCount = null; // the server's count, when it sends one
  let members = new Map(); // id -> name (or '' while unknown)
  let attempt = 0; // failed connection attempts since the last successful one
  let dropped = false; // we were connected and lost it: say so once when back
  let retryAt = 0;
  let retryTimer = null;
  let tickTimer = null;
  let helloTimer = null;
  let leaving = false;
  let unread = 0;

  // ---- rendering -----------------------------------------------------------------------

  function setState(next, detail) {
    state = next;
    ui.status.dataset.state = next;
    ui.app.dataset.state = next;
    let text;
    switch (next) {
      case 'connecting':
        text = attempt > 0 ? 'Reconnecting…' : 'Connecting…';
        break;
      case 'connected':
        text = 'Connected';
        break;
      case 'reconnecting':
        text = 'Reconnecting in ' + detail + 's';
        ui.status.dataset.retryIn = String(detail);
        break;
      default:
        text = 'Offline';
    }
    if (next !== 'reconnecting') delete ui.status.dataset.retryIn;
    ui.statusText.textContent = text;
    ui.retry.hidden = !(next === 'reconnecting' || next === 'offline');
    updateSendable();
  }

  function updateSendable() {
    const connected = state === 'connected';
    ui.send.disabled = !connected || ui.input.value.trim() === '';
    ui.input.placeholder = connected
      ? 'Message #' + room + '… (Enter to send)'
      : 'Not connected: messages can be sent once the connection is back';
  }

  function updateTitle() {
    document.title = (unread > 0 ? '(' + unread + ') ' : '') + '#' + room + ' · wsd chat';
  }

  function nearBottom() {
    const box = ui.messages.parentElement;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function append(li, forceScroll) {
    const stick = forceScroll || nearBottom();
    ui.messages.appendChild(li);
    while (ui.messages.children.length > MAX_LINES) ui.messages.firstElementChild.remove();
    ui.empty.hidden = true;
    if (stick) {
      const box = ui.messages.parentElement;
      box.scrollTop = box.scrollHeight;
    }
  }

  function whoLabel(id) {
    const known = members.get(id);
    return known ? known : '#' + id;
  }

  // A span that shows a member's current name; updated when a hello tells us more.
  function liveWho(id) {
    const span = node('span', 'who', whoLabel(id));
    span.dataset.liveId = connSeq + ':' + id;
    if (id === myId) span.classList.add('is-me');
    return span;
  }

  function refreshLive(id) {
    const key = connSeq + ':' + id;
    for (const span of ui.messages.querySelectorAll('[data-live-id="' + key + '"]')) {
      span.textContent = whoLabel(id);
    }
  }

  function eventLine(kind, parts, id) {
    const li = node('li', 'line event ' + kind);
    li.dataset.kind = kind;
    if (id !== undefined && id !== null) li.dataset.memberId = String(id);
    li.dataset.conn = String(connSeq);
    const p = node('p', 'event-text');
    for (const part of parts) p.append(part);
    const time = node('time', '', '');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    li.append(p, time);
    append(li, false);
    return li;
  }

  function messageLine(msg) {
    const mine = msg.cid === clientId;
    const when = timeOf(msg.ts);
    const last = ui.messages.lastElementChild;
    const grouped =
      last &&
      last.dataset.kind === 'message' &&
      last.dataset.sender === msg.sender &&
      when.getTime() - Number(last.dataset.ts) < GROUP_MS;

    const li = node('li', 'line msg' + (mine ? ' mine' : '') + (grouped ? ' cont' : ''));
    li.dataset.kind = 'message';
    li.dataset.name = msg.name;
    li.dataset.sender = msg.sender;
    li.dataset.ts = String(when.getTime());
    if (validId(msg.id)) li.dataset.memberId = String(msg.id);

    const avatar = node('div', 'avatar', initial(msg.name));
    avatar.style.setProperty('--hue', String(hue(msg.name)));
    avatar.setAttribute('aria-hidden', 'true');

    const bubble = node('div', 'bubble');
    const meta = node('div', 'meta');
    const who = node('span', 'who', msg.name);
    const time = node('time', '', when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    meta.append(who, time);
    const text = node('p', 'text', msg.text);
    text.dataset.role = 'text';
    bubble.append(meta, text);
    li.append(avatar, bubble);
    append(li, mine);

    if (document.hidden && !mine) {
      unread++;
      updateTitle();
    }
  }

  function renderMembers() {
    ui.members.textContent = '';
    const ids = Array.from(members.keys()).sort((a, b) => {
      if (a === myId) return -1;
      if (b === myId) return 1;
      return a - b;
    });
    for (const id of ids) {
      const label = whoLabel(id);
      const li = node('li', 'member' + (id === myId ? ' me' : ''));
      li.dataset.memberId = String(id);
      const avatar = node('span', 'avatar small', initial(members.get(id) || '#'));
      avatar.style.setProperty('--hue', String(hue(label)));
      avatar.setAttribute('aria-hidden', 'true');
      const text = node('span', 'member-name', label);
      li.append(avatar, text);
      if (id === myId) li.append(node('span', 'you', 'you'));
      ui.members.append(li);
    }
    const count = memberCount !== null ? memberCount : members.size || null;
    ui.memberCount.textContent = count === null ? '–' : String(count);
    ui.memberCount.dataset.count = count === null ? '' : String(count);
    // Members whose hello we have not seen (announcements off, or they never said it).
    const unknown = count !== null ? count - members.size : 0;
    if (unknown > 0) {
      ui.members.append(
        node('li', 'member unknown', unknown + (unknown === 1 ? ' other' : ' others')),
      );
    }
  }

  function renderMe() {
    ui.me.textContent = name + (myId !== null ? ' (#' + myId + ')' : '');
    ui.app.dataset.name = name;
    if (myId !== null) ui.app.dataset.myId = String(myId);
    else delete ui.app.dataset.myId;
  }

  // ---- protocol ------------------------------------------------------------------------

  function sendJson(obj) {
    if (!sock || sock.readyState !== WebSocket.OPEN) return false;
    sock.send(JSON.stringify(obj));
    return true;
  }

  function sendHello() {
    clearTimeout(helloTimer);
    helloTimer = null;
    const hello = { type: 'hello', name, cid: clientId };
    if (myId !== null) hello.id = myId;
    sendJson(hello);
  }

  function onWelcome(m) {
    if (!validId(m.id)) return;
    myId = m.id;
    // A server may announce our own join before welcoming us: that line was about us.
    const early = '[data-kind="join"][data-conn="' + connSeq + '"][data-member-id="' + myId + '"]';
    for (const li of ui.messages.querySelectorAll(early)) li.remove();
    memberCount = validId(m.members) ? m.members : null;
    members = new Map([[myId, name]]);
    renderMe();
    renderMembers();
    sendHello();
    const parts = dropped ? ['Reconnected to '] : ['You joined '];
    parts.push(node('strong', '', '#' + room), ' as ', liveWho(myId));
    eventLine('welcome', parts, myId);
    dropped = false;
  }

  function onJoin(m) {
    if (!validId(m.id)) return;
    if (validId(m.members)) memberCount = m.members;
    if (m.id === myId) {
      renderMembers();
      return; // our own arrival was already shown with the welcome
    }
    if (!members.has(m.id)) members.set(m.id, '');
    renderMembers();
    eventLine('join', [liveWho(m.id), ' joined'], m.id);
    // Tell the newcomer who we are; it cannot otherwise learn the names already here.
    if (myId !== null && (memberCount === null || memberCount <= GREET_MAX_MEMBERS)) {
      setTimeout(sendHello, 50 + Math.random() * 250);
    }
  }

  function onLeave(m) {
    if (!validId(m.id)) return;
    if (validId(m.members)) memberCount = m.members;
    if (m.id === myId) return;
    eventLine('leave', [liveWho(m.id), ' left'], m.id);
    members.delete(m.id);
    renderMembers();
  }

  function onHello(m) {
    const who = clean(m.name, MAX_NAME);
    if (!who || m.cid === clientId) return; // our own hello coming back
    if (!validId(m.id) || m.id === myId) return; // cannot tell who it is: nothing to learn
    const before = members.get(m.id);
    members.set(m.id, who);
    if (before && before !== who) {
      eventLine('rename', [before + ' is now known as ', liveWho(m.id)], m.id);
    }
    refreshLive(m.id);
    renderMembers();
  }

  function onChat(m) {
    if (typeof m.text !== 'string') return;
    const text = m.text.slice(0, MAX_TEXT);
    if (text.trim() === '') return;
    const who = clean(m.name, MAX_NAME) || (validId(m.id) ? '#' + m.id : 'anonymous');
    const cid = typeof m.cid === 'string' ? m.cid.slice(0, 64) : '';
    messageLine({
      name: who,
      text,
      ts: m.ts,
      id: m.id,
      cid,
      sender: cid || who,
    });
  }

  function onData(data) {
    if (typeof data !== 'string' || data.length > MAX_FRAME) return; // binary or huge: not ours
    let m;
    try {
      m = JSON.parse(data);
    } catch (_) {
      return; // someone else's format: ignore
    }
    if (!m || typeof m !== 'object' || Array.isArray(m) || typeof m.type !== 'string') return;
    switch (m.type) {
      case 'welcome':
        return onWelcome(m);
      case 'join':
        return onJoin(m);
      case 'leave':
        return onLeave(m);
      case 'hello':
        return onHello(m);
      case 'message':
        return onChat(m);
      default:
        return; // a type a newer page may know: ignore
    }
  }

  // ---- connection ----------------------------------------------------------------------

  function chatUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/chat?room=' + encodeURIComponent(room);
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(tickTimer);
    clearTimeout(helloTimer);
    retryTimer = tickTimer = helloTimer = null;
  }

  function connect() {
    clearTimers();
    if (leaving) return;
    if (navigator.onLine === false) {
      setState('offline');
      return;
    }
    setState('connecting');
    connSeq++;
    let ws;
    try {
      ws = new WebSocket(chatUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    sock = ws;
    ws.addEventListener('open', () => {
      if (sock !== ws) return;
      attempt = 0;
      setState('connected');
      // The server's welcome (if announcements are on) gives us an id to put in the hello.
      helloTimer = setTimeout(sendHello, HELLO_FALLBACK_MS);
    });
    ws.addEventListener('message', (ev) => {
      if (sock !== ws) return;
      try {
        onData(ev.data);
      } catch (err) {
        console.error('wsd chat: could not handle a message', err);
      }
    });
    ws.addEventListener('close', () => {
      if (sock !== ws) return;
      sock = null;
      onDrop();
    });
    // An error is always followed by a close; the close handler does the work.
  }

  function onDrop() {
    if (leaving) return;
    if (state === 'connected') {
      dropped = true;
      eventLine('system', ['Connection lost']);
    }
    myId = null;
    memberCount = null;
    members = new Map();
    renderMe();
    renderMembers();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimers();
    if (navigator.onLine === false) {
      setState('offline');
      return;
    }
    // Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at 30 s.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 10));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    attempt++;
    retryAt = Date.now() + delay;
    const tick = () => {
      const left = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
      setState('reconnecting', left);
    };
    tick();
    tickTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  // ---- user input ----------------------------------------------------------------------

  function commitName() {
    const next = clean(ui.name.value, MAX_NAME);
    ui.name.value = next || name;
    if (!next || next === name) return;
    name = next;
    storageSet(NAME_KEY, name);
    if (myId !== null) {
      members.set(myId, name);
      refreshLive(myId);
      renderMembers();
    }
    renderMe();
    sendHello();
  }

  ui.name.value = name;
  ui.name.addEventListener('change', commitName);
  ui.name.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.isComposing) {
      ev.preventDefault();
      commitName();
      ui.input.focus();
    }
  });

  ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = ui.input.value.slice(0, MAX_TEXT);
    if (text.trim() === '' || state !== 'connected') return;
    commitName();
    const ok = sendJson({
      type: 'message',
      name,
      text,
      ts: Date.now(),
      id: myId === null ? undefined : myId,
      cid: clientId,
    });
    if (ok) {
      ui.input.value = '';
      updateSendable();
    }
    ui.input.focus();
  });
  ui.input.addEventListener('input', updateSendable);

  ui.room.value = room;
  const fitRoom = () => {
    ui.room.style.width = Math.min(Math.max(ui.room.value.length + 1, 6), 28) + 'ch';
  };
  fitRoom();
  ui.room.addEventListener('input', fitRoom);
  ui.roomForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = clean(ui.room.value, MAX_ROOM).replace(/^#+/, '');
    if (!next || next === room) {
      ui.room.value = room;
  const fitRoom = () => {
    ui.room.style.width = Math.min(Math.max(ui.room.value.length + 1, 6), 28) + 'ch';
  };
  fitRoom();
  ui.room.addEventListener('input', fitRoom);
      return;
    }
    const url = new URL(location.href);
    url.searchParams.set('room', next);
    location.assign(url.toString());
  });

  ui.retry.addEventListener('click', () => {
    attempt = 0;
    connect();
  });

  window.addEventListener('offline', () => {
    if (state !== 'connected') {
      clearTimers();
      setState('offline');
    }
  });
  window.addEventListener('online', () => {
    if (state === 'offline' || state === 'reconnecting') {
      attempt = 0;
      connect();
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && unread) {
      unread = 0;
      updateTitle();
    }
  });
  window.addEventListener('pagehide', () => {
    leaving = true;
    clearTimers();
    if (sock) sock.close(1000, 'page closed');
  });
  window.addEventListener('pageshow', (ev) => {
    // Back from the back/forward cache: the old socket is gone, start again.
    if (ev.persisted) {
      leaving = false;
      attempt = 0;
      connect();
    }
  });

  updateTitle();
  renderMe();
  renderMembers();
  connect();
})();
