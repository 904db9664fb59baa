// relaychat dev page: one WebSocket speaking the protocol of docs/protocol.md. No framework: the
// state lives in plain maps below and the two lists are re-rendered from it on every change.
'use strict';

const USER_ID = /^[A-Za-z0-9._@:=+-]{1,64}$/;
const RANK = { SENT: 0, DELIVERED: 1, READ: 2 };
const STATUS_NAMES = ['SENT', 'DELIVERED', 'READ'];
const TYPING_EVERY_MS = 2000; // at most one typing:true per 2 s (the server limits the rate)
const TYPING_IDLE_MS = 3000; // typing:false after 3 s without a keystroke
const TYPING_SHOW_MS = 5000; // someone else's indicator expires unless refreshed

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; // textContent only: user text is never HTML
  return e;
};

const state = {
  me: null, // { user, name }
  wsUrl: null,
  ws: null,
  wantOpen: false, // false after logout, so a close is not "unexpected"
  retries: 0,
  conversations: new Map(), // conversationId → conversation (see conversation())
  current: null, // the open conversationId
  byId: new Map(), // messageId → message, for dedupe and receipts
  pending: new Map(), // clientMessageId → own message not yet acked
  early: new Map(), // messageId → status frames that arrived before their ack
  names: new Map(), // userId → display name seen on messages
  presence: new Map(), // userId → { status: 'online' | 'offline', lastSeen }
  typing: { sentAt: 0, conversationId: null, idle: null },
  editing: null, // the messageId of my own message the composer is editing
};

function conversation(id) {
  let c = state.conversations.get(id);
  if (!c) {
    c = { conversationId: id, title: null, members: [], unread: 0, lastMessage: null,
          messages: new Map(), loaded: false, nextBefore: null, readSent: null, typing: new Map() };
    state.conversations.set(id, c);
  }
  return c;
}

// ---- connection -----------------------------------------------------------------------------

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url.split('?')[0]}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

// A fresh token on every (re)connect, so an expired one never locks the page out.
async function connect() {
  if (!state.me || !state.wantOpen) return;
  try {
    if (!state.wsUrl) {
      state.wsUrl = (await getJson('config.json')).wsUrl;
    }
    const q = new URLSearchParams({ user: state.me.user, name: state.me.name });
    const { token } = await getJson(`dev/token?${q}`);
    if (!state.wantOpen) return;
    const ws = new WebSocket(`${state.wsUrl}?token=${encodeURIComponent(token)}`);
    state.ws = ws;
    ws.onopen = () => onOpen(ws);
    ws.onmessage = (ev) => onFrame(ev.data);
    ws.onclose = () => onClose(ws);
  } catch (e) {
    showError(`cannot connect: ${e.message}`);
    scheduleReconnect();
  }
}

function onOpen(ws) {
  if (ws !== state.ws) return;
  state.retries = 0;
  setConnected(true);
  hideError();
  send({ action: 'listConversations' });
  // Frames pushed while we were away are lost: reload the open conversation's latest page.
  for (const c of state.conversations.values()) c.loaded = false;
  if (state.current) loadHistory(state.current);
}

function onClose(ws) {
  if (ws !== state.ws) return;
  state.ws = null;
  setConnected(false);
  // Without an ack we cannot know whether the server took it: let the user retry.
  for (const m of state.pending.values()) if (m.status === 'sending') m.status = 'failed';
  renderMessages();
  scheduleReconnect();
}

function scheduleReconnect() {
  if (!state.wantOpen) return;
  // Exponential backoff with jitter, capped at 30 s, so a restarting server is not hammered.
  const delay = Math.min(30000, 500 * 2 ** state.retries) * (0.5 + Math.random() / 2);
  state.retries = Math.min(state.retries + 1, 10);
  setTimeout(() => { if (!state.ws) connect(); }, delay);
}

function send(frame) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

function setConnected(up) {
  const s = $('connection-state');
  s.textContent = up ? 'connected' : 'disconnected';
  s.dataset.state = s.textContent;
}

// ---- incoming frames ------------------------------------------------------------------------

