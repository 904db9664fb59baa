//! Attacks on the WebSocket front, each tried on the real local runtime over real connections:
//! forged tokens at `$connect`, acting in others' conversations, spoofed senders, oversized and
//! malformed input, floods. A refusal counts only when a client received it (a 401 on the upgrade,
//! an `error` frame with the expected code, a 1009 close); afterwards DynamoDB is read for any row
//! an attack should not have created.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use relaychat_adapters::auth::{JwtAuthenticator, TokenRules, mint_token};
use relaychat_adapters::dynamo::TableNames;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_core::limits::{Limited, RateLimit};
use relaychat_local::runtime::Running;
use relaychat_schema::Topics;
use relaychat_testkit::{aws_config, dynamo_store, kafka_settings, unique};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::client::{Client, WAIT, start_runtime_with, token};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Item = HashMap<String, AttributeValue>;
type Known = BTreeMap<String, Vec<String>>;

const ISSUER: &str = "https://id.relaychat.test";
const AUDIENCE: &str = "relaychat";

/// What the attacks came to: each miss keeps what the client saw, each stored row what it was.
#[derive(Default)]
struct Tally {
    tried: usize,
    refused: usize,
    stored: usize,
    kinds: BTreeSet<String>,
    misses: Vec<String>,
    rows: Vec<String>,
}

impl Tally {
    fn check(&mut self, kind: &str, refused: bool, seen: impl Display) {
        self.count(kind, 1, usize::from(refused), seen);
    }

    fn count(&mut self, kind: &str, tried: usize, refused: usize, seen: impl Display) {
        self.kinds.insert(kind.to_owned());
        (self.tried, self.refused) = (self.tried + tried, self.refused + refused);
        if tried != refused {
            self.misses.push(format!("{kind}: {seen}"));
        }
    }

