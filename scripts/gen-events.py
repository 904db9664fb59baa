#!/usr/bin/env python3
"""Writes the sample events under events/: MSK-shaped (aws:kafka) Lambda events for every
function, with base64 keys and values, signed-byte headers and several partitions. Run it after
changing the payloads below; the files are committed and tests feed each one to its handler."""
import base64
import json
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "events")
ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/relaychat/6c3f1a52-7f1e-4d5c-9a3e-2b1c0d9e8f7a-2"
BOOTSTRAP = "b-1.relaychat.abc123.c2.kafka.us-east-1.amazonaws.com:9098,b-2.relaychat.abc123.c2.kafka.us-east-1.amazonaws.com:9098"
T0 = 1764064800000  # 2025-11-25T10:00:00Z


def signed(b: bytes):
    return [x - 256 if x > 127 else x for x in b]


def record(topic, partition, offset, key, value, headers=None, ts=T0):
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":")).encode()
    hdrs = [{"traceparent": signed(f"00-4bf92f3577b34da6a3ce929d0e0e{offset:04d}-00f067aa0ba902b7-01".encode())}]
    hdrs += [{k: signed(v)} for k, v in (headers or {}).items()]
    r = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": ts + offset,
        "timestampType": "CREATE_TIME",
        "value": base64.b64encode(value).decode(),
        "headers": hdrs,
    }
    if key is not None:
        r["key"] = base64.b64encode(key.encode()).decode()
    return r


def event(records):
    groups = {}
    for r in records:
        groups.setdefault(f"{r['topic']}-{r['partition']}", []).append(r)
    return {"eventSource": "aws:kafka", "eventSourceArn": ARN, "bootstrapServers": BOOTSTRAP, "records": groups}


def write(name, ev):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(ev, f, indent=2)
        f.write("\n")


def chat(mid, conv, sender, name, content, recipients, sent_at, client_id=None):
    m = {"schemaVersion": 1, "messageId": mid, "conversationId": conv, "senderId": sender,
         "senderName": name, "content": content, "sentAt": sent_at, "recipients": recipients}
    if client_id:
        m["clientMessageId"] = client_id
    return m


M1, M2, M3 = "01KAXB6S00AAAAAAAAAAAAAAAA", "01KAXB6S01BBBBBBBBBBBBBBBB", "01KAXB6S02CCCCCCCCCCCCCCCC"
C_DIRECT, C_GROUP = "01KAXB5ZZZDIRECTALICEBOB00", "01KAXB5ZZZGROUPTEAM0000000"
chat_records = [
    record("chat-messages", 0, 120, C_DIRECT, chat(M1, C_DIRECT, "alice", "Alice", "Hi Bob! Lunch at noon?",
                                                 ["alice", "bob"], "2025-11-25T10:00:00.000Z", "web-1")),
    record("chat-messages", 0, 121, C_DIRECT, chat(M2, C_DIRECT, "bob", "Bob", "Sure, see you there 🍜",
                                                 ["alice", "bob"], "2025-11-25T10:00:04.000Z", "ios-7")),
    record("chat-messages", 2, 57, C_GROUP, chat(M3, C_GROUP, "carol", "Carol", "Standup moved to 10:30",
                                               ["alice", "bob", "carol"], "2025-11-25T10:00:07.000Z")),
]
write("persist-message.json", event(chat_records))
write("deliver-message.json", event(chat_records))
write("persist-message-malformed.json", event([
    chat_records[0],
    record("chat-messages", 0, 122, C_DIRECT, b'{"schemaVersion":1,"messageId":"not-a-ulid"'),
    record("chat-messages", 0, 123, C_DIRECT, {"schemaVersion": 1, "messageId": M2, "conversationId": C_DIRECT}),
]))

# The sender edits one message and deletes another (what editMessage / deleteMessage publish), and
# a change to a message never stored (dead-lettered).
def change(mid, conv, sender, kind, at, recipients, content=None):
    c = {"schemaVersion": 1, "messageId": mid, "conversationId": conv, "senderId": sender, "change": kind,
         "changedAt": at, "recipients": recipients}
    if content is not None:
        c["content"] = content
    return c


write("persist-message-changes.json", event([
    record("chat-messages", 0, 124, C_DIRECT, change(M1, C_DIRECT, "alice", "edited", "2025-11-25T10:01:00.000Z",
                                                   ["alice", "bob"], "Hi Bob! Lunch at one?")),
    record("chat-messages", 0, 125, C_DIRECT, change(M2, C_DIRECT, "bob", "deleted", "2025-11-25T10:01:30.000Z",
                                                   ["alice", "bob"])),
    record("chat-messages", 0, 126, C_DIRECT, change("01KAXB6S09ZZZZZZZZZZZZZZZZ", C_DIRECT, "bob", "deleted",
                                                   "2025-11-25T10:01:40.000Z", ["alice", "bob"])),
]))