function onFrame(data) {
  let f;
  try { f = JSON.parse(data); } catch { return; }
  switch (f.type) {
    case 'conversations': return onConversations(f.conversations || []);
    case 'conversation': return onConversationCreated(f);
    case 'history': return onHistory(f);
    case 'ack': return onAck(f);
    case 'message': return onMessage(f);
    case 'status': return onStatus(f);
    case 'typing': return onTyping(f);
    case 'presence': return onPresence(f);
    case 'messageEdited': // the frame to every member's devices, and the reply to our own edit
    case 'messageDeleted': return onChange(f);
    case 'error': return onError(f);
    default: return undefined; // deviceRegistered and future frames: nothing to show
  }
}

function onConversations(list) {
  for (const s of list) {
    const c = conversation(s.conversationId);
    Object.assign(c, { title: s.title, members: s.members || [], unread: s.unread || 0 });
    if (s.lastMessage) noteLast(c, s.lastMessage);
  }
  askPresence(list.flatMap((s) => s.members || []));
  renderConversations();
  renderHeader();
  maybeMarkRead(); // the server's count may predate our last markRead
}

// The reply to our own create (no `change`) opens it. One announced to us (created or changed,
// by someone else or by us on another device) updates the list; taken out of it, it goes.
function onConversationCreated(f) {
  if (f.change && !(f.members || []).includes(state.me.user)) {
    state.conversations.delete(f.conversationId);
    if (state.current === f.conversationId) state.current = null;
    renderConversations();
    renderHeader();
    renderMessages();
    return;
  }
  const c = conversation(f.conversationId);
  Object.assign(c, { title: f.title, members: f.members || [] });
  askPresence(c.members);
  if (f.change) {
    renderConversations();
    if (state.current === f.conversationId) renderHeader();
  } else {
    select(f.conversationId);
  }
}

// A `presence` frame (one user) or the reply to getPresence (`users`).
function onPresence(f) {
  for (const p of f.users || [f]) state.presence.set(p.userId, { status: p.status, lastSeen: p.lastSeen });
  renderConversations();
  renderHeader();
}

// Asks for the presence of these users (not ourselves), 100 at a time as the protocol allows.
function askPresence(users) {
  const others = [...new Set(users)].filter((u) => u !== state.me.user);
  for (let i = 0; i < others.length; i += 100) {
    send({ action: 'getPresence', users: others.slice(i, i + 100), requestId: 'presence' });
  }
}

const isOnline = (user) => state.presence.get(user)?.status === 'online';

function onHistory(f) {
  const c = conversation(f.conversationId);
  const oldest = [...c.messages.keys()].filter((k) => !k.startsWith('pending:')).sort()[0];
  for (const m of f.messages || []) addMessage(c, m);
  // A re-fetch of the latest page must not forget how far back "load older" already went.
  const msgs = f.messages || [];
  const reachesBack = !c.loaded || !oldest || msgs.length === 0 || msgs[msgs.length - 1].messageId < oldest;
  if (reachesBack) c.nextBefore = f.nextBefore || null;
  c.loaded = true;
  if (c.conversationId === state.current) { renderMessages(); maybeMarkRead(); }
}

function onAck(f) {
  const m = state.pending.get(f.clientMessageId);
  if (!m || state.byId.has(f.messageId)) return; // a repeated ack changes nothing
  state.pending.delete(f.clientMessageId);
  const c = conversation(m.conversationId);
  c.messages.delete(m.key);
  Object.assign(m, { key: f.messageId, messageId: f.messageId, sentAt: f.sentAt, status: 'SENT' });
  c.messages.set(m.key, m);
  state.byId.set(m.messageId, m);
  applyEarly(m);
  noteLast(c, m);
  renderMessages();
  renderConversations();
}

function onMessage(f) {
  if (state.byId.has(f.messageId)) return; // delivery is at-least-once
  const known = state.conversations.has(f.conversationId);
  const c = conversation(f.conversationId);
  if (!known) {
    // Someone added us to a conversation we have not listed yet: fetch its title and members.
    c.members = [f.senderId, state.me.user];
    requestList();
  }
  addMessage(c, f);
  noteLast(c, f);
  c.typing.delete(f.senderId); // they sent it, so they stopped typing
  const reading = f.conversationId === state.current && !document.hidden;
  if (f.senderId !== state.me.user && !reading) c.unread += 1;
  if (f.conversationId === state.current) { renderMessages(); renderTyping(); maybeMarkRead(); }
  renderConversations();
}

