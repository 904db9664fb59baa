use chrono::Utc;
use relay_typing::RelayTyping;
use relaychat_testkit::{connections_api, dynamo_store, kafka_event};

use crate::support::*;

#[tokio::test]
async fn fresh_indicators_reach_the_other_members_and_stale_ones_are_dropped() {
    let store = dynamo_store().await;
    let (registry, api) = connections_api().await;
    let mut alice = online(&store, &registry, "alice", "alice-1=").await;
    let mut bob = online(&store, &registry, "bob", "bob-1=").await;
    let function = RelayTyping {
        directory: store.clone(),
        poster: api,
        dead_letters: dead_letters("relay-typing").await,
    };

    // The sample's indicators are long past: nobody is told anything.
    let response = function.invoke(&sample("relay-typing.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(frames(&mut bob).is_empty() && frames(&mut alice).is_empty());

    // A fresh one reaches bob, not alice who is typing.
    let fresh = serde_json::json!({"schemaVersion": 1, "conversationId": DIRECT, "userId": "alice", "isTyping": true,
        "at": Utc::now(), "recipients": ["alice", "bob"]});
    let event = kafka_event(
        "typing-events",
        &[(0, 1, Some(DIRECT.as_bytes()), fresh.to_string().as_bytes())],
    );
    let response = function.invoke(&event).await;
    assert!(response.batch_item_failures.is_empty());
    let to_bob = frames(&mut bob);
    assert_eq!(
        to_bob,
        vec![serde_json::json!({"type": "typing", "conversationId": DIRECT, "userId": "alice", "isTyping": true})]
    );
    assert!(frames(&mut alice).is_empty());
}