write("update-status.json", event([
    record("message-status-events", 1, 40, "bob", {"schemaVersion": 1, "messageId": M1, "conversationId": C_DIRECT,
           "userId": "bob", "senderId": "alice", "status": "DELIVERED", "at": "2025-11-25T10:00:01.000Z"}),
    record("message-status-events", 1, 41, "bob", {"schemaVersion": 1, "messageId": M1, "conversationId": C_DIRECT,
           "userId": "bob", "status": "READ", "at": "2025-11-25T10:00:03.000Z"}),
    record("message-status-events", 0, 12, "alice", {"schemaVersion": 1, "messageId": M2, "conversationId": C_DIRECT,
           "userId": "alice", "senderId": "bob", "status": "DELIVERED", "at": "2025-11-25T10:00:05.000Z"}),
]))

write("relay-typing.json", event([
    record("typing-events", 0, 900, C_DIRECT, {"schemaVersion": 1, "conversationId": C_DIRECT, "userId": "alice",
           "isTyping": True, "at": "2025-11-25T10:00:02.000Z", "recipients": ["alice", "bob"]}),
    record("typing-events", 1, 311, C_GROUP, {"schemaVersion": 1, "conversationId": C_GROUP, "userId": "carol",
           "isTyping": False, "at": "2025-11-25T10:00:06.000Z", "recipients": ["alice", "bob", "carol"]}),
]))

write("update-presence.json", event([
    record("presence-events", 0, 120, "alice", {"schemaVersion": 1, "userId": "alice", "connectionId": "L0SM9cOFvHcCIhw=",
           "change": "connected", "at": "2025-11-25T10:00:00.000Z"}),
    record("presence-events", 1, 57, "bob", {"schemaVersion": 1, "userId": "bob", "connectionId": "Kz9Qm1pLvHcCJhw=",
           "change": "disconnected", "at": "2025-11-25T10:00:03.000Z"}),
]))

write("push-notification.json", event([
    record("notifications", 2, 8, "carol", {"schemaVersion": 1, "notificationId": f"msg:{M1}", "userId": "carol",
           "title": "Alice", "body": "Hi Bob! Lunch at noon?", "conversationId": C_GROUP, "messageId": M1,
           "createdAt": "2025-11-25T10:00:01.000Z"}),
    record("notifications", 0, 3, "dave", {"schemaVersion": 1, "notificationId": f"msg:{M3}", "userId": "dave",
           "title": "Carol in Team", "body": "Standup moved to 10:30", "conversationId": C_GROUP, "messageId": M3,
           "createdAt": "2025-11-25T10:00:08.000Z"}),
]))

write("analytics.json", event([
    record("analytics-events", 0, 77, "alice", {"schemaVersion": 1, "eventId": "01KAXB6R00EEEEEEEEEEEEEEEE",
           "kind": "connected", "userId": "alice", "at": "2025-11-25T09:59:58.000Z"}),
    record("analytics-events", 0, 78, "alice", {"schemaVersion": 1, "eventId": "01KAXB6R01EEEEEEEEEEEEEEEE",
           "kind": "conversationCreated", "userId": "alice", "conversationId": C_DIRECT,
           "at": "2025-11-25T09:59:59.000Z"}),
    record("analytics-events", 1, 5, "bob", {"schemaVersion": 1, "eventId": "01KAXB6R02EEEEEEEEEEEEEEEE",
           "kind": "messageRead", "userId": "bob", "conversationId": C_DIRECT, "at": "2025-11-25T10:00:03.000Z"}),
]))
write("analytics-chat.json", event(chat_records))


# --- API Gateway WebSocket events for ws-connect, ws-disconnect and ws-message ----------------
import hashlib
import hmac

DEV_SECRET = b"relaychat-local-development-secret"  # the local runtime's default RELAYCHAT_JWT_SECRET
API_ID = "a1b2c3d4e5"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
ALICE_CONN = "L0SM9cOFvHcCIhw="


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(sub, name, exp, secret=DEV_SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps({"sub": sub, "name": name, "exp": exp}, separators=(",", ":")).encode())
    sig = b64url(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def ws_context(route, event_type, n, extra=None):
    ctx = {
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": f"Xk3Fz{n:03d}EFQ=",
        "requestTime": "25/Nov/2025:10:00:00 +0000",
        "messageDirection": "IN",
        "stage": "prod",
        "connectedAt": T0 - 10_000,
        "requestTimeEpoch": T0 + n,
        "identity": {"sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0 relaychat-web"},
        "requestId": f"Xk3Fz{n:03d}EFQ=",
        "domainName": DOMAIN,
        "connectionId": ALICE_CONN,
        "apiId": API_ID,
    }
    if event_type == "MESSAGE":
        ctx["messageId"] = f"Xk3G{n:04d}Q="
    ctx.update(extra or {})
    return ctx


def connect_event(token):
    headers = {"Host": DOMAIN, "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
               "User-Agent": "Mozilla/5.0 relaychat-web", "X-Forwarded-For": "203.0.113.7"}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {"token": token},
        "multiValueQueryStringParameters": {"token": [token]},
        "requestContext": ws_context("$connect", "CONNECT", 1),
        "isBase64Encoded": False,
    }