function onStatus(f) {
  // READ is "read up to and including": it covers every earlier message of mine there.
  if (f.upTo) {
    for (const m of state.byId.values()) {
      if (m.mine && m.conversationId === f.conversationId && m.messageId && m.messageId < f.messageId) {
        applyReceipt(m, f);
      }
    }
  }
  const m = state.byId.get(f.messageId);
  if (m) { applyReceipt(m, f); renderMessages(); return; }
  // A receipt can overtake its ack; keep a few until the ack comes.
  if (state.early.size > 200) state.early.delete(state.early.keys().next().value);
  state.early.set(f.messageId, [...(state.early.get(f.messageId) || []), f]);
}

// An edit or a deletion, from a frame, a reply, or a history page newer than what we have.
function onChange(f) {
  const m = state.byId.get(f.messageId);
  if (m) applyChange(m, f);
  const c = state.conversations.get(f.conversationId);
  if (c?.lastMessage?.messageId === f.messageId && c.lastMessage !== m) applyChange(c.lastMessage, f);
  if (f.conversationId === state.current) renderMessages();
  renderConversations();
}

// A deletion is final; of two edits the later one stands, whatever order they come in.
function applyChange(m, f) {
  if (m.deletedAt) return;
  if (f.deletedAt) {
    Object.assign(m, { deletedAt: f.deletedAt, content: '' });
  } else if (f.editedAt && (!m.editedAt || f.editedAt > m.editedAt)) {
    Object.assign(m, { editedAt: f.editedAt, content: f.content });
  }
}

function onTyping(f) {
  if (f.userId === state.me.user || !state.conversations.has(f.conversationId)) return;
  const c = conversation(f.conversationId);
  clearTimeout(c.typing.get(f.userId));
  if (f.isTyping) {
    c.typing.set(f.userId, setTimeout(() => { c.typing.delete(f.userId); renderTyping(); }, TYPING_SHOW_MS));
  } else {
    c.typing.delete(f.userId);
  }
  renderTyping();
}

function onError(f) {
  if (f.requestId === 'presence') return; // presence is a nicety: nobody visible is no error
  // Typing indicators are best effort: a rate-limited one is not worth a banner.
  if (f.code !== 'rate_limited' || f.clientMessageId) showError(`${f.code}: ${f.message}`);
  const m = f.clientMessageId && state.pending.get(f.clientMessageId);
  if (m) { m.status = 'failed'; renderMessages(); }
}

// ---- state changes --------------------------------------------------------------------------

function addMessage(c, f) {
  if (state.byId.has(f.messageId)) {
    const known = state.byId.get(f.messageId);
    applyChange(known, f);
    if (f.readBy != null) known.readBy = f.readBy; // a fresher history page counts more readers
    return;
  }
  const mine = f.senderId === state.me.user;
  // History gives our own messages the status every other member has reached (else SENT).
  const m = { key: f.messageId, messageId: f.messageId, conversationId: c.conversationId,
              senderId: f.senderId, senderName: f.senderName, content: f.content, sentAt: f.sentAt,
              editedAt: f.editedAt || null, deletedAt: f.deletedAt || null, readBy: f.readBy ?? null, mine, status: mine ? (f.status || 'SENT') : null, receipts: new Map() };
  c.messages.set(m.key, m);
  state.byId.set(m.messageId, m);
  if (f.senderName) state.names.set(f.senderId, f.senderName);
  if (mine) applyEarly(m);
}

function applyEarly(m) {
  for (const s of state.early.get(m.messageId) || []) applyReceipt(m, s);
  state.early.delete(m.messageId);
}

function noteLast(c, m) {
  if (!m.messageId) return;
  if (!c.lastMessage || m.messageId >= c.lastMessage.messageId) c.lastMessage = m;
  if (m.senderName) state.names.set(m.senderId, m.senderName);
}

