//! Arbitrary bytes as a WebSocket message body: `relaychat_schema::protocol::Command::parse`, on the
//! bytes when they are UTF-8, else on their lossy conversion (what a handler would do with a
//! binary frame).
//!
//! Beyond "no panic":
//! - a refusal has a non-empty message, one of the codes parsing may give, and an error reply
//!   whose JSON has `type`, `code` and `message`; it carries the body's `clientMessageId` when
//!   (and only when) that is a valid one and the body is a JSON object under the size limit;
//! - a command has the body's `action`, respects every documented limit, and the body rewritten
//!   compactly (serde_json's canonical form) parses to the same command;
//! - trailing white space changes nothing; 1 body in 256 (by hash) is also padded to exactly
//!   128 KB (same result) and to one byte more (`message_too_large`).
//!
//! Seeds: fuzz/seeds/command_parse (the client frames of docs/protocol.md and events/ws-message-*.json).

#![no_main]

use libfuzzer_sys::fuzz_target;
use relaychat_schema::protocol::{Command, ErrorCode, MAX_HISTORY_LIMIT, MAX_MESSAGE_BYTES, Refusal, Reply};
use relaychat_schema::{ClientMessageId, DeviceToken};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(body) => check(body),
        Err(_) => check(&String::from_utf8_lossy(data)),
    }
});

fn check(body: &str) {
    let result = Command::parse(body);
    match &result {
        Ok(cmd) => check_command(body, cmd),
        Err(refusal) => check_refusal(body, refusal),
    }

    // Trailing white space never changes the outcome (only the position in a JSON error message).
    let mut spaced = String::with_capacity(body.len() + 3);
    spaced.push_str(body);
    spaced.push_str(" \n\t");
    same_outcome(&result, &Command::parse(&spaced), "3 bytes of trailing white space");

    // The size limit, exactly: padded to 128 KB the body means the same, one byte more is
    // `message_too_large`. Parsing 128 KB costs ~0.3 ms, so only 1 input in 256 (by hash) pays it.
    if body.len() <= MAX_MESSAGE_BYTES && fnv1a(body.as_bytes()) % 256 == 0 {
        let mut padded = String::with_capacity(MAX_MESSAGE_BYTES + 1);
        padded.push_str(body);
        padded.extend(std::iter::repeat_n(' ', MAX_MESSAGE_BYTES - body.len()));
        same_outcome(&result, &Command::parse(&padded), "trailing white space up to 128 KB");
        padded.push(' ');
        let over = Command::parse(&padded);
        assert!(
            matches!(&over, Err(r) if r.code == ErrorCode::MessageTooLarge && !r.message.is_empty()),
            "{} bytes: {over:?}",
            padded.len()
        );
    }
}

fn same_outcome(a: &Result<Command, Refusal>, b: &Result<Command, Refusal>, what: &str) {
    match (a, b) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what} changed the command"),
        (Err(a), Err(b)) => assert_eq!(
            (a.code, &a.client_message_id),
            (b.code, &b.client_message_id),
            "{what} changed the refusal: {a:?} vs {b:?}"
        ),
        (a, b) => panic!("{what} changed {a:?} into {b:?}"),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn check_refusal(body: &str, refusal: &Refusal) {
    assert!(
        !refusal.message.trim().is_empty(),
        "refusal without a message: {refusal:?}"
    );
    assert!(
        matches!(
            refusal.code,
            ErrorCode::InvalidJson
                | ErrorCode::UnknownAction
                | ErrorCode::InvalidRequest
                | ErrorCode::EmptyContent
                | ErrorCode::ContentTooLong
                | ErrorCode::MessageTooLarge
        ),
        "parsing gave a handler's code: {refusal:?}"
    );
    if body.len() > MAX_MESSAGE_BYTES {
        assert_eq!(refusal.code, ErrorCode::MessageTooLarge);
    }

    // The error frame the client gets.
    let reply = refusal.to_reply();
    assert!(matches!(reply, Reply::Error { .. }));
    let frame: Value = serde_json::from_str(&reply.to_json()).expect("an error reply is JSON");
    assert_eq!(frame["type"], "error");
    assert_eq!(
        frame["code"],
        serde_json::to_value(refusal.code).expect("codes serialise")
    );
    assert_eq!(frame["message"].as_str(), Some(refusal.message.as_str()));

    // The body's clientMessageId is echoed when it is valid (and the body got as far as JSON).
    let body_id: Option<ClientMessageId> = (body.len() <= MAX_MESSAGE_BYTES)
        .then(|| serde_json::from_str::<Value>(body).ok())
        .flatten()
        .filter(Value::is_object)
        .and_then(|v| v.get("clientMessageId").and_then(Value::as_str).map(str::to_owned))
        .and_then(|s| ClientMessageId::parse(s).ok());
    assert_eq!(
        refusal.client_message_id, body_id,
        "clientMessageId echo for {refusal:?}"
    );
    assert_eq!(
        frame.get("clientMessageId").and_then(Value::as_str),
        refusal.client_message_id.as_ref().map(ClientMessageId::as_str)
    );
}

fn check_command(body: &str, cmd: &Command) {
    assert!(body.len() <= MAX_MESSAGE_BYTES);
    let v: Value = serde_json::from_str(body).expect("an accepted body is JSON");
    assert!(v.is_object());
    assert_eq!(v["action"].as_str(), Some(cmd.action()), "action");

    // The documented limits (docs/protocol.md). `..` everywhere: the protocol is still growing.
    match cmd {
        Command::CreateConversation { members, title, .. } => {
            assert!(!members.is_empty() && members.len() <= 98, "{} members", members.len());
            if let Some(t) = title {
                assert!(!t.as_str().trim().is_empty() && t.as_str().chars().count() <= 200);
            }
        }
        Command::ListConversations { limit, .. } | Command::History { limit, .. } => {
            assert!((1..=MAX_HISTORY_LIMIT).contains(limit), "limit {limit}")
        }
        Command::SendMessage { content, .. } => {
            let text = content.as_str();
            assert!(!text.trim().is_empty() && text.chars().count() <= 4_000);
        }
        Command::RegisterDevice { token, platform, .. } => {
            check_token(token);
            assert_eq!(platform, "fcm");
        }
        Command::UnregisterDevice { token, .. } => check_token(token),
        #[allow(unreachable_patterns)]
        _ => {}
    }

    // The command depends on the JSON value only: the body rewritten compactly (keys sorted,
    // duplicates and white space gone, escapes normalised) parses to the same command.
    let canonical = serde_json::to_string(&v).expect("a JSON value serialises");
    let again = Command::parse(&canonical);
    assert_eq!(again.as_ref(), Ok(cmd), "canonical body {canonical}");
}

/// A device token is 1 to 1,024 bytes of `[A-Za-z0-9._@:=+-_]` (it is a DynamoDB sort key).
fn check_token(token: &DeviceToken) {
    let t = token.as_str();
    assert!(
        !t.is_empty() && t.len() <= DeviceToken::MAX_LEN,
        "token of {} bytes",
        t.len()
    );
    assert!(
        t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@:=+-_".contains(&b)),
        "token {t:?}"
    );
}