FOREVER = 4102444800  # 2100-01-01: sample tokens must not expire under the tests
write("ws-connect.json", connect_event(jwt("alice", "Alice", FOREVER)))
write("ws-connect-bad-token.json", connect_event(jwt("alice", "Alice", FOREVER, secret=b"not-the-secret")))
write("ws-disconnect.json", {
    "headers": {"Host": DOMAIN},
    "multiValueHeaders": {"Host": [DOMAIN]},
    "requestContext": ws_context("$disconnect", "DISCONNECT", 99,
                                 {"disconnectStatusCode": 1001, "disconnectReason": "Going away"}),
    "isBase64Encoded": False,
})

actions = {
    "create-conversation": ("createConversation", {"members": ["bob", "carol"], "title": "Team lunch"}),
    "list-conversations": ("listConversations", {}),
    "send-message": ("sendMessage", {"conversationId": C_DIRECT, "content": "Hi Bob! Lunch at noon?",
                                     "clientMessageId": "web-42"}),
    "typing": ("typing", {"conversationId": C_DIRECT, "isTyping": True}),
    "mark-read": ("markRead", {"conversationId": C_DIRECT, "messageId": M2}),
    "history": ("history", {"conversationId": C_DIRECT, "limit": 20}),
    "register-device": ("registerDevice", {"token": "fcm-device-token-alice-pixel", "platform": "fcm"}),
}
for n, (name, (action, fields)) in enumerate(actions.items(), start=10):
    body = json.dumps({"action": action, **fields}, separators=(",", ":"))
    write(f"ws-message-{name}.json", {"requestContext": ws_context(action, "MESSAGE", n), "body": body,
                                      "isBase64Encoded": False})
write("ws-message-invalid-json.json", {"requestContext": ws_context("$default", "MESSAGE", 30),
                                       "body": "{\"action\":\"sendMessage\",", "isBase64Encoded": False})

# --- API Gateway HTTP API events (payload 2.0) for http-authorizer and http-api ----------------
HTTP_API_ID = "f6g7h8i9j0"
HTTP_DOMAIN = f"{HTTP_API_ID}.execute-api.us-east-1.amazonaws.com"


def http_context(route_key, method, path, n, lambda_context=None):
    ctx = {
        "accountId": "123456789012",
        "apiId": HTTP_API_ID,
        "domainName": HTTP_DOMAIN,
        "domainPrefix": HTTP_API_ID,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                 "userAgent": "relaychat-bot/1.0"},
        "requestId": f"Hk3Fz{n:03d}EFQ=",
        "routeKey": route_key,
        "stage": "$default",
        "time": "25/Nov/2025:10:00:00 +0000",
        "timeEpoch": T0 + n,
    }
    if lambda_context is not None:
        ctx["authorizer"] = {"lambda": lambda_context}
    return ctx


ALICE_BEARER = f"Bearer {jwt('alice', 'Alice', FOREVER)}"
write("http-authorizer.json", {
    "version": "2.0",
    "type": "REQUEST",
    "routeArn": f"arn:aws:execute-api:us-east-1:123456789012:{HTTP_API_ID}/$default/GET/unread",
    "identitySource": [ALICE_BEARER],
    "routeKey": "GET /unread",
    "rawPath": "/unread",
    "rawQueryString": "",
    "headers": {"authorization": ALICE_BEARER, "host": HTTP_DOMAIN},
    "requestContext": http_context("GET /unread", "GET", "/unread", 40),
})
ALICE_CONTEXT = {"userId": "alice", "name": "Alice"}
http_requests = {
    "unread": ("GET /unread", "GET", "/unread", {}, {}, None, {}),
    "history": ("GET /conversations/{conversationId}/messages", "GET", f"/conversations/{C_DIRECT}/messages",
                {"conversationId": C_DIRECT}, {"limit": "20"}, None, {}),
    "send-message": ("POST /conversations/{conversationId}/messages", "POST", f"/conversations/{C_DIRECT}/messages",
                     {"conversationId": C_DIRECT}, {}, {"content": "Hi Bob, from the bot"},
                     {"idempotency-key": "bot-7", "content-type": "application/json"}),
}
for n, (name, (route_key, method, path, params, query, body, headers)) in enumerate(http_requests.items(), start=41):
    ev = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in query.items()),
        "headers": {"authorization": ALICE_BEARER, "host": HTTP_DOMAIN, **headers},
        "requestContext": http_context(route_key, method, path, n, ALICE_CONTEXT),
        "isBase64Encoded": False,
    }
    if query:
        ev["queryStringParameters"] = query
    if params:
        ev["pathParameters"] = params
    if body is not None:
        ev["body"] = json.dumps(body, separators=(",", ":"))
    write(f"http-api-{name}.json", ev)