// Receipts are per recipient. The message shows the furthest status every other member has
// reached (a group message is READ once all have read it), and never moves back.
function applyReceipt(m, f) {
  if (!(f.status in RANK)) return;
  m.receipts.set(f.userId, Math.max(m.receipts.get(f.userId) ?? 0, RANK[f.status]));
  const others = conversation(m.conversationId).members.filter((u) => u !== state.me.user);
  const ranks = others.length ? others.map((u) => m.receipts.get(u) ?? 0) : [...m.receipts.values()];
  const reached = others.length ? Math.min(...ranks) : Math.max(0, ...ranks);
  if (m.status in RANK && reached > RANK[m.status]) m.status = STATUS_NAMES[reached];
}

let listTimer = null;
function requestList() {
  clearTimeout(listTimer); // a burst of unknown messages asks once
  listTimer = setTimeout(() => send({ action: 'listConversations' }), 200);
}

function loadHistory(id, before) {
  send({ action: 'history', conversationId: id, limit: 50, ...(before ? { before } : {}) });
}

function select(id) {
  if (state.current !== id) { stopTyping(); if (state.editing) { stopEditing(); $('message-input').value = ''; } }
  state.current = id;
  const c = conversation(id);
  if (!c.loaded) loadHistory(id);
  $('message-input').disabled = false;
  $('send-button').disabled = false;
  renderConversations();
  renderHeader();
  renderMessages(true);
  renderTyping();
  maybeMarkRead();
  $('message-input').focus();
}

// Read receipts only for what a person can see: the open conversation in a visible tab.
function maybeMarkRead() {
  const c = state.current && state.conversations.get(state.current);
  if (!c || document.hidden) return;
  let newest = null;
  for (const m of c.messages.values()) {
    if (!m.mine && m.messageId && (!newest || m.messageId > newest)) newest = m.messageId;
  }
  if (newest && (!c.readSent || newest > c.readSent) && send({ action: 'markRead', conversationId: c.conversationId, messageId: newest })) {
    c.readSent = newest;
  }
  if (c.unread) { c.unread = 0; renderConversations(); }
}

function newClientMessageId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function sendMessage(content, retry) {
  const c = conversation(state.current);
  const m = retry || { conversationId: c.conversationId, senderId: state.me.user, senderName: state.me.name,
                       content, mine: true, receipts: new Map(), sentAt: new Date().toISOString() };
  m.clientMessageId = newClientMessageId();
  m.key = `pending:${m.clientMessageId}`;
  m.status = 'sending';
  c.messages.set(m.key, m);
  state.pending.set(m.clientMessageId, m);
  stopTyping();
  const ok = send({ action: 'sendMessage', conversationId: m.conversationId, content: m.content,
                    clientMessageId: m.clientMessageId });
  if (!ok) { m.status = 'failed'; showError('not connected: the message was not sent'); }
  renderMessages(true);
}

// The composer edits one of my messages: Enter saves it, Escape (or an empty text) gives up.
function startEditing(m) {
  state.editing = m.messageId;
  const input = $('message-input');
  input.value = m.content;
  $('send-button').textContent = 'Save';
  $('composer').classList.add('editing');
  input.focus();
}

function stopEditing() {
  state.editing = null;
  $('send-button').textContent = 'Send';
  $('composer').classList.remove('editing');
}

function retryMessage(m) {
  state.pending.delete(m.clientMessageId);
  conversation(m.conversationId).messages.delete(m.key);
  sendMessage(m.content, m);
}

// ---- typing (outgoing) ----------------------------------------------------------------------

function onInput() {
  const id = state.current;
  if (!id || !$('message-input').value.trim()) return;
  const now = Date.now();
  if (now - state.typing.sentAt >= TYPING_EVERY_MS) {
    if (send({ action: 'typing', conversationId: id, isTyping: true })) {
      state.typing.sentAt = now;
      state.typing.conversationId = id;
    }
  }
  clearTimeout(state.typing.idle);
  state.typing.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typing.idle);
  const id = state.typing.conversationId;
  if (!id) return; // only retract what we announced
  state.typing.conversationId = null;
  send({ action: 'typing', conversationId: id, isTyping: false });
}

// ---- rendering ------------------------------------------------------------------------------

function displayName(userId) {
  return userId === state.me?.user ? state.me.name : state.names.get(userId) || userId;
}

function conversationLabel(c) {
  const others = c.members.filter((u) => u !== state.me.user);
  return c.title || others.map(displayName).join(', ') || c.conversationId;
}