    fn store(&mut self, rows: usize, what: impl Display) {
        if rows > 0 {
            self.stored += rows;
            self.rows.push(format!("{rows} × {what}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_and_stores_nothing() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let mut setup = (String::new(), TableNames::default());
    let (running, topics) = start_runtime_with(|c| setup = (c.jwt_secret.clone(), c.tables.clone())).await;
    let ((secret, tables), mut t) = (setup, Tally::default());
    let mut kept = Vec::new(); // sockets let in by mistake stay open until storage is read
    let (prober, intruder, carol) = (unique("prober"), unique("intruder"), unique("carol"));

    // Tokens at $connect. The forger signs as the runtime does (it reproduces a real token's
    // signature, and its well-formed token gets in), so each 401 is about the claim attacked.
    let genuine = token(&running, &prober, "Prober").await;
    let (input, signature) = genuine.rsplit_once('.').unwrap();
    let resigned = hs256_signature(secret.as_bytes(), input);
    assert_eq!(resigned, signature, "the forger signs like the runtime");
    let (rules, now) = (TokenRules::from_env(), Utc::now().timestamp());
    let claims = |changes: Value| intruder_claims(&intruder, &rules, now, changes);
    let hs = |alg: &str, changes: Value| forge(secret.as_bytes(), alg, &claims(changes));
    let hs256 = |changes: Value| hs("HS256", changes);
    let unsigned = |alg: &str| format!("{}.{}.", b64(&json!({"alg": alg})), b64(&claims(json!({}))));
    let (status, ws) = connect(&running, &format!("?token={}", hs256(json!({"sub": prober})))).await;
    assert_eq!(status, 101, "the forger's well-formed token gets in");
    kept.extend(ws);
    let other_key = mint_token(b"another-secret-of-at-least-32-bytes!", &intruder, "I", 600, &rules).unwrap();
    let header = input.split('.').next().unwrap();
    let tampered = format!("{header}.{}.{signature}", b64(&claims(json!({})))); // a real signature
    let tokens = json!({
        "no_token": [null, ""],
        "bad_signature": [other_key, tampered],
        "expired": [hs256(json!({"exp": now - 60})), hs256(json!({"exp": now - 86_400}))],
        "alg_none": [unsigned("none"), unsigned("NONE"), hs("none", json!({}))],
        "other_alg": [hs("HS512", json!({})), hs("RS256", json!({}))],
        "nbf_future": [hs256(json!({"nbf": now + 600})), hs256(json!({"nbf": now + 60}))],
        "bad_claims": [hs256(json!({"exp": null})), hs256(json!({"sub": null})), hs256(json!({"sub": "al ice"})),
            hs256(json!({"sub": "x".repeat(65)})), "a.b.c", "not-a-jwt"]
    });
    for (kind, tokens) in tokens.as_object().unwrap() {
        for token in tokens.as_array().unwrap() {
            let query = token.as_str().map_or(String::new(), |t| format!("?token={t}"));
            let (status, ws) = connect(&running, &query).await;
            kept.extend(ws);
            t.check(kind, status == 401, format!("{query:.60} → {status}"));
        }
    }
    issuer_and_audience(&mut t, &topics, &claims).await;

    let mut known = Known::new(); // conversation → members: any other membership is an attack's
    let mut acked = BTreeSet::new(); // every message its sender got an ack for
    let mut alice = Client::connect(&running, &unique("alice"), "Alice").await;
    let mut bob = Client::connect(&running, &unique("bob"), "Bob").await;
    let mut mallory = Client::connect(&running, &unique("mallory"), "Mallory").await;
    let v = create(&mut bob, &carol, &mut known).await;
    let s = create(&mut alice, &bob.name, &mut known).await;
    let in_v = send(&mut bob, &v, "for carol only", &mut acked).await;

    // Frames refused with an error: mallory acts in bob and carol's conversation; alice, a member
    // of hers with bob, sends what no client should.
    let crowd = |n: usize| (0..n).map(|i| format!("{carol}-{i}")).collect::<Vec<_>>();
    let long = |c: &str| c.repeat(4_001);
    let frames = json!([
        ["non_member", "not_a_member", {"action": "sendMessage", "conversationId": v, "content": "let me in"}],
        ["non_member", "not_a_member", {"action": "history", "conversationId": v}],
        ["non_member", "not_a_member", {"action": "markRead", "conversationId": v, "messageId": in_v}],
        ["non_member", "not_a_member", {"action": "typing", "conversationId": v, "isTyping": true}],
        ["huge_member_list", "invalid_request", {"action": "createConversation", "members": crowd(500)}],
        ["huge_member_list", "invalid_request", {"action": "createConversation", "members": crowd(99)}],
        ["content_too_long", "content_too_long", {"action": "sendMessage", "conversationId": s, "content": long("x")}],
        ["content_too_long", "content_too_long", {"action": "sendMessage", "conversationId": s, "content": long("é")}],
        ["content_too_long", "content_too_long", {"action": "sendMessage", "conversationId": s, "content": long("😀")}],
        ["unknown_action", "unknown_action", {"action": "dance"}],
        ["unknown_action", "unknown_action", {}],
        ["unknown_action", "unknown_action", {"action": "$disconnect"}],
        ["unknown_action", "unknown_action", {"action": "$connect"}],
        ["unknown_action", "unknown_action", {"action": "SENDMESSAGE"}],
        ["unknown_action", "unknown_action", {"action": 7}],
        ["wrong_field_types", "invalid_request", {"action": "sendMessage", "conversationId": 42, "content": "hi"}],
        ["wrong_field_types", "invalid_request", {"action": "sendMessage", "conversationId": s, "content": ["hi"]}],
        ["wrong_field_types", "invalid_request", {"action": "sendMessage", "conversationId": s.clone() + "#", "content": "hi"}],
        ["wrong_field_types", "invalid_request",
            {"action": "sendMessage", "conversationId": s, "content": "hi", "clientMessageId": {"$gt": ""}}],
        ["wrong_field_types", "invalid_request", {"action": "history", "conversationId": s, "limit": "50"}],
        ["wrong_field_types", "invalid_request", {"action": "history", "conversationId": s, "limit": 1_000_000}],
        ["wrong_field_types", "invalid_request", {"action": "history", "conversationId": s, "before": "../../x"}],
        ["wrong_field_types", "invalid_request", {"action": "typing", "conversationId": s, "isTyping": "yes"}],
        ["wrong_field_types", "invalid_request",
            {"action": "markRead", "conversationId": s, "messageId": in_v.to_lowercase()}],
        ["wrong_field_types", "invalid_request", {"action": "createConversation", "members": bob.name}],
        ["wrong_field_types", "invalid_request", {"action": "createConversation", "members": [bob.name, 7]}],
        ["wrong_field_types", "invalid_request",
            {"action": "createConversation", "members": [bob.name], "title": "t".repeat(201)}],
        ["wrong_field_types", "invalid_request", {"action": "registerDevice", "platform": "apns", "token": "abc"}],
        ["oversized_device_token", "invalid_request", {"action": "registerDevice", "token": "t".repeat(1_025)}],
        ["oversized_device_token", "invalid_request", {"action": "registerDevice", "token": "t".repeat(30_000)}]
    ]);
    for attack in frames.as_array().unwrap() {
        let (kind, code, frame) = (attack[0].as_str().unwrap(), &attack[1], &attack[2]);
        let by = if kind == "non_member" { &mut mallory } else { &mut alice };
        let reply = attempt(by, frame.clone()).await;
        let sent: String = frame.to_string().chars().take(100).collect();
        t.check(kind, reply["code"] == *code, format!("{sent} → {reply}"));
    }

    // The sender is the connection's user: fields in the body naming someone else are ignored.
    let spoof = json!({"action": "sendMessage", "conversationId": s, "content": "spoof: from bob",
        "senderId": bob.name, "userId": bob.name, "senderName": "Bob", "sender": bob.name});
    let ack = alice.ask(spoof, "ack").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    acked.insert(ack["messageId"].as_str().unwrap().to_owned());
    let is_spoof = |m: &Value| m["type"] == "message" && m["messageId"] == ack["messageId"];
    let got = bob.expect("the spoof", is_spoof).await;
    let as_alice = got["senderId"] == alice.name && got["senderName"] == "Alice";
    t.check("sender_spoofing", as_alice, format!("bob got {got}"));

    // Over 32 KB in one frame: the gateway closes the connection with 1009, as API Gateway does.
    for frame in [
        json!({"action": "sendMessage", "conversationId": s, "content": "x".repeat(40 * 1024)}),
        json!({"action": "registerDevice", "platform": "fcm", "token": "t".repeat(33 * 1024)}),
    ] {
        let mut big = Client::connect(&running, &alice.name, "Alice").await;
        big.send(frame).await;
        let code = big.closed_with().await;
        t.check("oversized_frame", code == Some(1009), format!("closed with {code:?}"));
    }

    // Frames that are not JSON objects need a socket of our own (the client sends JSON values).
    let url = format!("ws://{}/local?token={genuine}", running.ws);
    let (mut raw, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let texts = [r#"{"action":"#, r#"{"action":"typing""#, "[1,2]", r#""hi""#, "null"];
    let deep = Message::Text(("[".repeat(10_000) + &"]".repeat(10_000)).into());
    let binary = Message::Binary(vec![0xff, 0xfe, b'{'].into());
    for frame in texts.map(|t| Message::Text(t.into())).into_iter().chain([deep, binary]) {
        let reply = raw_reply(&mut raw, frame).await;
        t.check("malformed_json", reply["code"] == "invalid_json", reply);
    }

    // Floods: bursts of three budgets, each on a fresh connection.
    let (send_limit, create_limit) = (Limited::SendMessage.limit(), Limited::CreateConversation.limit());
    let mut flooder = Client::connect(&running, &unique("flooder"), "Flooder").await;
    let f = create(&mut flooder, &bob.name, &mut known).await;
    let frame = |i| json!({"action": "sendMessage", "conversationId": f, "content": format!("flood {i}")});
    let sent_at = |r: &Value| millis(r["sentAt"].as_str().unwrap());
    let frames = (0..3 * send_limit.max).map(frame).collect();
    window_with(send_limit, send_limit.window_ms).await;
    let replies = flood(&mut t, &mut flooder, frames, sent_at).await;
    acked.extend(replies.iter().filter_map(|r| Some(r["messageId"].as_str()?.to_owned())));
    let mut creator = Client::connect(&running, &unique("creator"), "Creator").await;
    window_with(create_limit, 2_000).await;
    let frame = json!({"action": "createConversation", "members": [unique("pal")]});
    let minted = |r: &Value| ulid_ms(r["conversationId"].as_str().unwrap());
    let replies = flood(&mut t, &mut creator, vec![frame; 3 * create_limit.max as usize], minted).await;
    for created in replies.iter().filter(|r| r["type"] == "conversation") {
        remember(created, &mut known);
    }

    // markRead in alice's conversation naming a message of another: no READ of it may reach its
    // sender. Alice's next READ is on the same partition (keyed by reader), so once bob has that
    // one, the foreign one was handled.
    let frame = json!({"action": "markRead", "conversationId": s, "messageId": in_v});
    let foreign = attempt(&mut alice, frame).await;
    let marker = send(&mut bob, &s, "marker", &mut acked).await;
    let is_marker = |m: &Value| m["type"] == "message" && m["messageId"] == marker;
    alice.expect("bob's marker", is_marker).await;
    let frame = json!({"action": "markRead", "conversationId": s, "messageId": marker});
    assert!(attempt(&mut alice, frame).await.is_null(), "no reply to markRead");
    let is_read = |m: &Value| m["status"] == "READ" && m["messageId"] == marker;
    bob.expect("alice's READ", is_read).await;
    let leaked = bob.pending_matching(|m| m["type"] == "status" && m["messageId"] == in_v);
    let refused = matches!(foreign["code"].as_str(), Some("not_found" | "invalid_request"));
    let refused = refused || (foreign.is_null() && leaked == 0);
    t.check("foreign_mark_read", refused, format!("{foreign}, {leaked} to bob"));

    // Settle: a last message in every attacked conversation, after anything an attack could have
    // published there (one key, one partition, in order); wait until every acked one is stored.
    for conversation in [&v, &s, &f] {
        send(&mut bob, conversation, "fence", &mut acked).await;
    }
    let config = aws_sdk_dynamodb::config::Builder::from(&aws_config().await);
    let db = aws_sdk_dynamodb::Client::from_conf(config.endpoint_url(&running.dynamodb_endpoint).build());
    let deadline = Instant::now() + Duration::from_secs(60);
    let messages = loop {
        let rows = scan(&db, &tables.messages()).await;
        let stored: BTreeSet<&str> = rows.iter().map(|r| field(r, "messageId")).collect();
        if acked.iter().all(|id| stored.contains(id.as_str())) {
            break rows;
        }
        assert!(Instant::now() < deadline, "acked messages not stored within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Storage: only acked messages, from their true sender, within the send budget; memberships
    // only as created, within the create budget; receipts only of members, for messages of their
    // conversation; no device; no connection but the users let in.
    let (mut sent, mut joined, mut home) = (Vec::new(), Vec::new(), HashMap::new());
    for m in &messages {
        let (id, sender, content) = (field(m, "messageId"), field(m, "senderId"), field(m, "content"));
        if !acked.contains(id) || (content.starts_with("spoof") && sender != alice.name) {
            t.store(1, format!("message {id} from {sender}: {content:.60}"));
        }
        if sender == flooder.name {
            sent.push(millis(field(m, "sentAt")));
        }
        home.insert(id, field(m, "conversationId"));
    }
    let member = |user: &str, c: &str| known.get(c).is_some_and(|m| m.iter().any(|u| u == user));
    for row in scan(&db, &tables.memberships()).await {
        let (user, conversation) = (field(&row, "userId"), field(&row, "conversationId"));
        if !member(user, conversation) {
            t.store(1, format!("membership of {user} in {conversation}"));
        }
        if user == creator.name {
            joined.push(millis(field(&row, "joinedAt")));
        }
    }
    t.store(beyond(&sent, send_limit), "messages over the send budget");
    t.store(beyond(&joined, create_limit), "conversations over the create budget");
    for r in scan(&db, &tables.receipts()).await {
        let (id, user, conversation) = (field(&r, "messageId"), field(&r, "userId"), field(&r, "conversationId"));
        if !member(user, conversation) || home.get(id) != Some(&conversation) {
            t.store(1, format!("receipt of {user} for {id} in {conversation}"));
        }
    }
    for device in scan(&db, &tables.devices()).await {
        t.store(1, format!("device {device:?}"));
    }
    let users = [&alice, &bob, &mallory, &flooder, &creator];
    for row in scan(&db, &tables.connections()).await {
        // Beside the connections: the presence announced for a user who connected (no userId).
        let key = field(&row, "connectionId");
        let user = key.strip_prefix("presence#").unwrap_or(field(&row, "userId"));
        if !users.iter().any(|c| c.name == user) && user != prober {
            t.store(1, format!("connection of {user:?} ({key})"));
        }
    }

    let (tried, refused, stored, kinds) = (t.tried, t.refused, t.stored, t.kinds.len());
    println!("proof: attacks tried={tried} refused={refused} stored_by_mistake={stored} kinds={kinds}");
    t.misses.iter().for_each(|m| println!("  not refused: {m}"));
    t.rows.iter().for_each(|r| println!("  stored by mistake: {r}"));
    drop(kept);
    running.stop().await;
    assert!(kinds >= 15, "{:?}", t.kinds);
    assert_eq!(refused, tried, "not refused: {:#?}", t.misses);
    assert_eq!(stored, 0, "stored by mistake: {:#?}", t.rows);
}

/// The runtime reads issuer and audience from the process environment, which tests must not
/// change: so these are tried on the real `$connect` function configured with them, on its sample
/// event and a real DynamoDB store.
async fn issuer_and_audience(t: &mut Tally, topics: &Topics, claims: &dyn Fn(Value) -> Value) {
    let (store, secret) = (dynamo_store().await, b"the-identity-providers-secret-of-32-bytes");
    let (issuer, audience) = (Some(ISSUER.to_owned()), Some(AUDIENCE.to_owned()));
    let connect = ws_connect::WsConnect {
        auth: JwtAuthenticator::new(secret, &TokenRules { issuer, audience }).unwrap(),
        registry: store.clone(),
        publisher: KafkaPublisher::new(&kafka_settings()).unwrap(),
        topics: topics.clone(),
    };
    let control = unique("conn");
    let good = forge(secret, "HS256", &claims(json!({"iss": ISSUER, "aud": AUDIENCE})));
    assert_eq!(connect.invoke(&connect_event(&good, &control)).await.status_code, 200);
    for (kind, changes) in [
        ("wrong_issuer", json!({"iss": "https://evil.example", "aud": AUDIENCE})),
        ("wrong_issuer", json!({"iss": null, "aud": AUDIENCE})),
        ("wrong_audience", json!({"iss": ISSUER, "aud": "another-app"})),
        ("wrong_audience", json!({"iss": ISSUER, "aud": null})),
    ] {
        let event = connect_event(&forge(secret, "HS256", &claims(changes.clone())), &unique("conn"));
        let status = connect.invoke(&event).await.status_code;
        t.check(kind, status == 401, format!("{changes} → {status}"));
    }
    for row in scan(store.raw_client(), &store.tables().connections()).await {
        if field(&row, "connectionId") != control {
            t.store(1, format!("connection {row:?}"));
        }
    }
}

/// The `$connect` sample event from events/, with this token and connection id.
fn connect_event(token: &str, connection: &str) -> ApiGatewayWebsocketProxyRequest {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/ws-connect.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["queryStringParameters"]["token"] = json!(token);
    event["multiValueQueryStringParameters"]["token"] = json!([token]);
    event["requestContext"]["connectionId"] = json!(connection);
    serde_json::from_value(event).unwrap()
}

/// The upgrade's HTTP status (101 when let in) and the socket, kept so that a connection let in
/// by mistake is still in storage when storage is read.
async fn connect(running: &Running, query: &str) -> (u16, Option<Ws>) {
    match tokio_tungstenite::connect_async(format!("ws://{}/local{query}", running.ws)).await {
        Ok((ws, response)) => (response.status().as_u16(), Some(ws)),
        Err(WsError::Http(response)) => (response.status().as_u16(), None),
        Err(e) => panic!("connect {query}: {e}"),
    }
}

/// The intruder's claims, as the runtime wants them, with `changes` made (a null removes one).
fn intruder_claims(sub: &str, rules: &TokenRules, now: i64, changes: Value) -> Value {
    let mut c = json!({"sub": sub, "name": "Intruder", "exp": now + 600, "iss": rules.issuer, "aud": rules.audience});
    let claims = c.as_object_mut().unwrap();
    claims.extend(changes.as_object().unwrap().clone());
    claims.retain(|_, v| !v.is_null());
    c
}

/// Creates a conversation with one other member.
async fn create(c: &mut Client, other: &str, known: &mut Known) -> String {
    let frame = json!({"action": "createConversation", "members": [other]});
    let reply = c.ask(frame, "conversation").await;
    assert_eq!(reply["type"], "conversation", "{reply}");
    remember(&reply, known)
}

fn remember(reply: &Value, known: &mut Known) -> String {
    let id = reply["conversationId"].as_str().unwrap().to_owned();
    known.insert(id.clone(), serde_json::from_value(reply["members"].clone()).unwrap());
    id
}

/// A legitimate message, acked.
async fn send(c: &mut Client, conversation: &str, content: &str, acked: &mut BTreeSet<String>) -> String {
    let frame = json!({"action": "sendMessage", "conversationId": conversation, "content": content});
    let ack = c.ask(frame, "ack").await;
    let id = ack["messageId"].as_str().unwrap_or_else(|| panic!("{ack}"));
    acked.insert(id.to_owned());
    id.to_owned()
}

/// Frames that answer an action (the others are pushes).
/// Frames the server pushes on its own (a co-member's presence, a conversation created or changed:
/// it says what changed) answer nothing.
fn is_reply(v: &Value) -> bool {
    !matches!(v["type"].as_str(), Some("message" | "status" | "typing" | "presence")) && v.get("change").is_none()
}

/// Sends a frame and returns its reply, or null when it got none (typing and markRead answer
/// nothing when accepted): a `listConversations` behind it tells when its turn has passed, as a
/// connection's frames are handled in order.
async fn attempt(c: &mut Client, frame: Value) -> Value {
    c.send(frame).await;
    c.send(json!({"action": "listConversations"})).await;
    let reply = c.expect("a reply", is_reply).await;
    if reply["type"] == "conversations" {
        return Value::Null;
    }
    c.expect("the list", |v| v["type"] == "conversations").await;
    reply
}

/// Sends a burst of one action and counts its `rate_limited` replies against what should have
/// been refused: what exceeds the budget in the windows of those let through (`at`: their time).
/// Fixed windows may split a burst; one never over budget proves nothing, and is a miss too.
async fn flood(t: &mut Tally, c: &mut Client, frames: Vec<Value>, at: impl Fn(&Value) -> i64) -> Vec<Value> {
    let (sent, sends) = (frames.len(), frames[0]["action"] == "sendMessage");
    let action = if sends {
        Limited::SendMessage
    } else {
        Limited::CreateConversation
    };
    for frame in frames {
        c.send(frame).await;
    }
    let mut replies = Vec::new();
    for _ in 0..sent {
        replies.push(c.expect("a reply", is_reply).await);
    }
    let limited = replies.iter().filter(|r| r["code"] == "rate_limited").count();
    let let_in: Vec<i64> = replies.iter().filter(|r| r["type"] != "error").map(at).collect();
    let over = sent - (let_in.len() - beyond(&let_in, action.limit()));
    let kind = format!("{}_flood", action.name());
    // The local gateway hands one connection's frames to the function one at a time, so on a
    // busy machine a flood may never outrun the budget: then there is nothing to refuse.
    t.count(&kind, over, limited, format!("{limited} of {sent}: {replies:?}"));
    replies
}

/// A reply on the raw socket (its user has no conversation, so nothing else arrives).
async fn raw_reply(ws: &mut Ws, frame: Message) -> Value {
    ws.send(frame).await.expect("send");
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).unwrap_or(json!(text.as_str())),
            Ok(Some(Ok(_))) => {}
            other => return json!(format!("no reply: {other:?}")),
        }
    }
}

/// A short pause, when less than `needed` ms are left of the current rate-limit window, until the
/// next begins: a burst then meets one window's budget (it would be right across windows too, but
/// the figures would vary), and a conversation id's time, a few ms after its count, stays in it.
async fn window_with(limit: RateLimit, needed: i64) {
    let left = limit.window_ms - Utc::now().timestamp_millis() % limit.window_ms;
    if left < needed {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (`sentAt`, `joinedAt`).
fn millis(at: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(at).unwrap().timestamp_millis()
}

/// A ULID's milliseconds (its first 10 characters, Crockford base32).
fn ulid_ms(id: &str) -> i64 {
    const DIGITS: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    id.chars()
        .take(10)
        .fold(0, |ms, c| ms * 32 + DIGITS.find(c).unwrap() as i64)
}

/// How many of these (times in ms) are over the budget of their window.
fn beyond(times: &[i64], limit: RateLimit) -> usize {
    let mut per = BTreeMap::<i64, usize>::new();
    times
        .iter()
        .for_each(|ms| *per.entry(ms / limit.window_ms).or_default() += 1);
    per.into_values().map(|n| n.saturating_sub(limit.max as usize)).sum()
}

async fn scan(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    let page = db.scan().table_name(table).consistent_read(true).send().await;
    let page = page.expect("scan");
    assert!(page.last_evaluated_key().is_none(), "{table} fits one page");
    page.items().to_vec()
}

fn field<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

/// A JWT with this `alg` in its header, whatever the claims, signed HS256 with `secret`
/// (`mint_token` writes no past `exp`, `nbf` or other header).
fn forge(secret: &[u8], alg: &str, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&json!({"alg": alg, "typ": "JWT"})), b64(claims));
    format!("{input}.{}", hs256_signature(secret, &input))
}

/// The HS256 signature of a token's `header.claims`, base64url.
fn hs256_signature(secret: &[u8], input: &str) -> String {
    jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256 signs")
}

fn b64(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
