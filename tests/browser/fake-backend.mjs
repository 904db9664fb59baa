// DEVELOPMENT AID ONLY: an in-memory stand-in for the local runtime's web page, dev token mint
// and WebSocket gateway, implementing just enough of DESIGN.md §3 to work on web/ and chat.mjs
// while the Rust runtime is not at hand. It is not the product and proves nothing about it: the
// real test is chat.mjs against `make dev`.
//
//   node tests/browser/fake-backend.mjs      # http://127.0.0.1:3000/ and ws://127.0.0.1:3001/local
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const HTTP_PORT = Number(process.env.RELAYCHAT_HTTP_PORT || 3000);
const WS_PORT = Number(process.env.RELAYCHAT_WS_PORT || 3001);
const SECRET = process.env.RELAYCHAT_JWT_SECRET || 'relaychat-local-development-secret';
const WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
const USER_ID = /^[A-Za-z0-9._@:=+-]{1,64}$/;
const RANK = { SENT: 0, DELIVERED: 1, READ: 2 };

// ---- ids and tokens --------------------------------------------------------------------------

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let lastTime = 0;
let counter = 0n;
/** A monotonic ULID-shaped id: 10 time characters, then a counter, so ids sort by creation. */
function ulid() {
  const now = Date.now();
  counter = now === lastTime ? counter + 1n : BigInt(`0x${randomBytes(6).toString('hex')}`);
  lastTime = now;
  let t = '';
  for (let n = now, i = 0; i < 10; i++, n = Math.floor(n / 32)) t = CROCKFORD[n % 32] + t;
  let r = '';
  for (let n = counter, i = 0; i < 16; i++, n /= 32n) r = CROCKFORD[Number(n % 32n)] + r;
  return t + r;
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
function mintToken(user, name) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub: user, name, exp: Math.floor(Date.now() / 1000) + 3600 }));
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
function verifyToken(token) {
  const [head, body, sig] = String(token || '').split('.');
  if (!sig) return null;
  const want = createHmac('sha256', SECRET).update(`${head}.${body}`).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
  return claims.exp > Date.now() / 1000 && USER_ID.test(claims.sub) ? claims : null;
}

// ---- HTTP: page, config, tokens --------------------------------------------------------------

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.png': 'image/png',
                '.svg': 'image/svg+xml', '.ico': 'image/x-icon' };

const json = (res, status, value) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(value));
};

http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/config.json') return json(res, 200, { wsUrl: `ws://127.0.0.1:${WS_PORT}/local` });
  if (url.pathname === '/dev/token') {
    const user = url.searchParams.get('user') || '';
    const name = url.searchParams.get('name') || user;
    if (!USER_ID.test(user)) return json(res, 400, { error: 'user: 1-64 characters of [A-Za-z0-9._@:=+-]' });
    return json(res, 200, { token: mintToken(user, name), user, name });
  }
  const file = path.join(WEB_ROOT, path.normalize(url.pathname === '/' ? '/index.html' : url.pathname));
  if (!file.startsWith(WEB_ROOT + path.sep)) return json(res, 404, { error: 'not found' });
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
    res.end(body);
  } catch {
    json(res, 404, { error: 'not found' });
  }
}).listen(HTTP_PORT, '127.0.0.1');

// ---- WebSocket: the protocol -----------------------------------------------------------------

const conversations = new Map(); // id → { conversationId, title, members }
const messages = new Map(); // conversationId → [message] in id order
const receipts = new Map(); // messageId → Map(userId → rank)
const readUpTo = new Map(); // `${conversationId} ${userId}` → messageId
const sockets = new Map(); // userId → Set(ws)

const push = (user, frame) => {
  for (const ws of sockets.get(user) || []) ws.send(JSON.stringify(frame));
  return (sockets.get(user)?.size || 0) > 0;
};
const refuse = (code, message, clientMessageId) => {
  throw Object.assign(new Error(message), { frame: { type: 'error', code, message, ...(clientMessageId ? { clientMessageId } : {}) } });
};

function memberOf(user, conversationId, clientMessageId) {
  if (typeof conversationId !== 'string' || !conversationId) refuse('invalid_request', 'conversationId: is required', clientMessageId);
  const c = conversations.get(conversationId);
  if (!c) refuse('not_found', `no conversation ${conversationId}`, clientMessageId);
  if (!c.members.includes(user)) refuse('not_a_member', `you are not a member of ${conversationId}`, clientMessageId);
  return c;
}

function unread(conversationId, user) {
  const cursor = readUpTo.get(`${conversationId} ${user}`) || '';
  return (messages.get(conversationId) || []).filter((m) => m.senderId !== user && m.messageId > cursor).length;
}

// Forward-only receipts, each change told to the message's sender.
function receipt(m, user, status) {
  const r = receipts.get(m.messageId) || new Map();
  receipts.set(m.messageId, r);
  if ((r.get(user) ?? -1) >= RANK[status]) return;
  r.set(user, RANK[status]);
  push(m.senderId, { type: 'status', messageId: m.messageId, conversationId: m.conversationId, userId: user,
                     status, at: new Date().toISOString() });
}