function renderConversations() {
  const list = $('conversations');
  const sorted = [...state.conversations.values()].sort((a, b) =>
    (b.lastMessage?.messageId || b.conversationId).localeCompare(a.lastMessage?.messageId || a.conversationId));
  list.replaceChildren(...sorted.map((c) => {
    const li = el('li', 'conversation');
    li.dataset.conversationId = c.conversationId;
    li.tabIndex = 0;
    if (c.conversationId === state.current) li.setAttribute('aria-current', 'true');
    const top = el('div', 'row');
    top.append(el('span', 'label', conversationLabel(c)));
    // A direct conversation shows the other's presence; a group how many others are online.
    const others = c.members.filter((u) => u !== state.me.user);
    const online = others.filter(isOnline).length;
    const presence = others.length === 1 ? (online ? 'online' : 'offline') : online ? `${online} online` : '';
    if (presence) {
      const p = el('span', 'presence', presence);
      p.dataset.state = online ? 'online' : 'offline';
      top.append(p);
    }
    if (c.unread > 0) top.append(el('span', 'unread', String(c.unread)));
    const last = c.lastMessage;
    const preview = !last ? 'No messages yet'
      : last.deletedAt ? `${displayName(last.senderId)} deleted a message`
        : `${displayName(last.senderId)}: ${last.content}`;
    li.append(top, el('div', 'preview', preview));
    return li;
  }));
}

function renderHeader() {
  const c = state.current && state.conversations.get(state.current);
  $('chat-title').textContent = c ? conversationLabel(c) : 'Select a conversation';
  $('chat-members').textContent = c
    ? c.members.map((u) => (u !== state.me.user && isOnline(u) ? `● ${displayName(u)}` : displayName(u))).join(', ')
    : '';
}

const STATUS_ICON = { SENT: '✓', DELIVERED: '✓✓', READ: '✓✓' };

function messageItem(m, i, all) {
  const li = el('li', `message ${m.mine ? 'mine' : 'theirs'} ${m.status || ''}`);
  if (m.messageId) li.dataset.messageId = m.messageId;
  if (m.clientMessageId) li.dataset.clientMessageId = m.clientMessageId;
  // Name the sender once per run of their messages, as chat apps do.
  if (!m.mine && all[i - 1]?.senderId !== m.senderId) li.append(el('div', 'sender', displayName(m.senderId)));
  if (m.deletedAt) {
    li.classList.add('deleted');
    li.append(el('div', 'content tombstone', 'This message was deleted'));
  } else {
    li.append(el('div', 'content', m.content));
  }
  const meta = el('div', 'meta', m.sentAt ? new Date(m.sentAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '');
  if (m.editedAt && !m.deletedAt) meta.append(el('span', 'edited', 'edited'));
  if (m.mine && m.messageId && !m.deletedAt) {
    const edit = el('button', 'edit', 'Edit');
    edit.type = 'button';
    edit.onclick = () => startEditing(m);
    const del = el('button', 'delete', 'Delete');
    del.type = 'button';
    del.onclick = () => send({ action: 'deleteMessage', conversationId: m.conversationId, messageId: m.messageId });
    meta.append(edit, del);
  }
  if (m.mine && m.readBy != null) {
    meta.append(el('span', 'status', `read by ${m.readBy}`)); // a large group counts its readers
  } else if (m.mine && m.status in RANK) {
    meta.append(el('span', 'status-icon', STATUS_ICON[m.status]), el('span', 'status', m.status));
  } else if (m.status === 'sending') {
    meta.append(el('span', 'state', 'sending…'));
  } else if (m.status === 'failed') {
    const b = el('button', 'retry', 'failed: retry');
    b.type = 'button';
    b.onclick = () => retryMessage(m);
    meta.append(b);
  }
  li.append(meta);
  return li;
}

// Keeps the view pinned to the bottom when it was there; otherwise keeps what the reader was
// looking at in place (e.g. after "load older" adds messages above).
function renderMessages(toBottom) {
  const pane = $('message-pane');
  const c = state.current && state.conversations.get(state.current);
  const atBottom = toBottom || pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
  const fromBottom = pane.scrollHeight - pane.scrollTop;
  // Stored messages sort by ULID (time); ones still sending go last, in the order typed.
  const msgs = c ? [...c.messages.values()].sort((a, b) =>
    (a.messageId ? 0 : 1) - (b.messageId ? 0 : 1) || (a.messageId || a.sentAt).localeCompare(b.messageId || b.sentAt)) : [];
  $('messages').replaceChildren(...msgs.map(messageItem));
  $('load-older').hidden = !(c && c.nextBefore);
  pane.scrollTop = atBottom ? pane.scrollHeight : pane.scrollHeight - fromBottom;
}

function renderTyping() {
  const c = state.current && state.conversations.get(state.current);
  const who = c ? [...c.typing.keys()].map(displayName) : [];
  $('typing').textContent = who.length === 0 ? ''
    : who.length === 1 ? `${who[0]} is typing…` : `${who.join(', ')} are typing…`;
}

let errorTimer = null;
function showError(text) {
  const b = $('error-banner');
  b.querySelector('.text').textContent = text;
  b.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(hideError, 8000);
}
function hideError() { $('error-banner').hidden = true; }

// ---- wiring ---------------------------------------------------------------------------------

function login(user, name) {
  state.me = { user, name };
  state.wantOpen = true;
  sessionStorage.setItem('relaychat.me', JSON.stringify(state.me)); // survive a reload
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout-button').hidden = false;
  $('whoami').textContent = `${name} (${user})`;
  connect();
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  const user = $('user').value.trim();
  const name = $('name').value.trim() || user;
  if (!USER_ID.test(user)) return showError('user id: 1–64 of A–Z a–z 0–9 . _ @ : = + -');
  login(user, name);
});

