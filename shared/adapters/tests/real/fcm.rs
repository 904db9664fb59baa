//! FCM HTTP v1 against a local stand-in for Google's token and send endpoints that checks what a
//! real one checks: the RS256 assertion's signature and claims, and the bearer token.

use relaychat_core::ports::{Device, PushResult, PushSender};
use relaychat_schema::{Notification, SCHEMA_VERSION, UserId};
use relaychat_testkit::fcm::stand_in;

fn device(token: &str) -> Device {
    Device {
        user: UserId::parse("carol").unwrap(),
        token: relaychat_schema::DeviceToken::parse(token).unwrap(),
        platform: "fcm".into(),
    }
}

fn note() -> Notification {
    Notification {
        schema_version: SCHEMA_VERSION,
        notification_id: "msg:01JDQ3ZK6M0000000000000000".into(),
        user_id: UserId::parse("carol").unwrap(),
        title: "Alice".into(),
        body: "hello".into(),
        conversation_id: None,
        message_id: None,
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn sends_with_one_cached_oauth_token() {
    let (fcm, google) = stand_in().await;
    assert_eq!(fcm.send(&device("good-1"), &note()).await.unwrap(), PushResult::Sent);
    assert_eq!(fcm.send(&device("good-2"), &note()).await.unwrap(), PushResult::Sent);
    let g = google.lock().unwrap();
    assert_eq!(g.tokens_issued, 1, "the access token is reused until it nears expiry");
    assert_eq!(g.sends.len(), 2);
    let m = &g.sends[0]["message"];
    assert_eq!(
        (m["token"].as_str(), m["notification"]["title"].as_str()),
        (Some("good-1"), Some("Alice"))
    );
    assert_eq!(m["data"]["notificationId"], "msg:01JDQ3ZK6M0000000000000000");
}

#[tokio::test]
async fn tells_unregistered_tokens_from_transient_and_permanent_failures() {
    let (fcm, _google) = stand_in().await;
    assert_eq!(
        fcm.send(&device("dead"), &note()).await.unwrap(),
        PushResult::Unregistered
    );
    let busy = fcm.send(&device("busy"), &note()).await.unwrap_err();
    assert!(busy.is_retryable(), "{}", busy.chain());
    let malformed = fcm.send(&device("malformed"), &note()).await.unwrap_err();
    assert!(!malformed.is_retryable(), "{}", malformed.chain());
}

/// Only FCM's word about a token removes it: UNREGISTERED, an invalid token, another sender's.
/// A bare 404 (before the fix, any 404 deleted every token it was tried with) says nothing.
#[tokio::test]
async fn only_fcms_word_about_the_token_removes_it() {
    let (fcm, _google) = stand_in().await;
    assert!(matches!(
        fcm.send(&device("invalid-token"), &note()).await.unwrap(),
        PushResult::TokenRejected(_)
    ));
    assert!(matches!(
        fcm.send(&device("other-sender"), &note()).await.unwrap(),
        PushResult::TokenRejected(_)
    ));
    let lost = fcm.send(&device("lost"), &note()).await.unwrap_err();
    assert!(!lost.is_retryable(), "{}", lost.chain());
}