function perform(me, body) {
  const { action } = body;
  if (action === 'createConversation') {
    if (!Array.isArray(body.members) || body.members.length === 0) refuse('invalid_request', 'members: is required');
    const bad = body.members.find((m) => typeof m !== 'string' || !USER_ID.test(m));
    if (bad !== undefined) refuse('invalid_request', `members: ${JSON.stringify(bad)} is not a user id`);
    const members = [...new Set([me.sub, ...body.members])];
    if (members.length < 2) refuse('invalid_request', 'members: a conversation has 2 to 99 members, you included');
    const c = { conversationId: ulid(), title: body.title || null, members };
    conversations.set(c.conversationId, c);
    messages.set(c.conversationId, []);
    return { type: 'conversation', ...c };
  }
  if (action === 'listConversations') {
    const mine = [...conversations.values()].filter((c) => c.members.includes(me.sub));
    return { type: 'conversations', conversations: mine.map((c) => ({
      ...c, unread: unread(c.conversationId, me.sub), lastMessage: messages.get(c.conversationId).at(-1) || null })) };
  }
  if (action === 'sendMessage') {
    const cmid = typeof body.clientMessageId === 'string' ? body.clientMessageId : undefined;
    if (typeof body.content !== 'string' || !body.content.trim()) refuse('empty_content', 'content must not be empty', cmid);
    if ([...body.content].length > 4000) refuse('content_too_long', 'content is over 4,000 characters', cmid);
    const c = memberOf(me.sub, body.conversationId, cmid);
    const m = { messageId: ulid(), conversationId: c.conversationId, senderId: me.sub, senderName: me.name,
                content: body.content, sentAt: new Date().toISOString() };
    messages.get(c.conversationId).push(m);
    // Delivery is asynchronous in the real system (a Kafka consumer): after the ack, and twice
    // now and then, since clients must drop a messageId they already have.
    setTimeout(() => {
      for (const user of c.members.filter((u) => u !== me.sub)) {
        if (push(user, { type: 'message', ...m })) receipt(m, user, 'DELIVERED');
        if (Math.random() < 0.3) push(user, { type: 'message', ...m });
      }
    }, 30);
    return { type: 'ack', ...(cmid ? { clientMessageId: cmid } : {}), messageId: m.messageId,
             conversationId: m.conversationId, status: 'SENT', sentAt: m.sentAt };
  }
  if (action === 'typing') {
    const c = memberOf(me.sub, body.conversationId);
    for (const user of c.members.filter((u) => u !== me.sub)) {
      push(user, { type: 'typing', conversationId: c.conversationId, userId: me.sub, isTyping: body.isTyping !== false });
    }
    return null;
  }
  if (action === 'markRead') {
    const c = memberOf(me.sub, body.conversationId);
    const key = `${c.conversationId} ${me.sub}`;
    const cursor = readUpTo.get(key) || '';
    // READ covers every message from others after the cursor up to and including messageId.
    for (const m of messages.get(c.conversationId)) {
      if (m.senderId !== me.sub && m.messageId > cursor && m.messageId <= body.messageId) receipt(m, me.sub, 'READ');
    }
    if (body.messageId > cursor) readUpTo.set(key, body.messageId);
    return null;
  }
  if (action === 'history') {
    const c = memberOf(me.sub, body.conversationId);
    const limit = body.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) refuse('invalid_request', 'limit: must be a whole number from 1 to 100');
    const older = messages.get(c.conversationId).filter((m) => !body.before || m.messageId < body.before).reverse();
    const page = older.slice(0, limit);
    return { type: 'history', conversationId: c.conversationId, messages: page,
             nextBefore: older.length > limit ? page.at(-1).messageId : null };
  }
  return refuse('unknown_action', action ? `unknown action ${JSON.stringify(action)}` : 'action is required');
}

const wss = new WebSocketServer({ noServer: true });
const gateway = http.createServer((req, res) => { res.writeHead(426); res.end(); });
gateway.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  const claims = url.pathname === '/local' ? verifyToken(url.searchParams.get('token')) : null;
  if (!claims) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const set = sockets.get(claims.sub) || new Set();
    sockets.set(claims.sub, set.add(ws));
    ws.on('close', () => set.delete(ws));
    ws.on('message', (data) => {
      let reply;
      try {
        let body;
        try { body = JSON.parse(data); } catch { refuse('invalid_json', 'invalid JSON'); }
        if (!body || typeof body !== 'object' || Array.isArray(body)) refuse('invalid_json', 'the message must be a JSON object');
        reply = perform(claims, body);
      } catch (e) {
        if (!e.frame) console.error(e);
        reply = e.frame || { type: 'error', code: 'internal', message: 'the server could not do this' };
      }
      if (reply) ws.send(JSON.stringify(reply));
    });
  });
});
gateway.listen(WS_PORT, '127.0.0.1');

console.log(`fake backend (development aid): http://127.0.0.1:${HTTP_PORT}/  ws://127.0.0.1:${WS_PORT}/local`);