$('logout-button').addEventListener('click', () => {
  sessionStorage.removeItem('relaychat.me');
  state.wantOpen = false;
  if (state.ws) state.ws.close(1000);
  location.reload();
});

$('new-conversation').addEventListener('submit', (e) => {
  e.preventDefault();
  const members = $('members').value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = members.find((m) => !USER_ID.test(m));
  if (bad || members.length === 0) return showError(`members: ${bad ? `"${bad}" is not a valid user id` : 'name at least one'}`);
  const title = $('title').value.trim();
  // The request id makes a retried create (no answer, then sent again) create nothing twice.
  const clientRequestId = `create-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  if (send({ action: 'createConversation', members, clientRequestId, ...(title ? { title } : {}) })) {
    $('members').value = '';
    $('title').value = '';
  } else {
    showError('not connected');
  }
});

$('refresh-conversations').addEventListener('click', () => send({ action: 'listConversations' }));

$('conversations').addEventListener('click', (e) => {
  const li = e.target.closest('[data-conversation-id]');
  if (li) select(li.dataset.conversationId);
});
$('conversations').addEventListener('keydown', (e) => {
  const li = e.target.closest('[data-conversation-id]');
  if (li && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); select(li.dataset.conversationId); }
});

$('load-older').addEventListener('click', () => {
  const c = state.conversations.get(state.current);
  if (c?.nextBefore) loadHistory(c.conversationId, c.nextBefore);
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('message-input');
  const content = input.value.trim();
  if (state.editing) {
    const m = state.byId.get(state.editing);
    stopEditing();
    input.value = '';
    if (m && content && content !== m.content) {
      send({ action: 'editMessage', conversationId: m.conversationId, messageId: m.messageId, content });
    }
    return;
  }
  if (!content || !state.current) return;
  input.value = '';
  sendMessage(content);
});
$('message-input').addEventListener('input', onInput);
$('message-input').addEventListener('keydown', (e) => {
  // Enter sends, Shift+Enter adds a line.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('composer').requestSubmit(); }
  if (e.key === 'Escape' && state.editing) { stopEditing(); e.target.value = ''; }
});

$('error-banner').querySelector('.dismiss').addEventListener('click', hideError);

document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  maybeMarkRead(); // coming back to the tab is when the open conversation gets read
  send({ action: 'listConversations' }); // and pick up conversations others started meanwhile
});

const saved = JSON.parse(sessionStorage.getItem('relaychat.me') || 'null');
if (saved?.user) login(saved.user, saved.name || saved.user);
