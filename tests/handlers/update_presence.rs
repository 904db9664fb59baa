use std::time::Duration;

use chrono::Utc;
use relaychat_core::ports::{Conversation, ConversationStore};
use relaychat_schema::{ConversationId, UserId};
use relaychat_testkit::{connections_api, dynamo_store};
use update_presence::UpdatePresence;

use crate::support::*;

#[tokio::test]
async fn connects_are_told_to_co_members_once_and_a_disconnect_with_a_live_connection_is_no_news() {
    let store = dynamo_store().await;
    let (registry, api) = connections_api().await;
    let member = |u: &str| UserId::parse(u).unwrap();
    store
        .create_conversation(
            &Conversation {
                id: ConversationId::parse(DIRECT).unwrap(),
                title: None,
                members: vec![member("alice"), member("bob")],
                created_by: member("alice"),
                created_at: Utc::now(),
                large: None,
            },
            None,
        )
        .await
        .unwrap();
    let mut alice = online(&store, &registry, "alice", "alice-1=").await;
    let mut bob = online(&store, &registry, "bob", "bob-1=").await;
    let function = UpdatePresence {
        store: store.clone(),
        poster: api,
        dead_letters: dead_letters("update-presence").await,
        grace: Duration::from_millis(100),
    };

    // The sample: alice connected; bob disconnected one socket, but another one of his is live.
    let response = function.invoke(&sample("update-presence.json")).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let presence = |user: &str| serde_json::json!({"type": "presence", "userId": user, "status": "online"});
    assert_eq!(frames(&mut bob), vec![presence("alice")]);
    assert_eq!(
        frames(&mut alice),
        vec![presence("bob")],
        "bob is online: that is what is announced"
    );

    // Redelivered: nothing changed, nobody is told again.
    let response = function.invoke(&sample("update-presence.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(frames(&mut bob).is_empty() && frames(&mut alice).is_empty());
}
